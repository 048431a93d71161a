"""The health record of an instance (``monitoring/instances/ID.json``): built from a
score, written atomically with alerts for what got worse since the last one, read back;
and the summary entries that index every record in ``monitoring/health.json``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflow_cli.errors import WorkspaceError
from workflow_cli.monitor.alerts import append_alert, make_alert
from workflow_cli.monitor.health.score import CRITICAL_BELOW, HEALTHY_FROM, score_health
from workflow_cli.monitor.resources import LEVELS as THRESHOLD_LEVELS
from workflow_cli.monitor.resources import config_stamp, history_path
from workflow_cli.store.files import exclusive_lock, read_bytes, write_json_atomic
from workflow_cli.store.instances import JOURNAL_FILE
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.monitor.health.inputs import HealthInputs

RECORD_VERSION = 1
HEALTH_FILE = "health.json"
# Run time over expected time at which a duration alert is written.
DURATION_ALERT_RATIOS = {"warning": 2.0, "critical": 3.0}


def health_path(workspace: Workspace, instance_id: str) -> Path:
    return workspace.monitoring_dir / "instances" / f"{instance_id}.json"


def read_instance_record(workspace: Workspace, instance_id: str) -> dict[str, Any] | None:
    """``monitoring/instances/ID.json`` as last written, or None (missing or unreadable)."""
    return _read_record(health_path(workspace, instance_id))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(read_bytes(path))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or value.get("version") != RECORD_VERSION:
        return None
    return value


def read_all_records(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """Every instance's last health record, by instance id."""
    folder = workspace.monitoring_dir / "instances"
    records: dict[str, dict[str, Any]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return records
    for entry in entries:
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            record = _read_record(Path(entry.path))
            if record is not None:
                records[entry.name[:-5]] = record
    return records


def summary_entry(record: dict[str, Any]) -> dict[str, Any]:
    """The few fields of a health record the workspace summary keeps per instance (its
    index in ``health.json``: what it sums up, and the run times of earlier runs)."""
    figures = record["figures"]
    errors = record["parts"]["errors"]["figures"]
    return {
        "id": record["instance"],
        "template": record.get("template"),
        "state": record["state"],
        "score": record["score"],
        "level": record["level"],
        "journal_offset": record.get("journal_offset"),
        "created_at": figures.get("created_at"),
        "updated_at": figures.get("updated_at"),
        "finished_at": record.get("finished_at"),
        "run_seconds": figures.get("run_seconds"),
        "runner_alive": figures.get("runner_alive", False),
        "waiting": figures.get("waiting", []),
        "attempts": errors["attempts"],
        "failed_attempts": errors["failed_attempts"],
        "config_stamp": record.get("config_stamp"),
    }


def read_summary_entries(workspace: Workspace) -> dict[str, dict[str, Any]] | None:
    """The per-instance index of the last ``health.json`` by id, or None without one."""
    try:
        value = json.loads(read_bytes(workspace.monitoring_dir / HEALTH_FILE))
    except (OSError, ValueError, WorkspaceError):  # a summary, made again when refreshed
        return None
    if not isinstance(value, dict) or value.get("version") != RECORD_VERSION:
        return None
    scores = value.get("scores")
    if not isinstance(scores, list):
        return None
    return {entry["id"]: entry for entry in scores if isinstance(entry, dict) and "id" in entry}


def build_record(
    state: State,
    inputs: HealthInputs,
    *,
    now: datetime,
    runner_alive: bool,
) -> dict[str, Any]:
    """The health record of an instance (what ID.json holds), from its state and inputs."""
    running = state["state"] == "running"
    timeline = inputs.runs.timeline()
    until = now if running and runner_alive else None
    measure_at = now if runner_alive or not running else (timeline.last_event or now)
    scored = score_health(
        state,
        inputs.definition,
        history=inputs.history,
        run_seconds=timeline.run_seconds(until),
        now=measure_at,
        peaks=inputs.peaks,
        thresholds=inputs.settings.thresholds,
    )
    waiting = []
    for task_id, task in state["tasks"].items():
        if task["state"] == "waiting":
            waiting_for = task.get("waiting_for") or {}
            since = timeline.waiting_since.get(task_id)
            decided = [
                a
                for a in state.get("approvals", [])
                if a.get("task") == task_id and (since is None or (a.get("time") or "") >= since)
            ]
            approved = {a.get("by") for a in decided if a.get("decision") == "approved"}
            settled = decided and (
                decided[-1].get("decision") != "approved"
                or decided[-1].get("via") == "deadline"
                or len(approved) >= int(waiting_for.get("required", 1))
            )
            deadlines = [
                t["due"]
                for t in state.get("timers", {}).values()
                if t["target"] == task_id and t["kind"] == "approval_deadline"
            ]
            waiting.append(
                {
                    "task": task_id,
                    "approvers": waiting_for.get("approvers"),
                    "child_instance": waiting_for.get("child_instance"),
                    "since": since,
                    # A decision is in: the gate waits for a runner, not for a person.
                    "decided": decided[-1].get("decision") if settled else None,
                    "deadline": min(deadlines) if deadlines else None,
                }
            )
    scored["figures"].update(
        created_at=state.get("created_at"),
        updated_at=state.get("updated_at"),
        finished_at=state.get("finished_at"),
        runner_alive=runner_alive,
        waiting=waiting,
        history_runs=len(inputs.history),
    )
    return {
        "version": RECORD_VERSION,
        "instance": state["id"],
        "template": state.get("template"),
        "state": state["state"],
        "computed_at": now.isoformat(timespec="milliseconds"),
        "finished_at": state.get("finished_at"),
        "journal_offset": state.get("offset"),
        "resources_offset": inputs.resources_offset,
        "config_stamp": inputs.config_stamp,
        **scored,
    }


def save_record(workspace: Workspace, record: dict[str, Any], *, clock: Clock) -> dict[str, Any]:
    """Write alerts for what got worse since the last record, then the record itself
    (atomically). Under a lock, so two writers do not alert twice for one change."""
    folder = workspace.monitoring_dir / "instances"
    workspace.private_folder(folder)
    path = health_path(workspace, record["instance"])
    with exclusive_lock(folder / ".lock"):
        previous = _read_record(path)
        alerted = _alert_changes(workspace, record, previous, clock)
        record["alerted"] = alerted
        # A derived file, rebuilt at will: atomic (never half-written) but not fsynced.
        write_json_atomic(path, record, durable=False)
    return record


def _alert_changes(
    workspace: Workspace,
    record: dict[str, Any],
    previous: dict[str, Any] | None,
    clock: Clock,
) -> dict[str, Any]:
    """Alerts for a health level or a run time that got worse; what has been alerted."""
    before = (previous or {}).get("alerted") or {}
    instance_id = record["instance"]
    level = record["level"]
    alerted_level = before.get("health")
    if level != "healthy" and _rank(level) > _rank(alerted_level):
        threshold = CRITICAL_BELOW if level == "critical" else HEALTHY_FROM
        append_alert(
            workspace,
            make_alert(
                clock,
                level=level,
                instance=instance_id,
                kind="health",
                metric="score",
                value=record["score"],
                threshold=threshold,
                message=f"health score {record['score']:g} fell below {threshold:g} ({level})",
            ),
        )
    durations: dict[str, str] = dict(before.get("duration") or {})
    time_figures = record["parts"]["time"]["figures"]
    overruns: list[tuple[str | None, dict[str, Any]]] = []
    if time_figures["workflow"] is not None:
        overruns.append((None, time_figures["workflow"]))
    overruns += [(item["task"], item) for item in time_figures["tasks"].get("slowest", [])]
    for task_id, item in overruns:
        ratio = item["ratio"]
        now_level = next(
            (lv for lv in ("critical", "warning") if ratio >= DURATION_ALERT_RATIOS[lv]), None
        )
        key = task_id or ""
        if now_level is None or _rank(now_level) <= _rank(durations.get(key)):
            continue
        durations[key] = now_level
        seconds = item.get("run_seconds", item.get("seconds"))
        what = f"task '{task_id}'" if task_id else "the workflow"
        append_alert(
            workspace,
            make_alert(
                clock,
                level=now_level,
                instance=instance_id,
                task=task_id,
                kind="duration",
                metric="duration_ratio",
                value=ratio,
                threshold=DURATION_ALERT_RATIOS[now_level],
                message=(
                    f"{what} ran {ratio:.1f}x its expected time ({seconds:.1f}s of "
                    f"{item['expected']:g}s; {now_level} at "
                    f"{DURATION_ALERT_RATIOS[now_level]:g}x)"
                ),
            ),
        )
    return {"health": level if level != "healthy" else None, "duration": durations}


def _rank(level: str | None) -> int:
    return 0 if level in (None, "healthy") else THRESHOLD_LEVELS.index(str(level)) + 1


def fresh_record(workspace: Workspace, instance_id: str) -> dict[str, Any] | None:
    """The instance's record if nothing it was scored from has changed since (its journal,
    its resource history, ``workflow_cli.yaml``) and it is not running; else None."""
    record = read_instance_record(workspace, instance_id)
    if record is None or record["state"] == "running":
        return None
    folder = workspace.instance_dir(instance_id)
    try:
        journal_size = os.stat(folder / JOURNAL_FILE).st_size
    except FileNotFoundError:
        return None
    try:
        resources_size = os.stat(history_path(workspace, instance_id)).st_size
    except FileNotFoundError:
        resources_size = 0
    if (
        record.get("journal_offset") != journal_size
        or record.get("resources_offset", 0) != resources_size
        or record.get("config_stamp") != config_stamp(workspace)
    ):
        return None
    return record
