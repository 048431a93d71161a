"""The append-only journal of one instance: `events.jsonl`.

Each line is one JSON object: ``seq`` (1, 2, 3, … with no gaps), ``time``, ``type``,
the event's fields, and last ``crc`` — the CRC-32 of the line's bytes before ``,"crc":``.
A record counts once its newline is on disk. A last line without its newline is a torn
write from a crash: readers ignore it and the next appender cuts it off. Any other bad
line is damage, and the journal is refused rather than guessed at.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import signal
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import (
    DiskFullError,
    JournalCorruptError,
    LockHeldError,
    WorkspaceError,
    is_disk_full,
)
from workflow_cli.store.files import open_binary, open_regular

Event = dict[str, Any]  # an event as read back: a record with its seq and time
Record = Mapping[str, Any]  # an event to write (one of `store.events`), before the journal
Clock = Callable[[], datetime]

_CRC_MARK = b',"crc":"'
LOCK_WAIT_SECONDS = 10.0


def one_encoder(encoder: json.JSONEncoder) -> Callable[[Any], str]:
    """`encoder.encode` (of an unindented, unsorted encoder that writes text as it is)
    by one C encoder made once: `JSONEncoder.encode` makes one per call, which costs
    more than encoding a small value. Values must hold no cycles (events and
    definitions are plain data). Where the C accelerator is missing or builds
    differently, `encoder.encode` itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None or encoder.indent is not None or encoder.sort_keys or encoder.ensure_ascii:
        return encoder.encode
    try:
        chunks = make(
            None,  # no check for cycles
            encoder.default,
            json.encoder.encode_basestring,
            None,  # no indent
            encoder.key_separator,
            encoder.item_separator,
            False,  # sort_keys
            encoder.skipkeys,
            encoder.allow_nan,
        )

        def encode(value: Any) -> str:
            return "".join(chunks(value, 0))

        sample = {"a": [1, 2.5, None, True, "\u00e9\n"], "b": {}}
        if encode(sample) == encoder.encode(sample):
            return encode
    except (TypeError, ValueError):  # an accelerator of another Python version
        pass
    return encoder.encode


# One C encoder for every line (json.dumps with options builds one per call).
_encode = one_encoder(json.JSONEncoder(ensure_ascii=False, separators=(",", ":")))


def encode_record(record: Event) -> bytes:
    """One journal line for `record` (which already has seq, time and type)."""
    body = _encode(record)
    raw = body.encode("utf-8")[:-1]
    return raw + _CRC_MARK + b"%08x" % zlib.crc32(raw) + b'"}\n'


def decode_line(line: bytes, where: str) -> Event:
    """The event on one complete line, or JournalCorruptError naming `where`."""
    cut = line.rfind(_CRC_MARK)
    if cut < 0 or not line.endswith(b'"}\n'):
        raise JournalCorruptError(f"{where}: no checksum; the journal is damaged")
    raw = line[:cut]
    want = line[cut + len(_CRC_MARK) : -3]
    if want != b"%08x" % zlib.crc32(raw):
        raise JournalCorruptError(f"{where}: checksum mismatch; the journal is damaged")
    try:
        value = json.loads(raw + b"}")
    except ValueError as exc:
        raise JournalCorruptError(f"{where}: not JSON ({exc}); the journal is damaged") from exc
    if not isinstance(value, dict):
        raise JournalCorruptError(f"{where}: not an event object; the journal is damaged")
    return value


class Journal:
    """Reads and appends one instance's journal, remembering how far it has read."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.offset = 0
        self.last_seq = 0
        # flock on a descriptor kept open: a few microseconds a batch, where opening a
        # lock file each time cost more than the fsync it guards.
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._fd: int | None = None  # the journal itself, kept open once written to
        self._hash = hashlib.sha256()  # of every byte up to `offset`

    def digest(self) -> str:
        """SHA-256 of the journal up to `offset`: what a cache of its fold stands for."""
        return self._hash.hexdigest()

    def rewind(self) -> None:
        """Read again from the start."""
        self.offset, self.last_seq, self._hash = 0, 0, hashlib.sha256()

    def skip_to(self, offset: int, last_seq: int, digest: str) -> bool:
        """Start reading after a point already folded (a state cache), if the journal's
        bytes up to `offset` are the ones the cache stands for: their digest is `digest`.
        False (and nothing changed) when they are not, or cannot be read."""
        try:
            with open_binary(self.path) as handle:
                prefix = handle.read(offset)
        except (OSError, WorkspaceError):
            return False
        found = hashlib.sha256(prefix)
        if len(prefix) != offset or found.hexdigest() != digest:
            return False
        self.offset, self.last_seq, self._hash = offset, last_seq, found
        return True

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the journal lock (re-entrant), or fail with LockHeldError after a bounded wait."""
        self.lock()
        try:
            yield
        finally:
            self.unlock()

    def lock(self) -> None:
        """Take the journal lock (re-entrant; `unlock` once per `lock`)."""
        if self._lock_depth == 0:
            self._acquire()
        self._lock_depth += 1

    def unlock(self) -> None:
        self._lock_depth -= 1
        if self._lock_depth == 0 and self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _acquire(self) -> None:
        if self._lock_fd is None:
            self._lock_fd = open_regular(
                self.path.with_name("events.lock"), os.O_RDWR | os.O_CREAT, doing="lock"
            )
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        pause = 0.001
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(
                        f"the journal {self.path} is busy (another command held it for "
                        f"{LOCK_WAIT_SECONDS:.0f}s); try again"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def _writer(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def sync(self) -> None:
        """Make everything appended so far durable (after appends with durable=False)."""
        try:
            os.fdatasync(self._writer())
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(str(self.path), 0, "make durable") from exc
            raise

    def close(self) -> None:
        """Let go of the descriptors kept open (the journal stays usable)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None and self._lock_depth == 0:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:
        self.close()

    def read_new(self) -> list[Event]:
        """Complete events appended since the last read; a torn last line is left unread."""
        if self._fd is not None:
            size = os.fstat(self._fd).st_size
            if size <= self.offset:  # nothing new: the usual case, once per batch
                return []
            data = os.pread(self._fd, size - self.offset, self.offset)
        else:
            try:
                with open_binary(self.path) as handle:
                    handle.seek(self.offset)
                    data = handle.read()
            except FileNotFoundError:
                return []
            except OSError as exc:  # a folder, or unreadable: no journal to read
                raise WorkspaceError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        events: list[Event] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start : end + 1]
            event = decode_line(line, f"{self.path} at byte {self.offset + start}")
            seq = event.get("seq")
            if seq != self.last_seq + 1:
                raise JournalCorruptError(
                    f"{self.path} at byte {self.offset + start}: sequence number {seq} "
                    f"follows {self.last_seq}; the journal is damaged"
                )
            self.last_seq = seq
            events.append(event)
            start = end + 1
        self._hash.update(memoryview(data)[:start])
        self.offset += start
        return events

    def now(self) -> str:
        """The time written on events appended now."""
        return self.clock().isoformat(timespec="milliseconds")

    def append(
        self, records: Iterable[Record], *, durable: bool = True
    ) -> tuple[list[Event], list[Event]]:
        """Append `records` under the journal lock.

        Returns the events others appended since our last read (to be folded first)
        and the events written, with their sequence numbers and times.
        """
        with self.locked():
            external = self.read_new()
            now = self.now()
            written = [
                {"seq": self.last_seq + n, "time": now, **record}
                for n, record in enumerate(records, 1)
            ]
            self.write(written, durable=durable)
            return external, written

    def write(self, events: list[Event], *, durable: bool) -> None:
        """Append events already numbered from ``last_seq + 1``, with the journal lock
        held and everything before them read."""
        if not events:
            return
        assert self._lock_depth > 0 and events[0]["seq"] == self.last_seq + 1
        payload = b"".join(encode_record(event) for event in events)
        fd = self._writer()
        if os.fstat(fd).st_size != self.offset:
            os.ftruncate(fd, self.offset)  # a torn tail from a crashed writer
        try:
            done = 0
            while done < len(payload):  # a write can be short (a disk filling up)
                wrote = os.pwrite(fd, memoryview(payload)[done:], self.offset + done)
                if wrote == 0:
                    raise OSError(errno.ENOSPC, "no progress writing the journal")
                done += wrote
            if durable:
                os.fdatasync(fd)
        except OSError as exc:
            os.ftruncate(fd, self.offset)  # leave no torn line
            if is_disk_full(exc):
                raise DiskFullError(str(self.path), len(payload), "append to") from exc
            raise
        self._hash.update(payload)
        self.offset += len(payload)
        self.last_seq = events[-1]["seq"]
        _count_append()


# Fault injection for crash tests: WORKFLOW_CLI_KILL_AFTER_APPEND=N makes the process
# kill itself with SIGKILL right after its N-th journal append, exactly as `kill -9` would.
_KILL_AFTER_APPEND = int(os.environ.get("WORKFLOW_CLI_KILL_AFTER_APPEND") or 0)
_appends = 0


def _count_append() -> None:
    global _appends
    if _KILL_AFTER_APPEND:
        _appends += 1
        if _appends >= _KILL_AFTER_APPEND:
            os.kill(os.getpid(), signal.SIGKILL)
