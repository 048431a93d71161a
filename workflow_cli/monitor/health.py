"""The health score of an instance: 0 to 100, from four parts, and the file that holds it.

Each part scores 0-100; the score is their weighted sum, rounded to one decimal::

    score = 0.40 * success + 0.25 * time + 0.20 * errors + 0.15 * resources

- **success**: completed tasks over the tasks that should have completed, times 100.
  For a completed or failed instance that is every task except the skipped and the
  cancelled ones (a task left pending by a failure counts against it); while an instance
  is running, waiting, paused or cancelled, only tasks that have settled (completed or
  failed) count. No such task yet: 100.
- **time**: each run time is compared with what is expected, as a ratio
  ``r = actual / expected`` scored ``100`` up to ``r = 1``, then falling linearly to
  ``0`` at ``r = 3`` (``100 - 50 * (r - 1)``; twice the expected time scores 50).
  The workflow's run time (the sum of its runs, from ``run_started`` to ``run_ended``,
  so time spent waiting for an approval between runs does not count) is compared with
  its ``expected_duration``, else the median run time of the (at most 20) latest
  completed instances of the same template that finished before this one was created.
  Each task with an ``expected_duration`` is compared with its last attempt's duration
  (or the time it has been running). The part is the mean of the workflow's score and
  the mean of the tasks' scores, whichever exist; 100 if neither does.
- **errors**: ``100 * (1 - failed attempts / attempts)``: every retry and every failure
  is a failed attempt. No attempts yet: 100.
- **resources**: for each of the machine's CPU, memory and disk, the peak sampled during
  the instance's runs against its thresholds (warning ``w``, critical ``c``): 100 up to
  ``w``; from ``w`` to ``c`` falling linearly to 50; from ``c`` to 1.0 falling linearly
  to 0. The part is the lowest of the three; 100 with no samples.

Levels: **critical** below 50, **warning** from 50 to below 70, **healthy** from 70 up.

`score_health` is the pure scoring; `instance_health` loads an instance, scores it,
writes alerts for what got worse, and writes ``monitoring/instances/ID.json`` atomically.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.monitor.alerts import append_alert, exclusive_lock, make_alert
from workflow_cli.monitor.resources import (
    LEVELS as THRESHOLD_LEVELS,
)
from workflow_cli.monitor.resources import (
    METRICS,
    MonitorSettings,
    Thresholds,
    config_stamp,
    history_path,
    load_workspace_monitoring,
    merge_peaks,
    monitor_settings,
    read_history_from,
)
from workflow_cli.store.files import write_json_atomic
from workflow_cli.store.instances import JOURNAL_FILE, load_definition, load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

WEIGHTS: dict[str, float] = {"success": 0.40, "time": 0.25, "errors": 0.20, "resources": 0.15}
CRITICAL_BELOW = 50.0
HEALTHY_FROM = 70.0
HISTORY_RUNS = 20
# Run time over expected time at which a duration alert is written.
DURATION_ALERT_RATIOS = {"warning": 2.0, "critical": 3.0}
RECORD_VERSION = 1
HEALTH_FILE = "health.json"
_SLOWEST_SHOWN = 5

_TIMELINE_RE = re.compile(
    rb'"time":"([^"]*)","type":"(run_started|run_ended|task_waiting)"'
    rb'(?:,"task":("(?:[^"\\]|\\.)*"))?'
)
_TIME_RE = re.compile(rb'"time":"([^"]*)"')


def health_level(score: float) -> str:
    """``critical`` below 50, ``warning`` from 50 to below 70, ``healthy`` from 70."""
    if score < CRITICAL_BELOW:
        return "critical"
    if score < HEALTHY_FROM:
        return "warning"
    return "healthy"


def ratio_score(ratio: float) -> float:
    """100 up to the expected time (ratio 1), then down by 50 a unit of ratio, 0 from 3."""
    if ratio <= 1:
        return 100.0
    return max(0.0, 100.0 - 50.0 * (ratio - 1.0))


def peak_score(peak: float, levels: dict[str, float]) -> float:
    """100 up to the warning level, 50 at the critical level, 0 at 1.0 (linear between)."""
    warning, critical = levels["warning"], levels["critical"]
    if peak <= warning:
        return 100.0
    if peak < critical:
        return 100.0 - 50.0 * (peak - warning) / (critical - warning)
    if critical >= 1.0:
        return 50.0
    return max(0.0, 50.0 * (1.0 - peak) / (1.0 - critical))


# -- pure scoring ---------------------------------------------------------------------


def score_health(
    state: State,
    definition: dict[str, Any],
    *,
    history: list[float],
    run_seconds: float,
    now: datetime,
    peaks: dict[str, float] | None = None,
    thresholds: Thresholds | None = None,
) -> dict[str, Any]:
    """Score one instance from its state, its definition, the run times of earlier runs
    of its template (`history`), its own run time so far (`run_seconds`), the time to
    measure running tasks against (`now`), and its resource peaks (see `merge_peaks`).

    Returns ``{"score", "level", "parts": {name: {"score", "weight", "weighted",
    "figures"}}, "figures"}``; nothing is read or written."""
    thresholds = thresholds or MonitorSettings().thresholds
    counts: dict[str, int] = {}
    for task in state["tasks"].values():
        counts[task["state"]] = counts.get(task["state"], 0) + 1
    parts = {
        "success": _success_part(state, counts),
        "time": _time_part(state, definition, history, run_seconds, now),
        "errors": _errors_part(state),
        "resources": _resources_part(peaks or {}, thresholds),
    }
    total = 0.0
    for name, part in parts.items():
        part["score"] = round(part["score"], 2)
        part["weight"] = WEIGHTS[name]
        part["weighted"] = round(WEIGHTS[name] * part["score"], 2)
        total += WEIGHTS[name] * part["score"]
    score = round(total, 1)
    return {
        "score": score,
        "level": health_level(score),
        "parts": {name: parts[name] for name in ("success", "time", "errors", "resources")},
        "figures": {
            "tasks": {"total": len(state["tasks"]), "by_state": dict(sorted(counts.items()))},
            "run_seconds": round(run_seconds, 3),
        },
    }


def _success_part(state: State, counts: dict[str, int]) -> dict[str, Any]:
    completed = counts.get("completed", 0)
    if state["state"] in ("completed", "failed"):
        counted = len(state["tasks"]) - counts.get("skipped", 0) - counts.get("cancelled", 0)
        basis = "every task not skipped or cancelled"
    else:
        counted = completed + counts.get("failed", 0)
        basis = "tasks settled so far"
    rate = completed / counted if counted else 1.0
    return {
        "score": 100.0 * rate,
        "figures": {
            "completed": completed,
            "counted": counted,
            "failed": counts.get("failed", 0),
            "rate": round(rate, 4),
            "basis": basis,
        },
    }


def _time_part(
    state: State,
    definition: dict[str, Any],
    history: list[float],
    run_seconds: float,
    now: datetime,
) -> dict[str, Any]:
    workflow: dict[str, Any] | None = None
    expected = definition.get("expected_duration")
    source = "definition"
    if expected is None and history:
        expected = _median(history)
        source = f"median of {len(history)} earlier run{'s' if len(history) != 1 else ''}"
    if expected:
        ratio = run_seconds / expected
        workflow = {
            "run_seconds": round(run_seconds, 3),
            "expected": round(float(expected), 3),
            "source": source,
            "ratio": round(ratio, 4),
            "score": round(ratio_score(ratio), 2),
        }
    measured: list[dict[str, Any]] = []
    tasks = state["tasks"]
    for task_id, task_definition in definition.get("tasks", {}).items():
        task_expected = task_definition.get("expected_duration")
        if not task_expected or task_id not in tasks:
            continue
        actual = _task_seconds(tasks[task_id], now)
        if actual is None:
            continue
        ratio = actual / task_expected
        measured.append(
            {
                "task": task_id,
                "seconds": round(actual, 3),
                "expected": task_expected,
                "ratio": round(ratio, 4),
                "score": ratio_score(ratio),
            }
        )
    scores = []
    if workflow is not None:
        scores.append(workflow["score"])
    task_figures: dict[str, Any] = {"measured": len(measured)}
    if measured:
        task_mean = sum(item["score"] for item in measured) / len(measured)
        scores.append(task_mean)
        measured.sort(key=lambda item: -item["ratio"])
        task_figures["score"] = round(task_mean, 2)
        task_figures["slowest"] = measured[:_SLOWEST_SHOWN]
    return {
        "score": sum(scores) / len(scores) if scores else 100.0,
        "figures": {"workflow": workflow, "tasks": task_figures},
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def _task_seconds(task: Mapping[str, Any], now: datetime) -> float | None:
    if task["state"] in ("completed", "failed", "retrying"):
        duration = task.get("duration")
        return float(duration) if duration is not None else None
    if task["state"] == "running" and task.get("started_at"):
        return max(0.0, (now - datetime.fromisoformat(task["started_at"])).total_seconds())
    return None


def _errors_part(state: State) -> dict[str, Any]:
    attempts = errors = retried = failed = 0
    most: list[tuple[int, str]] = []
    for task_id, task in state["tasks"].items():
        tries = task["attempts"] or 0
        kind = task["state"]
        if kind in ("failed", "retrying"):
            tries = max(tries, 1)
            wrong = tries
            failed += kind == "failed"
        elif kind in ("completed", "running", "waiting"):
            wrong = max(0, tries - 1)
        else:
            wrong = 0
        attempts += tries
        errors += wrong
        if tries > 1:
            retried += 1
        if wrong:
            most.append((wrong, task_id))
    rate = errors / attempts if attempts else 0.0
    most.sort(key=lambda item: (-item[0], item[1]))
    return {
        "score": 100.0 * (1.0 - rate),
        "figures": {
            "attempts": attempts,
            "failed_attempts": errors,
            "rate": round(rate, 4),
            "tasks_retried": retried,
            "tasks_failed": failed,
            "most_failed_attempts": [
                {"task": task_id, "failed_attempts": n} for n, task_id in most[:_SLOWEST_SHOWN]
            ],
        },
    }


def _resources_part(peaks: dict[str, float], thresholds: Thresholds) -> dict[str, Any]:
    scored = {
        metric: round(peak_score(float(peaks[metric]), thresholds[metric]), 2)
        for metric in METRICS
        if metric in peaks
    }
    worst = min(scored, key=lambda m: scored[m]) if scored else None
    return {
        "score": scored[worst] if worst else 100.0,
        "figures": {
            "samples": int(peaks.get("samples", 0)),
            "peaks": {k: peaks[k] for k in sorted(peaks) if k != "samples"},
            "thresholds": thresholds,
            "scores": scored,
            "worst": worst,
        },
    }


# -- an instance's timeline from its journal -------------------------------------------


@dataclass
class Timeline:
    """What the journal says about an instance's runs and waits, read in one pass."""

    closed_seconds: float = 0.0  # runs that ended, and runs a crash cut short
    open_since: datetime | None = None  # a run_started with nothing after it yet
    last_event: datetime | None = None
    waiting_since: dict[str, str] = field(default_factory=dict)

    def run_seconds(self, until: datetime | None) -> float:
        """Time spent in runs, counting an open run up to `until` (else its last event)."""
        if self.open_since is None:
            return self.closed_seconds
        end = until or self.last_event or self.open_since
        return self.closed_seconds + max(0.0, (end - self.open_since).total_seconds())


def read_timeline(journal_path: Path) -> Timeline:
    """Run spans and approval waits, found by pattern in the journal's bytes (each line
    starts ``{"seq":N,"time":T,"type":K`` and a task event goes on with ``"task":ID``), so
    even a 10,000-task journal is read in a few milliseconds without decoding every line."""
    try:
        data = journal_path.read_bytes()
    except FileNotFoundError:
        return Timeline()
    timeline = Timeline()
    end = data.rfind(b"\n")
    if end < 0:
        return timeline
    data = data[: end + 1]  # a torn last line is not an event
    last_line = data.rfind(b"\n", 0, end) + 1
    last = _TIME_RE.search(data, last_line)
    if last:
        timeline.last_event = _parse_time(last.group(1))
    for match in _TIMELINE_RE.finditer(data):
        moment = _parse_time(match.group(1))
        if moment is None:
            continue
        kind = match.group(2)
        if kind == b"run_started":
            if timeline.open_since is not None:  # the previous run died: it ran until
                cut = _time_before(data, match.start())  # its last event
                if cut is not None:
                    timeline.closed_seconds += max(0.0, (cut - timeline.open_since).total_seconds())
            timeline.open_since = moment
        elif kind == b"run_ended":
            if timeline.open_since is not None:
                timeline.closed_seconds += max(0.0, (moment - timeline.open_since).total_seconds())
            timeline.open_since = None
        elif match.group(3):
            try:
                task_id = json.loads(match.group(3))
            except ValueError:
                continue
            timeline.waiting_since[task_id] = match.group(1).decode()
    return timeline


def _time_before(data: bytes, position: int) -> datetime | None:
    """The time of the line before the one holding `position`."""
    line_start = data.rfind(b"\n", 0, position)
    previous = data.rfind(b"\n", 0, line_start) + 1
    found = _TIME_RE.search(data, previous, line_start)
    return _parse_time(found.group(1)) if found else None


def _parse_time(raw: bytes) -> datetime | None:
    try:
        return datetime.fromisoformat(raw.decode())
    except ValueError:
        return None


# -- the record on disk ---------------------------------------------------------------


def health_path(workspace: Workspace, instance_id: str) -> Path:
    return workspace.monitoring_dir / "instances" / f"{instance_id}.json"


def read_instance_record(workspace: Workspace, instance_id: str) -> dict[str, Any] | None:
    """``monitoring/instances/ID.json`` as last written, or None (missing or unreadable)."""
    return _read_record(health_path(workspace, instance_id))


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
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
        value = json.loads((workspace.monitoring_dir / HEALTH_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or value.get("version") != RECORD_VERSION:
        return None
    scores = value.get("scores")
    if not isinstance(scores, list):
        return None
    return {entry["id"]: entry for entry in scores if isinstance(entry, dict) and "id" in entry}


def history_entries(workspace: Workspace) -> list[dict[str, Any]]:
    """What earlier run times are taken from: the index of ``health.json`` (one small
    file) when there is one, else every instance's record."""
    entries = read_summary_entries(workspace)
    if entries is not None:
        return list(entries.values())
    return [summary_entry(record) for record in read_all_records(workspace).values()]


def template_history(
    entries: list[dict[str, Any]], template: str | None, before: str | None
) -> list[float]:
    """Run times of the latest `HISTORY_RUNS` completed instances of `template` that
    finished before `before` (an ISO time), from summary entries (`summary_entry`)."""
    if template is None:
        return []
    done = []
    for entry in entries:
        finished = entry.get("finished_at")
        seconds = entry.get("run_seconds")
        if (
            entry.get("template") == template
            and entry.get("state") == "completed"
            and finished
            and seconds is not None
            and (before is None or finished < before)
        ):
            done.append((finished, float(seconds)))
    done.sort()
    return [seconds for _, seconds in done[-HISTORY_RUNS:]]


@dataclass
class HealthInputs:
    """What scoring an instance reads besides its state: gathered once, reusable (the
    runner's reporter refreshes a record every second without reading them again)."""

    definition: dict[str, Any]
    settings: MonitorSettings
    history: list[float]
    timeline: Timeline
    resources_offset: int
    peaks: dict[str, float]
    config_stamp: str | None = None


def gather_inputs(
    workspace: Workspace,
    instance_id: str,
    state: State,
    *,
    history: list[dict[str, Any]] | None = None,
    workspace_block: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> HealthInputs:
    """Read the definition, settings, template history (from `history`, summary entries,
    when given), journal timeline and resource peaks of an instance. The peaks continue
    from the `previous` record's offset in ``resources.jsonl`` when it still fits."""
    definition = load_definition(workspace, instance_id)
    stamp = config_stamp(workspace)
    if workspace_block is None:
        workspace_block = load_workspace_monitoring(workspace)
    settings = monitor_settings(definition, workspace_block)
    runs: list[float] = []
    if definition.get("expected_duration") is None:
        if history is None:
            history = history_entries(workspace)
        runs = template_history(history, state.get("template"), state.get("created_at"))
    timeline = read_timeline(workspace.instance_dir(instance_id) / JOURNAL_FILE)
    offset, peaks = 0, {}
    if previous is not None:
        offset = int(previous.get("resources_offset", 0))
        peaks = dict(previous["parts"]["resources"]["figures"].get("peaks") or {})
        peaks["samples"] = previous["parts"]["resources"]["figures"].get("samples", 0)
    path = history_path(workspace, instance_id)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size < offset:  # the history was replaced: read it all again
        offset, peaks = 0, {}
    samples, offset = read_history_from(path, offset)
    return HealthInputs(
        definition=definition,
        settings=settings,
        history=runs,
        timeline=timeline,
        resources_offset=offset,
        peaks=merge_peaks(peaks, samples),
        config_stamp=stamp,
    )


def build_record(
    state: State,
    inputs: HealthInputs,
    *,
    now: datetime,
    runner_alive: bool,
) -> dict[str, Any]:
    """The health record of an instance (what ID.json holds), from its state and inputs."""
    running = state["state"] == "running"
    until = now if running and runner_alive else None
    measure_at = now if runner_alive or not running else (inputs.timeline.last_event or now)
    scored = score_health(
        state,
        inputs.definition,
        history=inputs.history,
        run_seconds=inputs.timeline.run_seconds(until),
        now=measure_at,
        peaks=inputs.peaks,
        thresholds=inputs.settings.thresholds,
    )
    waiting = []
    for task_id, task in state["tasks"].items():
        if task["state"] == "waiting":
            waiting_for = task.get("waiting_for") or {}
            since = inputs.timeline.waiting_since.get(task_id)
            decided = [
                a
                for a in state.get("approvals", [])
                if a.get("task") == task_id and (since is None or (a.get("time") or "") >= since)
            ]
            waiting.append(
                {
                    "task": task_id,
                    "approvers": waiting_for.get("approvers"),
                    "child_instance": waiting_for.get("child_instance"),
                    "since": since,
                    # A decision is in: the gate waits for a runner, not for a person.
                    "decided": decided[-1].get("decision") if decided else None,
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
    folder.mkdir(parents=True, exist_ok=True)
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


def instance_health(
    workspace: Workspace,
    instance_id: str,
    clock: Clock,
    *,
    history: list[dict[str, Any]] | None = None,
    workspace_block: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score an instance now, write alerts for what got worse and
    ``monitoring/instances/ID.json`` (atomically), and return the record.

    `history` (summary entries, see `summary_entry`) and `workspace_block` (the
    workspace's monitoring settings) may be passed in when scoring many instances."""
    from workflow_cli.monitor.follow import runner_gone

    state = load_state(open_journal(workspace, instance_id, clock))
    previous = read_instance_record(workspace, instance_id)
    inputs = gather_inputs(
        workspace,
        instance_id,
        state,
        history=history,
        workspace_block=workspace_block,
        previous=previous,
    )
    alive = state["state"] == "running" and not runner_gone(
        workspace.instance_dir(instance_id), state
    )
    record = build_record(state, inputs, now=clock(), runner_alive=alive)
    return save_record(workspace, record, clock=clock)


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


def current_health(workspace: Workspace, instance_id: str, clock: Clock) -> dict[str, Any]:
    """The instance's health record: the one on disk when it is up to date (see
    `fresh_record`), else scored now by `instance_health`."""
    return fresh_record(workspace, instance_id) or instance_health(workspace, instance_id, clock)
