"""What the machine and a process use: read from ``/proc`` on Linux, else with psutil.

Importing psutil costs a one-task ``run`` some 50 M instructions (7 % of it), for figures
that Linux keeps in a file each. On Linux the functions here read those files as psutil
does — the same files and the same arithmetic, so each figure means what psutil's means
(memory: ``MemTotal - MemAvailable`` of ``/proc/meminfo``; disk: ``statvfs`` as seen by
an unprivileged user; CPU: the fields of ``/proc/stat`` less idle and iowait; a process's
CPU time, resident set and threads: ``/proc/PID/stat``). psutil is imported only for what
``/proc`` does not tell as simply: on other systems, on kernels without ``MemAvailable``
or ``/proc/PID/task/TID/children``, and for the processes a process started (psutil
finds its whole tree).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, NamedTuple

LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if LINUX else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if LINUX else 4096


class Memory(NamedTuple):
    total: int  # bytes
    available: int  # bytes
    percent: float  # in use, 0-100 (one decimal)


class Disk(NamedTuple):
    total: int  # bytes
    free: int  # bytes free to an unprivileged user
    percent: float  # in use, 0-100 (one decimal), of what such a user can have


def _percent(used: float, total: float) -> float:
    return round(used / total * 100, 1) if total else 0.0


def cpu_count() -> int:
    """The machine's logical CPUs (as psutil counts them: those online)."""
    return os.cpu_count() or 1


def memory() -> Memory:
    """The machine's memory: its size, what is available, the share in use."""
    if LINUX:
        fields: dict[bytes, int] = {}
        with open("/proc/meminfo", "rb") as handle:
            for line in handle:
                name, value = line.split()[:2]
                fields[name] = int(value) * 1024
        total, available = fields[b"MemTotal:"], fields.get(b"MemAvailable:", 0)
        if available > 0:  # else a kernel older than 3.14: psutil estimates it
            if available > total:
                available = fields[b"MemFree:"]
            return Memory(total, available, _percent(total - available, total))
    import psutil

    found = psutil.virtual_memory()
    return Memory(found.total, found.available, found.percent)


def disk(path: str) -> Disk:
    """The filesystem of `path`: its size, what is free, the share in use."""
    if LINUX:
        st = os.statvfs(path)
        total = st.f_blocks * st.f_frsize
        used = total - st.f_bfree * st.f_frsize
        free = st.f_bavail * st.f_frsize
        return Disk(total, free, _percent(used, used + free))
    import psutil

    found = psutil.disk_usage(path)
    return Disk(found.total, found.free, found.percent)


_CPU_FIELDS = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)


def cpu_times() -> dict[str, float]:
    """The machine's CPU times in seconds since boot, summed over its CPUs, by kind
    (``user``, ``idle``, … as psutil names them)."""
    if LINUX:
        with open("/proc/stat", "rb") as handle:
            values = handle.readline().split()[1 : len(_CPU_FIELDS) + 1]
        # fewer fields on older kernels
        return {name: int(v) / _TICKS for name, v in zip(_CPU_FIELDS, values, strict=False)}
    import psutil

    times: dict[str, float] = psutil.cpu_times()._asdict()
    return times


def cpu_total(times: dict[str, float]) -> float:
    """All the time in `times` (guest time is counted in user time already)."""
    return sum(times.values()) - times.get("guest", 0.0) - times.get("guest_nice", 0.0)


def cpu_idle(times: dict[str, float]) -> float:
    """The idle time in `times`: idle, and waiting for I/O."""
    return times["idle"] + times.get("iowait", 0.0)


class MachineCpu:
    """The share of the machine's CPU in use between one `percent` call and the next."""

    def __init__(self) -> None:
        self._times = cpu_times()

    def percent(self) -> float:
        """0-100 (one decimal), since the last call (the first: since this was made). A
        count that went back (iowait may) counts as 0, as in psutil."""
        now = cpu_times()
        deltas = {name: max(0.0, now[name] - self._times.get(name, 0.0)) for name in now}
        self._times = now
        total = cpu_total(deltas)
        return _percent(total - cpu_idle(deltas), total)


def net_bytes() -> tuple[int, int] | None:
    """Bytes sent and received by all the machine's network interfaces (None: none)."""
    if LINUX:
        sent = received = 0
        with open("/proc/net/dev", "rb") as handle:
            lines = handle.readlines()[2:]
        for line in lines:
            fields = line[line.rfind(b":") + 1 :].split()
            received += int(fields[0])
            sent += int(fields[8])
        return (sent, received) if lines else None
    import psutil

    found = psutil.net_io_counters()
    return None if found is None else (found.bytes_sent, found.bytes_recv)


class ProcessUse:
    """One process's CPU, resident memory and threads. CPU is a percentage of one CPU
    since the last `read` (0.0 at the first), as psutil's ``Process.cpu_percent``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._process: Any = None  # a psutil.Process, where /proc is not read
        self._last: tuple[float, float] | None = None  # (monotonic time, CPU seconds)

    def read(self) -> tuple[float, int, int]:
        """CPU %, resident bytes, threads; OSError when the process has ended."""
        if not LINUX:
            return self._read_psutil()
        with open(f"/proc/{self.pid}/stat", "rb") as handle:
            data = handle.read()
        fields = data[data.rfind(b")") + 2 :].split()  # the name may hold anything
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
        now = time.monotonic()
        cpu = 0.0
        if self._last is not None and now > self._last[0]:
            cpu = round((seconds - self._last[1]) / (now - self._last[0]) * 100, 1)
        self._last = (now, seconds)
        return cpu, int(fields[21]) * _PAGE, int(fields[17])

    def _read_psutil(self) -> tuple[float, int, int]:
        import psutil

        try:
            if self._process is None:
                self._process = psutil.Process(self.pid)
            with self._process.oneshot():
                return (
                    self._process.cpu_percent(None),
                    self._process.memory_info().rss,
                    self._process.num_threads(),
                )
        except psutil.Error as exc:
            raise ProcessLookupError(str(exc)) from exc


def has_children(pid: int) -> bool | None:
    """Whether the process has started processes that are still there (None: cannot
    tell without psutil — another system, a kernel without ``children`` files, or the
    process has ended)."""
    if not LINUX or not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        return None
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as handle:
                if handle.read().strip():
                    return True
        except FileNotFoundError:
            continue  # the thread has ended: its children went to another one
    return False
