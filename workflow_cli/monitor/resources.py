"""Resource sampling during a run, its history, and the thresholds it is checked against.

A `ResourceSampler` is a background thread that, every ``sample_interval`` seconds,
samples the runner's process tree (the runner and every process it started) and the
machine (read by `workflow_cli.monitor.machine`), and appends the sample as one line to
``instances/ID/resources.jsonl``::

    {"time": "...",
     "process": {"cpu": 0.12, "rss": 48234496, "memory": 0.006, "processes": 2, "threads": 7},
     "machine": {"cpu": 0.31, "memory": 0.52, "disk": 0.61,
                 "net_sent": 1830.0, "net_recv": 5120.0}}

``cpu`` is a fraction of the whole machine (all cores), ``memory`` of its RAM (for the
process tree: its resident set over the machine's RAM), ``disk`` of the workspace's
filesystem in use; ``rss`` is bytes; ``net_sent``/``net_recv`` are the machine's bytes per
second since the previous sample.

Thresholds apply to what the run itself uses and what threatens it: ``cpu`` is the run's
own process tree (as a share of all cores: other programs busy on the machine do not
count against the run), ``memory`` and ``disk`` are the machine's (what runs out and
stops a run). Each has a warning and a critical level, taken from the definition's
``monitoring.thresholds``, else from the ``monitoring:`` block of the workspace's
``workflow_cli.yaml``, else the defaults (cpu 0.8/0.9, memory 0.7/0.85, disk 0.8/0.9). A
value at or above a level has crossed it. An alert is written when a metric rises to a
level it was not at (once per crossing, not once per sample); after it drops back below,
a new crossing of the same level alerts again only once ``cooldown`` seconds have passed
(default 300), so a value hovering at a threshold makes one alert. A rise to critical
that alerts also calls ``on_critical``.

psutil is imported only to read the processes a runner has started, when it has any.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Any

from workflow_cli.errors import WorkflowCliError, WorkspaceError
from workflow_cli.monitor import machine
from workflow_cli.monitor.alerts import append_alert, make_alert
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.config import config_block, config_path
from workflow_cli.store.files import open_binary, open_regular
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

RESOURCES_FILE = "resources.jsonl"
METRICS = ("cpu", "memory", "disk")
LEVELS = ("warning", "critical")
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "cpu": {"warning": 0.8, "critical": 0.9},
    "memory": {"warning": 0.7, "critical": 0.85},
    "disk": {"warning": 0.8, "critical": 0.9},
}
DEFAULT_SAMPLE_INTERVAL = 1.0
MIN_SAMPLE_INTERVAL = 0.1
MAX_SAMPLE_INTERVAL = 3600.0  # an hour: beyond it a sampler would never sample
DEFAULT_STUCK_AFTER = 900.0
DEFAULT_ALERT_COOLDOWN = 300.0
# CPU shares measured over less time than this are too coarse (clock ticks) to judge a
# run by: they are recorded, not checked against the thresholds.
MIN_CPU_SPAN = 0.5

Thresholds = dict[str, dict[str, float]]
Sample = dict[str, Any]


# -- settings -------------------------------------------------------------------------


@readonly_dataclass
class MonitorSettings:
    """How often to sample, the thresholds, and when a run with no progress looks stuck."""

    sample_interval: float = DEFAULT_SAMPLE_INTERVAL
    thresholds: Thresholds = field(
        default_factory=lambda: {m: dict(v) for m, v in DEFAULT_THRESHOLDS.items()}
    )
    stuck_after: float = DEFAULT_STUCK_AFTER


def load_workspace_monitoring(workspace: Workspace) -> dict[str, Any]:
    """The ``monitoring:`` block of the workspace's ``workflow_cli.yaml`` ({} without one),
    checked: a bad value is a WorkspaceError naming the file and the key."""
    block = config_block(workspace, "monitoring")
    if block is None:
        return {}
    _check_block(block, str(config_path(workspace)))
    return dict(block)


def config_stamp(workspace: Workspace) -> str | None:
    """What tells one version of ``workflow_cli.yaml`` from another (size and mtime), or
    None without the file: a health record scored under other settings is out of date."""
    try:
        info = os.stat(config_path(workspace))
    except FileNotFoundError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}"


def _check_block(block: Any, source: str) -> None:
    where = f"{source}: monitoring"
    if not isinstance(block, dict):
        raise WorkspaceError(f"{where} must be a mapping")
    unknown = set(block) - {"sample_interval", "thresholds", "stuck_after"}
    if unknown:
        raise WorkspaceError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    interval = block.get("sample_interval")
    if interval is not None and (
        not _is_number(interval) or not MIN_SAMPLE_INTERVAL <= interval <= MAX_SAMPLE_INTERVAL
    ):
        raise WorkspaceError(
            f"{where}.sample_interval must be a number of seconds from {MIN_SAMPLE_INTERVAL}"
            f" to {MAX_SAMPLE_INTERVAL:g}"
        )
    stuck = block.get("stuck_after")
    if stuck is not None and (not _is_number(stuck) or stuck <= 0):
        raise WorkspaceError(f"{where}.stuck_after must be a number of seconds > 0")
    thresholds = block.get("thresholds")
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise WorkspaceError(f"{where}.thresholds must be a mapping")
    for metric, levels in thresholds.items():
        if metric not in METRICS:
            raise WorkspaceError(
                f"{where}.thresholds: unknown metric '{metric}' (one of: {', '.join(METRICS)})"
            )
        if not isinstance(levels, dict):
            raise WorkspaceError(f"{where}.thresholds.{metric} must be a mapping")
        for level, value in levels.items():
            if level not in LEVELS:
                raise WorkspaceError(
                    f"{where}.thresholds.{metric}: unknown level '{level}' (warning, critical)"
                )
            if not _is_number(value) or not 0 <= value <= 1:
                raise WorkspaceError(
                    f"{where}.thresholds.{metric}.{level} must be a fraction from 0 to 1"
                )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def monitor_settings(
    definition: dict[str, Any] | None, workspace_block: dict[str, Any] | None = None
) -> MonitorSettings:
    """The settings for one instance: each value from the definition's ``monitoring``
    block, else the workspace's, else the default. A warning above its critical level is
    a WorkspaceError."""
    own = (definition or {}).get("monitoring") or {}
    shared = workspace_block or {}
    thresholds: Thresholds = {}
    for metric in METRICS:
        thresholds[metric] = {}
        for level in LEVELS:
            value = ((own.get("thresholds") or {}).get(metric) or {}).get(level)
            if value is None:
                value = ((shared.get("thresholds") or {}).get(metric) or {}).get(level)
            if value is None:
                value = DEFAULT_THRESHOLDS[metric][level]
            thresholds[metric][level] = float(value)
        if thresholds[metric]["warning"] > thresholds[metric]["critical"]:
            raise WorkspaceError(
                f"monitoring thresholds: {metric} warning {thresholds[metric]['warning']:g} "
                f"is above its critical level {thresholds[metric]['critical']:g}"
            )
    interval = own.get("sample_interval", shared.get("sample_interval", DEFAULT_SAMPLE_INTERVAL))
    stuck_after = shared.get("stuck_after", DEFAULT_STUCK_AFTER)
    return MonitorSettings(
        sample_interval=min(max(float(interval), MIN_SAMPLE_INTERVAL), MAX_SAMPLE_INTERVAL),
        thresholds=thresholds,
        stuck_after=float(stuck_after),
    )


def threshold_level(value: float, levels: dict[str, float]) -> str | None:
    """``critical``, ``warning`` or None: the highest level `value` has reached."""
    if value >= levels["critical"]:
        return "critical"
    if value >= levels["warning"]:
        return "warning"
    return None


# -- history --------------------------------------------------------------------------


def history_path(workspace: Workspace, instance_id: str) -> Path:
    return workspace.instance_dir(instance_id) / RESOURCES_FILE


def read_history(workspace: Workspace, instance_id: str) -> list[Sample]:
    """Every sample recorded for the instance, oldest first (a torn last line is skipped)."""
    samples, _ = read_history_from(history_path(workspace, instance_id), 0)
    return samples


def read_history_from(path: Path, offset: int) -> tuple[list[Sample], int]:
    """The whole samples after byte `offset`, and the offset after the last of them."""
    try:
        with open_binary(path) as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    samples: list[Sample] = []
    for line in data[:end].splitlines():
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if isinstance(sample, dict):
            samples.append(sample)
    return samples, offset + end


def merge_peaks(peaks: dict[str, float], samples: list[Sample]) -> dict[str, float]:
    """`peaks` raised by `samples`: the highest of the run's cpu (its process tree), the
    machine's memory and disk (the metrics with thresholds), the machine's cpu, the
    process tree's memory and rss, and how many samples there were."""
    merged = dict(peaks)
    for sample in samples:
        machine = sample.get("machine") or {}
        process = sample.get("process") or {}
        for key, value in (
            ("cpu", process.get("cpu")),
            ("memory", machine.get("memory")),
            ("disk", machine.get("disk")),
            ("machine_cpu", machine.get("cpu")),
            ("process_memory", process.get("memory")),
            ("process_rss", process.get("rss")),
        ):
            if isinstance(value, int | float) and value > merged.get(key, float("-inf")):
                merged[key] = float(value) if key != "process_rss" else value
        merged["samples"] = merged.get("samples", 0) + 1
    return merged


# -- sampling -------------------------------------------------------------------------


@readonly_dataclass
class Crossing:
    """A metric that has just risen to a threshold level."""

    metric: str
    level: str
    value: float
    threshold: float

    def describe(self) -> str:
        whose = "the run's cpu" if self.metric == "cpu" else f"machine {self.metric}"
        return (
            f"{whose} at {self.value:.0%} crossed the {self.level} threshold {self.threshold:.0%}"
        )


class MachineProbe:
    """Takes samples of a process tree and of the machine.

    CPU figures are measured between two calls, so the first call only sets the baseline;
    the readers of the processes are kept between calls for the same reason. The root
    process and the machine are read by `workflow_cli.monitor.machine` (from ``/proc`` on
    Linux); psutil is imported to find and read the processes the root has started,
    once it has any."""

    def __init__(self, disk_path: Path, pid: int | None = None) -> None:
        self.disk_path = disk_path
        self.pid = pid or os.getpid()
        self.cpus = machine.cpu_count()
        self.total_memory = machine.memory().total
        self._root = machine.ProcessUse(self.pid)
        self._machine_cpu = machine.MachineCpu()
        self._procs: dict[int, Any] = {}  # the root's descendants: psutil.Process by pid
        self._net: tuple[float, int, int] | None = None
        self._last = time.monotonic()
        self.span = 0.0  # seconds the last sample's CPU figures were measured over
        self.sample()  # baseline for the CPU figures

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        self.span, self._last = now - self._last, now
        cpu = 0.0
        rss = 0
        threads = 0
        processes = 0
        try:
            cpu, rss, threads = self._root.read()
            processes = 1
        except OSError:
            pass  # the root has ended (or become unreadable)
        if self._procs or machine.has_children(self.pid) is not False:
            for use in self._descendants():
                cpu += use[0]
                rss += use[1]
                threads += use[2]
                processes += 1
        memory = machine.memory()
        sample_machine: dict[str, Any] = {
            "cpu": round(self._machine_cpu.percent() / 100, 4),
            "memory": round(memory.percent / 100, 4),
            "disk": round(machine.disk(str(self.disk_path)).percent / 100, 4),
            "net_sent": 0.0,
            "net_recv": 0.0,
        }
        net = machine.net_bytes()
        if net is not None:
            sent, received = net
            if self._net is not None and now > self._net[0]:
                span = now - self._net[0]
                sample_machine["net_sent"] = round(max(0, sent - self._net[1]) / span, 1)
                sample_machine["net_recv"] = round(max(0, received - self._net[2]) / span, 1)
            self._net = (now, sent, received)
        return {
            "process": {
                # Clamped: over a very short span, CPU-time ticks can exceed the span.
                "cpu": round(min(1.0, cpu / 100 / self.cpus), 4),
                "rss": rss,
                "memory": round(rss / self.total_memory, 4) if self.total_memory else 0.0,
                "processes": processes,
                "threads": threads,
            },
            "machine": sample_machine,
        }

    def _descendants(self) -> list[tuple[float, int, int]]:
        """CPU %, resident bytes and threads of each process the root has started (and
        they have), read with psutil; a process's first reading has CPU 0.0."""
        import psutil

        try:
            tree = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        found: list[tuple[float, int, int]] = []
        alive: dict[int, Any] = {}
        for proc in tree:
            kept = self._procs.get(proc.pid, proc)
            try:
                with kept.oneshot():
                    found.append(
                        (kept.cpu_percent(None), kept.memory_info().rss, kept.num_threads())
                    )
            except psutil.Error:
                continue  # ended (or became unreadable) between listing and reading
            alive[proc.pid] = kept
        self._procs = alive
        return found


class ResourceSampler:
    """A background thread sampling a runner's process tree and the machine.

    ``start()`` starts the thread, which takes the CPU baseline; a sample is taken every
    ``interval`` seconds and once more at ``stop()``, so even a run shorter than the
    interval leaves one sample. Each sample is appended to the instance's
    ``resources.jsonl`` and checked against the thresholds. ``on_critical`` runs on the
    sampler's thread; an exception it raises is kept in ``errors``, never raised.

    ``progress`` is ``(offset, peaks)``: the history file's size after the last sample this
    sampler wrote and the peaks of the samples it took (see `merge_peaks`). ``cpu_seconds``
    is the CPU time the sampler's thread has used, ``last`` the last sample.
    """

    def __init__(
        self,
        workspace: Workspace,
        instance_id: str,
        *,
        clock: Clock,
        interval: float = DEFAULT_SAMPLE_INTERVAL,
        thresholds: Thresholds | None = None,
        pid: int | None = None,
        on_critical: Callable[[Crossing], None] | None = None,
        cooldown: float = DEFAULT_ALERT_COOLDOWN,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.instance_id = instance_id
        self.clock = clock
        self.interval = max(interval, MIN_SAMPLE_INTERVAL)
        self.thresholds = thresholds or MonitorSettings().thresholds
        self.pid = pid
        self.on_critical = on_critical
        self.cooldown = cooldown
        self.monotonic = monotonic
        self._alerted: dict[tuple[str, str], float] = {}  # (metric, level) -> when
        self.path = history_path(workspace, instance_id)
        self.levels: dict[str, str | None] = dict.fromkeys(METRICS)
        self.progress: tuple[int, dict[str, float]] = (0, {})
        self.last: Sample | None = None
        self.crossings: list[Crossing] = []
        self.errors: list[str] = []
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._probe: MachineProbe | None = None
        self._fd: int | None = None

    def start(self, *, background: bool = True) -> None:
        """Start sampling in the background: the thread takes the CPU baseline, so a
        short run does not wait for it. With ``background=False`` the baseline is taken
        now, and samples only by calling `sample_once`."""
        self._fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, doing="write")
        self.progress = (os.fstat(self._fd).st_size, {})
        if not background:
            self._open_probe()
            return
        self._thread = threading.Thread(
            target=self._loop, name=f"resources-{self.instance_id}", daemon=True
        )
        self._thread.start()

    def _open_probe(self) -> None:
        began = time.thread_time()
        try:
            self._probe = MachineProbe(self.workspace.root, self.pid)
        finally:
            self.cpu_seconds += time.thread_time() - began

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, after one last sample; safe to call twice."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ResourceSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        try:
            self._open_probe()
        except Exception as exc:  # this machine cannot be read: the run goes on
            self.errors.append(f"resource sample: {type(exc).__name__}: {exc}")
            return
        while not self._stop.wait(self.interval):
            self._sample_safely()
        self._sample_safely()

    def _sample_safely(self) -> None:
        began = time.thread_time()
        try:
            self.sample_once()
        except (OSError, WorkflowCliError) as exc:
            self.errors.append(f"resource sample: {exc}")
        except Exception as exc:  # psutil errors and anything else: keep the run going
            self.errors.append(f"resource sample: {type(exc).__name__}: {exc}")
        finally:
            self.cpu_seconds += time.thread_time() - began

    def sample_once(self) -> Sample:
        """Take, record and check one sample now (the thread calls this)."""
        if self._probe is None or self._fd is None:
            raise RuntimeError("the sampler is not started")
        sample: Sample = {
            "time": self.clock().isoformat(timespec="milliseconds"),
            **self._probe.sample(),
        }
        span = self._probe.span
        line = json.dumps(sample, separators=(",", ":")).encode("utf-8") + b"\n"
        os.write(self._fd, line)  # O_APPEND: one write, one whole line
        offset, peaks = self.progress
        self.progress = (offset + len(line), merge_peaks(peaks, [sample]))
        self.last = sample
        self._check(sample, cpu_measured=span >= MIN_CPU_SPAN)
        return sample

    def _check(self, sample: Sample, *, cpu_measured: bool) -> None:
        for metric in METRICS:
            if metric == "cpu" and not cpu_measured:
                continue
            source = sample["process"] if metric == "cpu" else sample["machine"]
            value = float(source[metric])
            levels = self.thresholds[metric]
            level = threshold_level(value, levels)
            previous = self.levels[metric]
            self.levels[metric] = level
            if level is None or _rank(level) <= _rank(previous):
                continue
            now = self.monotonic()
            last = self._alerted.get((metric, level))
            if last is not None and now - last < self.cooldown:
                continue  # the same crossing again, too soon: one alert is enough
            self._alerted[(metric, level)] = now
            crossing = Crossing(metric, level, value, levels[level])
            self.crossings.append(crossing)
            append_alert(
                self.workspace,
                make_alert(
                    self.clock,
                    level=level,
                    instance=self.instance_id,
                    kind="resource",
                    metric=metric,
                    value=value,
                    threshold=levels[level],
                    message=crossing.describe(),
                ),
            )
            if level == "critical" and self.on_critical is not None:
                try:
                    self.on_critical(crossing)
                except Exception as exc:
                    self.errors.append(f"on critical {metric}: {type(exc).__name__}: {exc}")


def _rank(level: str | None) -> int:
    return 0 if level is None else LEVELS.index(level) + 1
