"""The workspace's health: ``monitoring/health.json`` and ``monitoring/metrics.prom``.

`workspace_health` scores every instance whose record is missing or out of date (its
journal has grown since, or it is running), then sums up: instances by state, scores by
level, runs that look stuck, approvals waiting and for how long, the machine's CPU and
memory and the workspace disk's free space, and the alerts recorded. It writes the
summary as ``health.json`` and as Prometheus text (``metrics.prom``, the node_exporter
textfile-collector format), both atomically.

A run looks stuck when its state is ``running`` and either no live process holds its
run lock (the runner died: ``resume`` recovers it) or nothing was appended to its journal
for longer than ``stuck_after`` seconds (default 900; ``monitoring.stuck_after`` in
``workflow_cli.yaml``, or ``health --stuck-after``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workflow_cli.engine.breaker import read_breakers
from workflow_cli.errors import WorkflowCliError
from workflow_cli.monitor import machine
from workflow_cli.monitor.alerts import count_alerts
from workflow_cli.monitor.health import (
    HEALTH_FILE,
    RECORD_VERSION,
    instance_health,
    read_all_records,
    read_summary_entries,
    summary_entry,
)
from workflow_cli.monitor.resources import (
    DEFAULT_STUCK_AFTER,
    config_stamp,
    load_workspace_monitoring,
)
from workflow_cli.store.files import write_atomic, write_json_atomic
from workflow_cli.store.instances import JOURNAL_FILE
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import INSTANCE_STATES
from workflow_cli.store.workspace import Workspace

METRICS_FILE = "metrics.prom"
HEALTH_LEVELS = ("healthy", "warning", "critical")
_LOWEST_SHOWN = 10


class CpuWindow:
    """Measures the machine's CPU use over a window of time, leaving out this process's
    own use (so a summary can measure while it works instead of sleeping to measure)."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._times = machine.cpu_times()
        self._own = time.process_time()

    def finish(self, minimum: float = 0.05) -> float:
        """The fraction of the machine's CPU others used since the window opened; waits
        out the rest of `minimum` seconds first (too short a window says little)."""
        rest = minimum - (time.monotonic() - self._start)
        if rest > 0:
            time.sleep(rest)
        after = machine.cpu_times()
        own = time.process_time() - self._own
        total = machine.cpu_total(after) - machine.cpu_total(self._times)
        idle = machine.cpu_idle(after) - machine.cpu_idle(self._times)
        if total <= 0:
            return 0.0
        return round(min(1.0, max(0.0, (total - idle - own) / total)), 4)


def measure_machine(workspace: Workspace, *, cpu: float | None = None) -> dict[str, Any]:
    """The machine now: CPU in use (measured over 0.05 s unless `cpu` is given), memory,
    the load average, and the workspace disk's size and free space."""
    if cpu is None:
        cpu = CpuWindow().finish()

    memory = machine.memory()
    disk = machine.disk(str(workspace.root))
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": round(cpu, 4),
        "cpus": machine.cpu_count(),
        "load": load,
        "memory": round(memory.percent / 100, 4),
        "memory_total": memory.total,
        "memory_available": memory.available,
        "disk": round(disk.percent / 100, 4),
        "disk_total": disk.total,
        "disk_free": disk.free,
    }


def workspace_health(
    workspace: Workspace,
    clock: Clock,
    *,
    stuck_after: float | None = None,
    machine: dict[str, Any] | None = None,
    write: bool = True,
    scored: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The health of the whole workspace (see the module docstring); written to
    ``monitoring/health.json`` and ``monitoring/metrics.prom`` unless ``write=False``.
    `machine` (as `measure_machine` returns) saves measuring the machine again;
    `scored` (records by instance id, as `instance_health` has just returned them)
    saves scoring those instances again.

    ``health.json`` keeps a few fields per instance (``scores``); an instance whose
    journal has not grown since, and that is not running, is taken from there, so a
    workspace of 1,000 finished instances costs a ``stat`` each."""
    window = CpuWindow() if machine is None else None
    block = load_workspace_monitoring(workspace)
    if stuck_after is None:
        stuck_after = float(block.get("stuck_after", DEFAULT_STUCK_AFTER))
    known = read_summary_entries(workspace)
    if known is None:  # no summary yet: start from the instances' own records
        known = {i: summary_entry(r) for i, r in read_all_records(workspace).items()}
    history = list(known.values())
    stamp = config_stamp(workspace)
    unreadable: list[dict[str, str]] = []
    current: dict[str, dict[str, Any]] = {}
    folder = str(workspace.instances_dir)
    for instance_id in workspace.instance_ids():
        try:
            size = os.stat(os.path.join(folder, instance_id, JOURNAL_FILE)).st_size
        except FileNotFoundError:
            continue  # not an instance (a folder being created, or debris)
        entry = known.get(instance_id)
        if (
            entry is None
            or entry.get("journal_offset") != size
            or entry["state"] == "running"
            or entry.get("config_stamp") != stamp
        ):
            try:
                record = (scored or {}).get(instance_id) or instance_health(
                    workspace, instance_id, clock, history=history, workspace_block=block
                )
            except WorkflowCliError as exc:
                unreadable.append({"id": instance_id, "error": exc.message})
                continue
            entry = summary_entry(record)
            history.append(entry)
        current[instance_id] = entry
    now = clock()
    summary = _summarize(current, now, stuck_after)
    summary["unreadable"] = unreadable
    if machine is None:
        assert window is not None
        machine = measure_machine(workspace, cpu=window.finish())
    summary["machine"] = machine
    summary["alerts"] = count_alerts(workspace)
    summary["circuits"] = read_breakers(workspace)
    summary["workspace"] = str(workspace.root)
    if write:
        workspace.private_folder(workspace.monitoring_dir)
        # Derived files, rebuilt at will: atomic (never half-written), not fsynced, and
        # compact (the C encoder: a 1,000-instance summary in milliseconds).
        write_json_atomic(
            workspace.monitoring_dir / HEALTH_FILE, summary, durable=False, indent=None
        )
        write_atomic(
            workspace.monitoring_dir / METRICS_FILE,
            render_metrics(summary).encode("utf-8"),
            durable=False,
        )
    return summary


def _overdue(deadline: Any, now: datetime) -> bool:
    """Whether an approval's deadline has passed (and no one has fired it yet)."""
    if not isinstance(deadline, str):
        return False
    try:
        return datetime.fromisoformat(deadline) <= now
    except ValueError:
        return False


def _summarize(
    entries: dict[str, dict[str, Any]], now: datetime, stuck_after: float
) -> dict[str, Any]:
    by_state = dict.fromkeys(INSTANCE_STATES, 0)
    by_level = dict.fromkeys(HEALTH_LEVELS, 0)
    stuck: list[dict[str, Any]] = []
    approvals: list[dict[str, Any]] = []
    attempts = failed_attempts = 0
    for instance_id, entry in entries.items():
        state = entry["state"]
        by_state[state] = by_state.get(state, 0) + 1
        by_level[entry["level"]] += 1
        attempts += entry["attempts"]
        failed_attempts += entry["failed_attempts"]
        if state == "running":
            idle = _seconds_since(entry.get("updated_at"), now)
            parent = entries.get(instance_id.rpartition(".")[0])  # a child is PARENT.TASK
            if not entry.get("runner_alive"):
                reason = "no live runner (it died; 'workflow_cli resume' recovers it)"
                if parent is not None and parent["state"] in ("cancelled", "failed"):
                    reason = (
                        f"no live runner, and its parent {parent['id']} is {parent['state']}: "
                        f"'workflow_cli cancel {instance_id}' ends it too"
                    )
                stuck.append({"id": instance_id, "reason": reason, "idle_seconds": idle})
            elif idle is not None and idle > stuck_after:
                stuck.append(
                    {
                        "id": instance_id,
                        "reason": f"no progress for {idle:.0f}s (more than {stuck_after:g}s)",
                        "idle_seconds": idle,
                    }
                )
        for wait in entry.get("waiting", []):
            if wait.get("approvers") and not wait.get("decided"):
                approvals.append(
                    {
                        "id": instance_id,
                        "task": wait["task"],
                        "approvers": wait["approvers"],
                        "since": wait.get("since"),
                        "waiting_seconds": _seconds_since(wait.get("since"), now),
                        "deadline": wait.get("deadline"),
                        "overdue": _overdue(wait.get("deadline"), now),
                    }
                )
    ordered = sorted(entries.values(), key=lambda e: (e["score"], e["id"]))
    lowest = [
        {key: e[key] for key in ("id", "template", "state", "score", "level")}
        for e in ordered[:_LOWEST_SHOWN]
    ]
    approvals.sort(key=lambda item: -(item["waiting_seconds"] or 0))
    average = round(sum(e["score"] for e in ordered) / len(ordered), 1) if ordered else None
    return {
        "version": RECORD_VERSION,
        "generated_at": now.isoformat(timespec="milliseconds"),
        "instances": {"total": len(entries), "by_state": by_state},
        "health": {"by_level": by_level, "average": average, "lowest": lowest},
        "tasks": {"attempts": attempts, "failed_attempts": failed_attempts},
        "stuck_after": stuck_after,
        "stuck": stuck,
        "approvals": approvals,
        "approvals_overdue": sum(1 for a in approvals if a["overdue"]),
        "scores": [entries[i] for i in sorted(entries)],
    }


def _seconds_since(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    try:
        return round(max(0.0, (now - datetime.fromisoformat(stamp)).total_seconds()), 3)
    except (ValueError, TypeError):
        return None


# -- Prometheus text ------------------------------------------------------------------


def render_metrics(summary: dict[str, Any]) -> str:
    """The summary as Prometheus text exposition format (node_exporter textfile style)."""
    out: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            shown = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            selector = f"{{{shown}}}" if shown else ""
            out.append(f"{name}{selector} {_number(value)}")

    family(
        "workflow_cli_instances",
        "gauge",
        "Instances in the workspace, by state.",
        [({"state": s}, n) for s, n in summary["instances"]["by_state"].items()],
    )
    family(
        "workflow_cli_instances_by_health",
        "gauge",
        "Instances by health level (critical < 50 <= warning < 70 <= healthy).",
        [({"level": lv}, n) for lv, n in summary["health"]["by_level"].items()],
    )
    family(
        "workflow_cli_instance_health_score",
        "gauge",
        "Health score of each instance, 0 to 100.",
        [
            (
                {"instance": s["id"], "template": s["template"] or "", "state": s["state"]},
                s["score"],
            )
            for s in summary["scores"]
        ],
    )
    family(
        "workflow_cli_stuck_instances",
        "gauge",
        "Instances marked running with no live runner or no progress.",
        [({}, len(summary["stuck"]))],
    )
    waits = [a["waiting_seconds"] or 0 for a in summary["approvals"]]
    family(
        "workflow_cli_approvals_waiting",
        "gauge",
        "Approval gates waiting for a decision.",
        [({}, len(waits))],
    )
    family(
        "workflow_cli_approvals_overdue",
        "gauge",
        "Approval gates past their deadline that no tick, runner or command has fired yet.",
        [({}, summary.get("approvals_overdue", 0))],
    )
    family(
        "workflow_cli_approval_wait_seconds_max",
        "gauge",
        "Longest time an approval gate has been waiting.",
        [({}, max(waits, default=0))],
    )
    attempts = summary["tasks"]["attempts"]
    failed = summary["tasks"]["failed_attempts"]
    family(
        "workflow_cli_task_attempts_total",
        "counter",
        "Task attempts in the workspace's instances.",
        [({}, attempts)],
    )
    family(
        "workflow_cli_task_failed_attempts_total",
        "counter",
        "Task attempts that failed (retried or failed for good).",
        [({}, failed)],
    )
    family(
        "workflow_cli_alerts_total",
        "counter",
        "Alerts recorded in monitoring/alerts.jsonl, by level.",
        [({"level": lv}, n) for lv, n in summary["alerts"].items()],
    )
    machine = summary["machine"]
    for name, key, text in (
        ("workflow_cli_machine_cpu_ratio", "cpu", "Machine CPU in use, 0 to 1."),
        ("workflow_cli_machine_memory_ratio", "memory", "Machine memory in use, 0 to 1."),
        ("workflow_cli_workspace_disk_used_ratio", "disk", "Workspace disk in use, 0 to 1."),
        ("workflow_cli_workspace_disk_free_bytes", "disk_free", "Workspace disk free bytes."),
    ):
        if machine.get(key) is not None:
            family(name, "gauge", text, [({}, machine[key])])
    generated = datetime.fromisoformat(summary["generated_at"]).timestamp()
    family(
        "workflow_cli_health_generated_timestamp_seconds",
        "gauge",
        "When this summary was written (Unix time).",
        [({}, round(generated, 3))],
    )
    return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
