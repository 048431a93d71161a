"""The run lock: one runner per instance holds ``instances/ID/run.lock`` for its life.

The lock is an ``flock`` on the file, so the kernel drops it when the runner dies,
however it dies; a probe from any process (or another descriptor in the same one)
tells a live runner from a crashed one.

The lock file also holds a little room on the disk (`RESERVE` bytes, allocated when the
lock is taken): should the disk fill up during the run, the runner gives that room back
so that it can still record where the run stopped, instead of leaving the instance
``running`` with no runner.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING

from workflow_cli.errors import DiskFullError, LockHeldError, is_disk_full
from workflow_cli.store.files import open_regular

if TYPE_CHECKING:
    from workflow_cli.store.state import State

RUN_LOCK_FILE = "run.lock"
RESERVE = 256 * 1024


class RunLock:
    """Held by the runner of one instance; acquire fails at once when another holds it."""

    def __init__(self, instance_dir: Path) -> None:
        self.path = instance_dir / RUN_LOCK_FILE
        self._fd: int | None = None

    def acquire(self, instance_id: str) -> None:
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT, doing="lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeldError(
                f"instance {instance_id} is being run by another process; "
                "wait for it, stop it with 'workflow_cli stop', "
                f"or watch it with 'workflow_cli monitor {instance_id}'"
            ) from None
        self._fd = fd

    def reserve(self) -> None:
        """Set aside `RESERVE` bytes of disk in the lock file (DiskFullError if there is
        not even that much room: a run could not record its end)."""
        assert self._fd is not None
        try:
            os.posix_fallocate(self._fd, 0, RESERVE)
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(str(self.path), RESERVE, "set aside room in") from exc
            raise

    def give_back_reserve(self) -> None:
        """Free the room set aside, for the last records of a run on a full disk."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # the room set aside is not kept between runs
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def runner_alive(instance_dir: Path) -> bool:
    """Whether a live process holds the instance's run lock (a runner is executing it)."""
    try:
        fd = open_regular(instance_dir / RUN_LOCK_FILE, doing="lock")
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's lock when it got one
    return False


def runner_gone(instance_dir: Path, state: State) -> bool:
    """Whether `state` says running but no runner process is behind it (it died).

    The recorded runner's pid is asked first: probing the run lock takes it for a moment,
    and a runner starting in that moment would find the instance busy."""
    if state["state"] != "running":
        return False
    pid = (state.get("runner") or {}).get("pid")
    if isinstance(pid, int) and pid > 0 and _process_exists(pid):
        return False
    # The recorded runner is gone; a new one (recovering the run) may hold the lock
    # without having written its run_started yet.
    return not runner_alive(instance_dir)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
