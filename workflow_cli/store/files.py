"""Durable file writes: a file is either its old content or its new content, never half.
And the one way the engine opens its own files to read them (or to lock them): only a
regular file is opened; a folder, a named pipe or a device in its place is a
`WorkspaceError` naming it, never a wait forever on a pipe nobody writes to.

A write goes to a temp file beside its target (``.NAME.*.tmp``) and is renamed over it.
A full disk is a `DiskFullError` naming the file, with the temp file removed; temp files
a crash left behind are ignored by readers (their names start with a dot and end in
``.tmp``) and removed by the next write of the same file once they are old enough that
no live writer can still own them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from workflow_cli.errors import DiskFullError, WorkspaceError, is_disk_full, what_it_is

# A temp file older than this was left by a writer that died (writes take milliseconds).
STALE_TEMP_SECONDS = 60.0


def open_regular(
    path: Path | str, flags: int = os.O_RDONLY, mode: int = 0o600, *, doing: str = "read"
) -> int:
    """A descriptor of the regular file at `path`, opened with `flags` (and `mode`, for a
    file ``O_CREAT`` makes). Opened without blocking, so a named pipe is never waited
    on; anything but a regular file is a WorkspaceError (``cannot DOING PATH: it is a
    folder``). A missing file and every other OSError are raised as they are."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.ENXIO):  # ENXIO: a pipe opened to write
            with contextlib.suppress(OSError):
                raise _not_a_file(path, os.stat(path).st_mode, doing) from None
        raise
    try:
        found = os.fstat(fd).st_mode
        if not stat.S_ISREG(found):
            raise _not_a_file(path, found, doing)
        if not flags & os.O_NONBLOCK:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an ``flock`` on the lock file `path` (created if missing) for the ``with``
    block, waiting for another holder to let go."""
    fd = open_regular(path, os.O_RDWR | os.O_CREAT, doing="lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _not_a_file(path: Path | str, found: int, doing: str) -> WorkspaceError:
    return WorkspaceError(f"cannot {doing} {path}: it is {what_it_is(found)}, not a file")


def open_binary(path: Path | str) -> BinaryIO:
    """The regular file at `path`, open to read as bytes (see `open_regular`)."""
    return os.fdopen(open_regular(path), "rb")


def read_bytes(path: Path | str) -> bytes:
    """The content of the regular file at `path` (see `open_regular`)."""
    with open_binary(path) as handle:
        return handle.read()


def read_text(path: Path | str, errors: str = "strict") -> str:
    """The content of the regular file at `path`, as UTF-8 text with its line ends made
    ``\n`` (as `Path.read_text` reads it; see `open_regular`)."""
    with os.fdopen(open_regular(path), encoding="utf-8", errors=errors) as handle:
        return handle.read()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    data: bytes | Sequence[bytes | memoryview],
    *,
    durable: bool = True,
    mode: int | None = 0o600,
    clean: bool = True,
) -> None:
    """Write `data` (bytes, or pieces written one after another: a large file need not be
    joined in memory first) to `path` through a temp file and a rename. The file gets
    `mode` (the engine's records: readable by their owner only); with ``mode=None`` (a
    user's file) it keeps the mode of the file it replaces, else 0644. With `clean`,
    temporary files a crash left beside `path` are removed first (which lists the
    folder: a caller writing many files into one folder cleans once, not per file)."""
    pieces = (data,) if isinstance(data, bytes) else data
    if clean:
        _remove_stale_temps(path)
    try:
        _write_atomic(path, pieces, durable=durable, mode=mode)
    except IsADirectoryError:
        raise WorkspaceError(f"cannot write {path}: it is a folder, not a file") from None
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(str(path), sum(len(piece) for piece in pieces)) from exc
        raise


def _remove_stale_temps(path: Path) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if name.startswith(f".{path.name}.") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)


def _write_atomic(
    path: Path, pieces: Sequence[bytes | memoryview], *, durable: bool, mode: int | None
) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is None:  # a user's file: keep the mode of the file replaced, else 0644
            try:
                mode = os.stat(path).st_mode & 0o777
            except FileNotFoundError:
                mode = 0o644
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def write_json_atomic(
    path: Path, value: Any, *, durable: bool = True, indent: int | None = 2, clean: bool = True
) -> None:
    """Write `value` as JSON (indented unless ``indent=None``), atomically."""
    text = json.dumps(value, indent=indent, ensure_ascii=False) + "\n"
    write_atomic(path, text.encode("utf-8"), durable=durable, clean=clean)


# A sealed JSON file (the state and status caches) is the JSON text of an object without
# its closing brace, then the checksum key and the SHA-256 of everything before it: a
# file torn, damaged or edited by hand is never taken for what it was written as.
_CHECKSUM_MARK = b',"checksum":"'


def seal_tail(raw: bytes | memoryview) -> bytes:
    """What follows `raw` (an object's JSON text without its closing brace) in a sealed
    file."""
    return _CHECKSUM_MARK + hashlib.sha256(raw).hexdigest().encode() + b'"}\n'


def unseal(data: bytes) -> dict[str, Any] | None:
    """The object a sealed file holds, or None when its checksum does not hold."""
    cut = data.rfind(_CHECKSUM_MARK)
    if cut < 0 or data[cut + len(_CHECKSUM_MARK) :].rstrip() != (
        hashlib.sha256(data[:cut]).hexdigest().encode() + b'"}'
    ):
        return None
    try:
        value = json.loads(data[:cut] + b"}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
