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
``read`` takes files of at most ``MAX_READ_BYTES`` (its content becomes the output).

Every operation goes through folders held open from the workspace folder down (see
`workflow_cli.engine.paths`): a link swapped into the path while a task runs is never
followed out of the workspace.

Failures (none retried, except unexpected I/O errors): ``path`` (a refused path),
``not_found``, ``exists`` (``overwrite`` is false), ``not_a_file``, ``not_a_directory``,
``not_empty``, ``decode`` (a file that is not UTF-8 text or JSON), ``too_large``, ``io``.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from workflow_cli.engine.actions.base import (
    MAX_OUTPUT_CHARS,
    ActionFailed,
    CheckContext,
    TaskCall,
    require_keys,
)
from workflow_cli.engine.paths import (
    locate,
    located,
    make_folders,
    not_a_file,
    not_found,
    open_entry,
    place_entry,
    refused,
    store_file,
)
from workflow_cli.errors import Problem
from workflow_cli.store.workspace import Workspace

OPERATIONS = ("read", "write", "copy", "move", "delete", "list")
ENCODINGS = ("text", "json")
NEEDS_DESTINATION = frozenset({"copy", "move"})
MAX_READ_BYTES = MAX_OUTPUT_CHARS  # a read's content is its output, which has this limit
MAX_LIST_ENTRIES = 100_000  # entries a list looks at, matched or not
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


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


def _read(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    encoding = parameters.get("encoding", "text")
    if encoding not in ENCODINGS:
        raise ActionFailed(
            f"'encoding' must be 'text' or 'json', not {encoding!r}", retryable=False
        )
    fd, _ = open_entry(workspace, name, folder=False)
    with os.fdopen(fd, "rb") as handle:
        raw = handle.read(MAX_READ_BYTES + 1)
    if len(raw) > MAX_READ_BYTES:
        raise ActionFailed(
            f"'{name}' is larger than {MAX_READ_BYTES:,} bytes, the most 'read' takes"
            " (its content becomes the task's output)",
            kind="too_large",
            retryable=False,
        )
    content: Any
    try:
        content = json.loads(raw) if encoding == "json" else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ActionFailed(
            f"'{name}' is not UTF-8 text (byte {exc.start})", kind="decode", retryable=False
        ) from exc
    except (ValueError, RecursionError) as exc:
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

    def fill(handle: BinaryIO) -> None:
        handle.write(data)

    store_file(workspace, name, fill, overwrite=overwrite)
    return {"path": _shown(name), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _copy(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    destination = _destination(parameters)
    overwrite = _option_bool(parameters, "overwrite", True)
    locate(workspace, destination).close()  # refuse a bad destination before reading
    fd, _ = open_entry(workspace, name, folder=False)
    with os.fdopen(fd, "rb") as reader:

        def fill(handle: BinaryIO) -> None:
            shutil.copyfileobj(reader, handle)

        # Like cp, the copy keeps the source's permission bits.
        mode = stat.S_IMODE(os.fstat(reader.fileno()).st_mode)
        size = store_file(workspace, destination, fill, overwrite=overwrite, mode=mode)
    return {"source": _shown(name), "destination": _shown(destination), "bytes": size}


def _move(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    destination = _destination(parameters)
    overwrite = _option_bool(parameters, "overwrite", True)
    with (
        located(workspace, name, follow_last=False) as source,
        located(workspace, destination, follow_last=False) as target,
    ):
        if source.is_root:
            raise refused("the workspace folder itself cannot be moved")
        if not source.exists:
            raise not_found(name)
        try:
            info = source.lstat()
        except FileNotFoundError:
            raise not_found(name) from None
        if stat.S_ISDIR(info.st_mode):
            raise not_a_file(name)
        if target.is_root:
            raise not_a_file(destination)
        make_folders(target)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISDIR(target.lstat().st_mode):
                raise not_a_file(destination)
        place_entry(
            source.folder_fd,
            source.name,
            target.folder_fd,
            target.name,
            destination,
            overwrite=overwrite,
        )
        os.fsync(target.folder_fd)
        if source.folder != target.folder:
            os.fsync(source.folder_fd)
    return {"source": _shown(name), "destination": _shown(destination), "bytes": info.st_size}


def _delete(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    with located(workspace, name, follow_last=False) as found:
        if found.is_root:
            raise refused("the workspace folder itself cannot be deleted")
        if not found.exists:
            return {"path": _shown(name), "deleted": False}
        try:
            info = found.lstat()
        except FileNotFoundError:
            return {"path": _shown(name), "deleted": False}
        if stat.S_ISDIR(info.st_mode):
            try:
                os.rmdir(found.name, dir_fd=found.folder_fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise ActionFailed(
                    f"'{name}' is a folder that is not empty; delete what it holds first",
                    kind="not_empty",
                    retryable=False,
                ) from exc
        else:
            os.unlink(found.name, dir_fd=found.folder_fd)
    return {"path": _shown(name), "deleted": True}


def _list(workspace: Workspace, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    pattern = parameters.get("pattern", "*")
    if not isinstance(pattern, str):
        raise ActionFailed(f"'pattern' must be text, not {pattern!r}", retryable=False)
    problem = literal_path_problem(pattern)
    if problem:
        raise ActionFailed(f"'pattern' {problem}", kind="path", retryable=False)
    fd, found = open_entry(workspace, name, folder=True)
    try:
        entries = _glob(workspace, fd, found.parts, PurePosixPath(pattern).parts)
    finally:
        os.close(fd)
    return {"path": _shown(name), "entries": entries, "count": len(entries)}


def _glob(
    workspace: Workspace, folder_fd: int, folder: tuple[str, ...], pattern: tuple[str, ...]
) -> list[str]:
    """Names under the open folder matching `pattern` (``*``, ``?``, ``[…]`` per component,
    ``**`` for any depth of folders), like `Path.glob`. Folders are entered through
    descriptors; a link is entered only when it leads to a folder inside the workspace
    (and ``**`` never enters links)."""
    matches: set[tuple[str, ...]] = set()
    seen = 0
    # (open folder, its path below `folder`, how much of the pattern is matched)
    stack: list[tuple[int, tuple[str, ...], int]] = [(os.dup(folder_fd), (), 0)]
    try:
        while stack:
            fd, relative, index = stack.pop()
            try:
                head = pattern[index]
                recursive = head == "**"
                if recursive:
                    if index + 1 == len(pattern):
                        if relative:
                            matches.add(relative)
                    else:
                        stack.append((os.dup(fd), relative, index + 1))
                with os.scandir(fd) as listing:
                    for entry in listing:
                        seen += 1
                        if seen > MAX_LIST_ENTRIES:
                            raise ActionFailed(
                                f"the list looked at more than {MAX_LIST_ENTRIES:,} entries;"
                                " name a smaller folder or a narrower pattern",
                                kind="too_large",
                                retryable=False,
                            )
                        path = (*relative, entry.name)
                        if recursive:
                            if entry.is_dir(follow_symlinks=False):
                                child = _enter(workspace, fd, folder, path, link=False)
                                if child is not None:
                                    stack.append((child, path, index))
                            continue
                        if not fnmatch.fnmatchcase(entry.name, head):
                            continue
                        if index + 1 == len(pattern):
                            matches.add(path)
                            continue
                        child = _enter(workspace, fd, folder, path, link=entry.is_symlink())
                        if child is not None:
                            stack.append((child, path, index + 1))
            finally:
                os.close(fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return sorted("/".join(match) for match in matches)


def _enter(
    workspace: Workspace, fd: int, folder: tuple[str, ...], path: tuple[str, ...], *, link: bool
) -> int | None:
    """An open descriptor of the sub-folder `path` (below `folder`), or None when it is
    not a folder, or is a link that leads outside the workspace or into its own folders."""
    try:
        if not link:
            return os.open(path[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC,
                           dir_fd=fd)  # fmt: skip
        with located(workspace, "/".join((*folder, *path))) as found:
            if not found.exists or found.is_root:
                return None
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
            return os.open(found.name, flags, dir_fd=found.folder_fd)
    except (OSError, ActionFailed):
        return None


_HANDLERS: dict[str, Callable[[Workspace, str, dict[str, Any]], dict[str, Any]]] = {
    "read": _read,
    "write": _write,
    "copy": _copy,
    "move": _move,
    "delete": _delete,
    "list": _list,
}

ACTION = FileOperation()
