"""``file_operation``: reads, writes, copies, moves, deletes or lists files in the workspace.

Parameters:

- ``operation`` (required): ``read``, ``write``, ``copy``, ``move``, ``delete`` or ``list``.
- ``path`` (required): a path relative to the workspace folder. Absolute paths, ``..``,
  NUL bytes and links that lead outside the workspace are refused.
- ``destination``: for ``copy`` and ``move``, the new path (relative, like ``path``).
- ``content``: for ``write``; a string is written as UTF-8 text, any other JSON value
  as indented JSON.
- ``encoding``: for ``read``, ``text`` (the default, UTF-8) or ``json`` (the file is parsed
  and its value is the content).
- ``overwrite``: for ``write``, ``copy`` and ``move``, whether an existing file may be
  replaced (default ``true``); with ``false`` an existing file fails the task.
- ``pattern``: for ``list``, a glob relative to ``path`` (default ``*``; ``**/*.csv``
  goes into sub-folders).

Output, by operation:

- ``read``: ``{"path", "content", "bytes"}``
- ``write``: ``{"path", "bytes", "sha256"}``
- ``copy``, ``move``: ``{"source", "destination", "bytes"}``
- ``delete``: ``{"path", "deleted"}``; a file that does not exist is not an error
  (``deleted`` is ``false``). Folders are deleted only when empty.
- ``list``: ``{"path", "entries", "count"}``, entries being sorted names relative to ``path``.

Writes and copies are atomic: the file holds either its old or its new content, never
part of it. Missing parent folders of a written, copied or moved file are created.
Links inside the workspace are followed for reading and writing content; ``delete``
and ``move`` act on a link itself, not on the file it points to. The workspace folder
itself cannot be deleted or listed. Copies and moves are of files, not folders.

Failures (none retried, except unexpected I/O errors): ``path`` (a refused path),
``not_found``, ``exists`` (``overwrite`` is false), ``not_a_file``, ``not_a_directory``,
``not_empty``, ``decode`` (a file that is not UTF-8 text or JSON), ``io``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from workflow_cli.engine.actions.base import ActionFailed, CheckContext, TaskCall, require_keys
from workflow_cli.engine.paths import resolve_in_workspace
from workflow_cli.errors import DiskFullError, Problem
from workflow_cli.store.files import fsync_dir, write_atomic
from workflow_cli.store.workspace import Workspace

OPERATIONS = ("read", "write", "copy", "move", "delete", "list")
ENCODINGS = ("text", "json")
NEEDS_DESTINATION = frozenset({"copy", "move"})


class FileOperation:
    name = "file_operation"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        parameters = ctx.task.get("parameters") or {}
        where = f"{ctx.pointer}/parameters"
        problems = require_keys(ctx, {"operation": str, "path": str})
        operation = parameters.get("operation")
        literal_operation = isinstance(operation, str) and not _is_template(operation)
        if literal_operation and operation not in OPERATIONS:
            problems.append(
                Problem(f"{where}/operation", f"must be one of {', '.join(OPERATIONS)}")
            )
        if literal_operation and operation in NEEDS_DESTINATION:
            problems += require_keys(ctx, {"destination": str})
        if literal_operation and operation == "write" and "content" not in parameters:
            problems.append(Problem(where, "needs 'content'"))
        for key in ("path", "destination"):
            value = parameters.get(key)
            if not _is_template(value) and isinstance(value, str):
                message = literal_path_problem(value)
                if message:
                    problems.append(Problem(f"{where}/{key}", message))
        pattern = parameters.get("pattern")
        if not _is_template(pattern) and isinstance(pattern, str):
            message = literal_path_problem(pattern)
            if message:
                problems.append(Problem(f"{where}/pattern", message))
        encoding = parameters.get("encoding", "text")
        if encoding not in ENCODINGS and not _is_template(encoding):
            problems.append(Problem(f"{where}/encoding", "must be 'text' or 'json'"))
        overwrite = parameters.get("overwrite", True)
        if not isinstance(overwrite, bool) and not _is_template(overwrite):
            problems.append(Problem(f"{where}/overwrite", "must be true or false"))
        return problems

    def run(self, call: TaskCall) -> Any:
        parameters = call.parameters
        operation = parameters.get("operation")
        if operation not in OPERATIONS:
            raise ActionFailed(
                f"file_operation needs 'operation', one of {', '.join(OPERATIONS)}"
                f" (got {operation!r})",
                retryable=False,
            )
        path = parameters.get("path")
        if not isinstance(path, str):
            raise ActionFailed("file_operation needs 'path' (text)", retryable=False)
        handler = _HANDLERS[operation]
        try:
            output = handler(call.workspace, path, parameters)
        except DiskFullError as exc:
            cause = exc.__cause__
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else exc
            raise ActionFailed(f"{operation} '{path}' failed: {reason}", kind="io") from exc
        except OSError as exc:
            # Anything the checks above did not foresee (permissions, a full disk, a file
            # vanishing mid-way); only the kinds a retry cannot fix are final.
            raise ActionFailed(
                f"{operation} '{path}' failed: {exc.strerror or exc}",
                kind="io",
                retryable=not isinstance(
                    exc, (PermissionError, IsADirectoryError, NotADirectoryError)
                ),
            ) from exc
        call.log.write(f"file_operation {operation} {_describe(output)}\n")
        return output


def literal_path_problem(name: str) -> str | None:
    """Why a literal (non-templated) relative path would be refused at run time, or None."""
    if not name.strip():
        return "must not be empty"
    if "\x00" in name:
        return "must not contain NUL bytes"
    if PurePosixPath(name).is_absolute() or Path(name).is_absolute():
        return "must be relative to the workspace, not absolute"
    if ".." in PurePosixPath(name).parts:
        return "must not use '..'; paths stay inside the workspace"
    return None


def _is_template(value: object) -> bool:
    """Whether `value` is rendered before the run (so its final value is unknown here)."""
    return isinstance(value, str) and "{{" in value


def _describe(output: dict[str, Any]) -> str:
    if "source" in output:
        return f"{output['source']} -> {output['destination']} ({output['bytes']} bytes)"
    details = {k: v for k, v in output.items() if k in ("bytes", "deleted", "count")}
    return f"{output['path']} {json.dumps(details)}"


def _shown(name: str) -> str:
    """The path as reported in outputs: as given, minus ``./`` and doubled slashes."""
    return str(PurePosixPath(name))


def _root(workspace: Workspace) -> Path:
    return workspace.root.resolve()


def _entry(workspace: Workspace, name: str) -> Path:
    """The entry `name` names, not what a link there points to.

    The whole path is first checked with `resolve_in_workspace`, so a link leading
    outside is refused here too; only the last component is then left unresolved.
    """
    resolve_in_workspace(workspace, name)
    pure = PurePosixPath(name)
    if not pure.name:
        return _root(workspace)
    parent = str(pure.parent)
    folder = _root(workspace) if parent == "." else resolve_in_workspace(workspace, parent)
    return folder / pure.name


def _option_bool(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise ActionFailed(f"'{key}' must be true or false, not {value!r}", retryable=False)
    return value


def _destination(parameters: dict[str, Any]) -> str:
    destination = parameters.get("destination")
    if not isinstance(destination, str):
        raise ActionFailed(
            f"file_operation {parameters.get('operation')} needs 'destination' (text)",
            retryable=False,
        )
    return destination


def _not_found(name: str) -> ActionFailed:
    return ActionFailed(f"'{name}' does not exist", kind="not_found", retryable=False)


def _exists(name: str) -> ActionFailed:
    return ActionFailed(
        f"'{name}' already exists and 'overwrite' is false", kind="exists", retryable=False
    )


def _require_file(path: Path, name: str) -> None:
    if not path.exists():
        raise _not_found(name)
    if not path.is_file():
        raise ActionFailed(f"'{name}' is not a file", kind="not_a_file", retryable=False)


def _refuse_directory(path: Path, name: str) -> None:
    if path.is_dir() and not path.is_symlink():
        raise ActionFailed(
            f"'{name}' is a folder; give the path of a file", kind="not_a_file", retryable=False
        )


def _place(staged: Path, target: Path, name: str, *, overwrite: bool) -> None:
    """Move `staged` to `target` in one step; without `overwrite`, never replace a file.

    ``link()`` fails when the target exists, so "is it there?" and "put it there" are a
    single step; a plain check before a rename could lose a file written in between.
    """
    if overwrite:
        os.replace(staged, target)
        return
    try:
        os.link(staged, target, follow_symlinks=False)
    except FileExistsError:
        raise _exists(name) from None
    except OSError:
        # Some file systems have no hard links; fall back to the (racy) check.
        if os.path.lexists(target):
            raise _exists(name) from None
        os.replace(staged, target)
        return
    os.unlink(staged)


def _write_staged(
    target: Path, name: str, fill: Callable[[BinaryIO], None], *, overwrite: bool
) -> None:
    """Write a temp file beside `target` with `fill`, make it durable, then place it."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    staged = Path(temp)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _place(staged, target, name, overwrite=overwrite)
    finally:
        # Gone already when placed; left only when something failed.
        staged.unlink(missing_ok=True)
    fsync_dir(target.parent)


def _read(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    encoding = parameters.get("encoding", "text")
    if encoding not in ENCODINGS:
        raise ActionFailed(
            f"'encoding' must be 'text' or 'json', not {encoding!r}", retryable=False
        )
    path = resolve_in_workspace(workspace, name)
    _require_file(path, name)
    raw = path.read_bytes()
    content: Any
    try:
        content = json.loads(raw) if encoding == "json" else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ActionFailed(
            f"'{name}' is not UTF-8 text (byte {exc.start})", kind="decode", retryable=False
        ) from exc
    except ValueError as exc:
        raise ActionFailed(f"'{name}' is not JSON: {exc}", kind="decode", retryable=False) from exc
    return {"path": _shown(name), "content": content, "bytes": len(raw)}


def _write(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    if "content" not in parameters:
        raise ActionFailed("file_operation write needs 'content'", retryable=False)
    content = parameters["content"]
    if isinstance(content, str):
        data = content.encode("utf-8")
    else:
        data = (json.dumps(content, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    overwrite = _option_bool(parameters, "overwrite", True)
    path = resolve_in_workspace(workspace, name)
    _refuse_directory(path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        write_atomic(path, data)
    else:

        def fill(handle: BinaryIO) -> None:
            handle.write(data)

        _write_staged(path, name, fill, overwrite=False)
    return {"path": _shown(name), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _copy(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    destination = _destination(parameters)
    overwrite = _option_bool(parameters, "overwrite", True)
    source = resolve_in_workspace(workspace, name)
    target = resolve_in_workspace(workspace, destination)
    _require_file(source, name)
    _refuse_directory(target, destination)
    target.parent.mkdir(parents=True, exist_ok=True)

    def fill(handle: BinaryIO) -> None:
        with source.open("rb") as reader:
            # Like cp, the copy keeps the source's permission bits (mkstemp makes 0600).
            os.fchmod(handle.fileno(), stat.S_IMODE(os.fstat(reader.fileno()).st_mode))
            shutil.copyfileobj(reader, handle)

    _write_staged(target, destination, fill, overwrite=overwrite)
    return {
        "source": _shown(name),
        "destination": _shown(destination),
        "bytes": target.stat().st_size,
    }


def _move(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    destination = _destination(parameters)
    overwrite = _option_bool(parameters, "overwrite", True)
    source = _entry(workspace, name)
    target = _entry(workspace, destination)
    if source == _root(workspace):
        raise ActionFailed(
            "the workspace folder itself cannot be moved", kind="path", retryable=False
        )
    if not os.path.lexists(source):
        raise _not_found(name)
    _refuse_directory(source, name)
    _refuse_directory(target, destination)
    size = source.lstat().st_size
    target.parent.mkdir(parents=True, exist_ok=True)
    _place(source, target, destination, overwrite=overwrite)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)
    return {"source": _shown(name), "destination": _shown(destination), "bytes": size}


def _delete(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    path = _entry(workspace, name)
    if path == _root(workspace):
        raise ActionFailed(
            "the workspace folder itself cannot be deleted", kind="path", retryable=False
        )
    if not os.path.lexists(path):
        return {"path": _shown(name), "deleted": False}
    if path.is_dir() and not path.is_symlink():
        if any(path.iterdir()):
            raise ActionFailed(
                f"'{name}' is a folder that is not empty; delete what it holds first",
                kind="not_empty",
                retryable=False,
            )
        path.rmdir()
    else:
        path.unlink()
    return {"path": _shown(name), "deleted": True}


def _list(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    pattern = parameters.get("pattern", "*")
    if not isinstance(pattern, str):
        raise ActionFailed(f"'pattern' must be text, not {pattern!r}", retryable=False)
    problem = literal_path_problem(pattern)
    if problem:
        raise ActionFailed(f"'pattern' {problem}", kind="path", retryable=False)
    root = _root(workspace)
    folder = resolve_in_workspace(workspace, name)
    if folder == root:
        raise ActionFailed(
            "the workspace folder itself cannot be listed; name a folder inside it",
            kind="path",
            retryable=False,
        )
    if not folder.exists():
        raise _not_found(name)
    if not folder.is_dir():
        raise ActionFailed(f"'{name}' is not a folder", kind="not_a_directory", retryable=False)
    entries = sorted(
        match.relative_to(folder).as_posix()
        for match in folder.glob(pattern)
        # A pattern such as "link/*" would look through a link into a folder outside the
        # workspace; an entry counts only if the folder holding it is inside.
        if match != folder and _is_inside(match.parent, root)
    )
    return {"path": _shown(name), "entries": entries, "count": len(entries)}


def _is_inside(path: Path, root: Path) -> bool:
    resolved = path.resolve()
    return resolved == root or root in resolved.parents


_HANDLERS: dict[str, Callable[[Workspace, str, dict[str, Any]], dict[str, Any]]] = {
    "read": _read,
    "write": _write,
    "copy": _copy,
    "move": _move,
    "delete": _delete,
    "list": _list,
}

ACTION = FileOperation()
