"""Paths that tasks name are kept inside the workspace, without races.

A name is walked one component at a time from an open descriptor of the workspace
folder: each folder is opened relative to the one before with ``O_NOFOLLOW``, so a link
swapped in between a check and a use is never followed. A link met on the way is
read and followed *as text* from the workspace folder (an absolute target counts only
when it points into the workspace), and refused when it leads outside. What is then
done to the entry is done through the open folder that holds it (``dir_fd``, or a
``/proc/self/fd/N/NAME`` path that the kernel resolves through the descriptor), so
nothing is ever read, written, renamed or deleted outside the workspace, whatever
changes on disk meanwhile.

Refused, as non-retryable task failures of kind ``path``: anything not a non-empty
string, NUL bytes, absolute paths, ``..`` components, links that lead outside, and the
engine's own folders (instances/, checkpoints/, monitoring/).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from workflow_cli.engine.actions.base import ActionFailed
from workflow_cli.readonly import mutable_dataclass
from workflow_cli.store.workspace import Workspace

PACKAGE_PREFIX = "package:"
# The engine's own records: a task that wrote here could forge or damage a journal.
ENGINE_FOLDERS = ("instances", "checkpoints", "monitoring", "cache")
MAX_LINKS = 40  # links followed while walking one name (the kernel's own limit)
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_PROC_FD = Path("/proc/self/fd")


def refused(message: str) -> ActionFailed:
    return ActionFailed(message, kind="path", retryable=False)


def check_name(name: object) -> PurePosixPath:
    """`name` as a relative path, or the refusal of what it is not."""
    if not isinstance(name, str) or not name.strip():
        raise refused(f"a path must be a non-empty string, not {name!r}")
    if "\x00" in name:
        raise refused("a path must not contain NUL bytes")
    pure = PurePosixPath(name)
    if pure.is_absolute() or Path(name).is_absolute():
        raise refused(f"'{name}' is absolute; paths are relative to the workspace")
    if ".." in pure.parts:
        raise refused(f"'{name}' uses '..'; paths must stay inside the workspace")
    return pure


@mutable_dataclass
class Located:
    """Where a name leads inside the workspace, held open.

    ``folder_fd`` is an open descriptor of the deepest folder reached; ``folder`` its
    real path in the workspace. When ``missing`` is empty that folder holds the entry
    ``name`` (``""``: the workspace folder itself), which ``exists`` or not; otherwise
    the folders in ``missing`` do not exist below it (and neither does the entry).
    """

    folder_fd: int
    folder: tuple[str, ...]
    name: str
    missing: tuple[str, ...]
    exists: bool

    @property
    def parts(self) -> tuple[str, ...]:
        """The entry's real path in the workspace, component by component."""
        return (*self.folder, *self.missing, *((self.name,) if self.name else ()))

    @property
    def is_root(self) -> bool:
        return not self.name and not self.missing

    def lstat(self) -> os.stat_result:
        """The entry itself (a link is not followed)."""
        return os.stat(self.name, dir_fd=self.folder_fd, follow_symlinks=False)

    def close(self) -> None:
        """Let go of the folder (once: a descriptor number closed twice could be another
        thread's by then)."""
        if self.folder_fd >= 0:
            fd, self.folder_fd = self.folder_fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)


def entry_path(folder_fd: int, name: str) -> str:
    """A path to `name` in the open folder `folder_fd` that does not depend on the
    folder's own path: ``/proc/self/fd/N/NAME`` (the kernel resolves it through the
    descriptor). Only where /proc is missing, NAME is returned, for ``dir_fd`` calls."""
    return f"{_PROC_FD}/{folder_fd}/{name}"


def has_proc() -> bool:
    return _PROC_FD.is_dir()


def open_root(workspace: Workspace) -> int:
    return os.open(workspace.root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))


def _open_folder(parent_fd: int, name: str) -> int:
    return os.open(name, _FOLDER_FLAGS, dir_fd=parent_fd)


def _splice(
    workspace: Workspace, name: str, done: list[str], target: str, rest: list[str]
) -> list[str]:
    """The components to walk after a link in `done` pointing to `target`."""
    pure = PurePosixPath(target)
    if pure.is_absolute():
        for root in {str(workspace.root), os.path.realpath(workspace.root)}:
            if pure == PurePosixPath(root) or PurePosixPath(root) in pure.parents:
                parts: list[str] = list(pure.relative_to(root).parts)
                break
        else:
            raise refused(f"'{name}' leads outside the workspace (through a link)")
    else:
        parts = list(done)
        for part in pure.parts:
            if part == "..":
                if not parts:
                    raise refused(f"'{name}' leads outside the workspace (through a link)")
                parts.pop()
            elif part != ".":
                parts.append(part)
    return [*parts, *rest]


def locate(
    workspace: Workspace, name: object, *, follow_last: bool = True, allow_engine: bool = False
) -> Located:
    """Walk `name` from the workspace folder without leaving it; the caller closes the
    result. Links on the way are followed inside the workspace; the last component is
    followed too unless `follow_last` is false (delete and move act on a link itself).
    Refusals are ActionFailed of kind ``path``."""
    pure = check_name(name)
    shown = str(name)
    root_fd = open_root(workspace)
    try:
        pending = list(pure.parts)
        for _ in range(MAX_LINKS + 1):
            located = _walk(workspace, shown, root_fd, pending, follow_last)
            if isinstance(located, Located):
                inside = located.parts
                if inside and inside[0] in ENGINE_FOLDERS and not allow_engine:
                    located.close()
                    raise refused(
                        f"'{shown}' is in the engine's own {inside[0]}/ folder;"
                        " tasks may not touch it"
                    )
                return located
            pending = located  # a link was met: walk again from the top
        raise refused(f"'{shown}' goes through more than {MAX_LINKS} links (or keeps changing)")
    finally:
        os.close(root_fd)


def _walk(
    workspace: Workspace, name: str, root_fd: int, pending: list[str], follow_last: bool
) -> Located | list[str]:
    """One walk of `pending` from the root: where it leads, or the components to walk
    again when a link is met (or something changed underfoot)."""
    fd = os.dup(root_fd)
    done: list[str] = []
    try:
        for index, part in enumerate(pending):
            last = index == len(pending) - 1
            try:
                info = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                missing = tuple(pending[index:-1])
                return Located(fd, tuple(done), pending[-1], missing, exists=False)
            if last and not follow_last:
                return Located(fd, tuple(done), part, (), exists=True)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(part, dir_fd=fd)
                fd = _closed(fd)
                return _splice(workspace, name, done, target, pending[index + 1 :])
            if last:
                return Located(fd, tuple(done), part, (), exists=True)
            if not stat.S_ISDIR(info.st_mode):  # a file where a folder should be
                return Located(fd, tuple(done), pending[-1], tuple(pending[index:-1]), False)
            try:
                child = _open_folder(fd, part)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise
                # Swapped for a link (or removed) since the stat: look again from the top.
                fd = _closed(fd)
                return [*done, part, *pending[index + 1 :]]
            _closed(fd)
            fd = child
            done.append(part)
        return Located(fd, tuple(done), "", (), exists=True)
    except BaseException:
        if fd >= 0:
            _closed(fd)
        raise


def _closed(fd: int) -> int:
    """Close `fd`; -1, to put in its place so that it is never closed twice."""
    with contextlib.suppress(OSError):
        os.close(fd)
    return -1


@contextlib.contextmanager
def located(workspace: Workspace, name: object, *, follow_last: bool = True) -> Iterator[Located]:
    """`locate`, closed when the block ends."""
    found = locate(workspace, name, follow_last=follow_last)
    try:
        yield found
    finally:
        found.close()


def make_folders(found: Located) -> None:
    """Create the folders `found` is missing, each inside the one before, and hold the
    last one open in their place."""
    for part in found.missing:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o777, dir_fd=found.folder_fd)
        try:
            child = _open_folder(found.folder_fd, part)
        except OSError as exc:
            where = "/".join((*found.folder, part))
            if exc.errno == errno.ENOTDIR:
                raise ActionFailed(
                    f"'{where}' is not a folder", kind="not_a_directory", retryable=False
                ) from exc
            # A link was put there meanwhile: never go through it.
            raise ActionFailed(
                f"'{where}' changed while folders were made: {exc.strerror}",
                kind="path",
                retryable=True,
            ) from exc
        os.close(found.folder_fd)
        found.folder_fd = child
        found.folder = (*found.folder, part)
    found.missing = ()


def resolve_in_workspace(workspace: Workspace, name: str) -> Path:
    """The real path `name` (relative to the workspace) stands for, inside it.

    The path is checked when this returns; a caller that opens it later should use
    `locate` instead, which holds the folder open."""
    found = locate(workspace, name)
    found.close()
    return workspace.root.resolve().joinpath(*found.parts)


def read_input(workspace: Workspace, name: str, limit: int) -> bytes:
    """The bytes of `name`: a workspace file read race-free (`read_file`), or with
    ``package:FILE`` a data file shipped with workflow_cli (read-only samples the built-in
    templates use by default)."""
    if isinstance(name, str) and name.startswith(PACKAGE_PREFIX):
        file_name = name[len(PACKAGE_PREFIX) :]
        if not file_name or "/" in file_name or "\\" in file_name or file_name.startswith("."):
            raise ActionFailed(
                f"'{name}' is not a packaged data file", kind="path", retryable=False
            )
        path = Path(__file__).parent.parent / "data" / file_name  # the package's own folder
        if not path.is_file():
            raise ActionFailed(f"no packaged data file '{file_name}'", kind="path", retryable=False)
        return path.read_bytes()
    return read_file(workspace, name, limit)


_OPEN_TRIES = 3  # a file swapped for a link between the walk and the open: walk again
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def not_found(name: str) -> ActionFailed:
    return ActionFailed(f"'{name}' does not exist", kind="not_found", retryable=False)


def not_a_file(name: str) -> ActionFailed:
    return ActionFailed(
        f"'{name}' is a folder; give the path of a file", kind="not_a_file", retryable=False
    )


def open_entry(workspace: Workspace, name: str, *, folder: bool) -> tuple[int, Located]:
    """Open the file (or folder) `name` inside the workspace: the descriptor and where it
    is (closed already; only its parts are of use). The entry is opened through its open
    folder without following a link, so what is opened is what the walk checked."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | _CLOEXEC
    # A folder must be one; a file is opened without blocking (a FIFO would wait forever).
    flags |= os.O_DIRECTORY if folder else os.O_NONBLOCK
    for _ in range(_OPEN_TRIES):
        with located(workspace, name) as found:
            if found.is_root:
                raise refused(
                    "the workspace folder itself cannot be listed; name a folder inside it"
                    if folder
                    else f"'{name}' is the workspace folder; give the path of a file"
                )
            if not found.exists:
                raise not_found(name)
            try:
                fd = os.open(found.name, flags, dir_fd=found.folder_fd)
            except FileNotFoundError:
                raise not_found(name) from None
            except OSError as exc:
                if (
                    exc.errno == errno.ENOTDIR
                    and folder
                    and not stat.S_ISLNK(found.lstat().st_mode)
                ):
                    raise ActionFailed(
                        f"'{name}' is not a folder", kind="not_a_directory", retryable=False
                    ) from exc
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    continue  # a link was swapped in after the walk: walk again
                raise
            info = os.fstat(fd)
            if folder or stat.S_ISREG(info.st_mode):
                return fd, found
            os.close(fd)
            if stat.S_ISDIR(info.st_mode):
                raise not_a_file(name)
            raise ActionFailed(f"'{name}' is not a file", kind="not_a_file", retryable=False)
    raise refused(f"'{name}' kept changing while it was opened")


def read_file(workspace: Workspace, name: str, limit: int) -> bytes:
    """The bytes of the workspace file `name`, opened race-free (see `open_entry`); a
    file larger than `limit` bytes fails with kind ``too_large``."""
    fd, _ = open_entry(workspace, name, folder=False)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ActionFailed(
            f"'{name}' is larger than {limit:,} bytes", kind="too_large", retryable=False
        )
    return data


def exists_error(name: str) -> ActionFailed:
    return ActionFailed(
        f"'{name}' already exists and 'overwrite' is false", kind="exists", retryable=False
    )


def _rename(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
    if has_proc():  # two plain paths, each resolved through its folder's descriptor
        os.replace(entry_path(src_fd, src), entry_path(dst_fd, dst))
    else:
        os.replace(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd)


def place_entry(
    src_fd: int, src: str, dst_fd: int, dst: str, shown: str, *, overwrite: bool
) -> None:
    """Move entry `src` to `dst` in one step; without `overwrite`, never replace one.

    ``link()`` fails when the target exists, so "is it there?" and "put it there" are a
    single step; a plain check before a rename could lose a file written in between.
    """
    if overwrite:
        _rename(src_fd, src, dst_fd, dst)
        return
    try:
        os.link(src, dst, src_dir_fd=src_fd, dst_dir_fd=dst_fd, follow_symlinks=False)
    except FileExistsError:
        raise exists_error(shown) from None
    except OSError:
        # Some file systems have no hard links; fall back to the (racy) check.
        with contextlib.suppress(FileNotFoundError):
            os.stat(dst, dir_fd=dst_fd, follow_symlinks=False)
            raise exists_error(shown) from None
        _rename(src_fd, src, dst_fd, dst)
        return
    os.unlink(src, dir_fd=src_fd)


def store_file(
    workspace: Workspace,
    name: str,
    fill: Callable[[BinaryIO], None],
    *,
    overwrite: bool,
    mode: int | None = None,
) -> int:
    """Write the file `name` atomically: a temp file in its (open) folder filled by
    `fill` and made durable, then put in place. The size written."""
    with located(workspace, name) as found:
        if found.is_root:
            raise not_a_file(name)
        make_folders(found)
        try:
            info: os.stat_result | None = found.lstat()
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise not_a_file(name)
        if mode is None:  # keep the mode of the file replaced, else 0644
            mode = stat.S_IMODE(info.st_mode) if info and stat.S_ISREG(info.st_mode) else 0o644
        staged = f".{found.name[:200]}.{secrets.token_hex(4)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
        fd = os.open(staged, flags, 0o600, dir_fd=found.folder_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
                size = os.fstat(handle.fileno()).st_size
            place_entry(
                found.folder_fd, staged, found.folder_fd, found.name, name, overwrite=overwrite
            )
        finally:
            # Gone already when placed; left only when something failed.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged, dir_fd=found.folder_fd)
        os.fsync(found.folder_fd)
        return size
