"""The health score of an instance: 0 to 100, from four parts. Pure: `score_health`
reads and writes nothing (see `workflow_cli.monitor.health` for the record it fills).

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
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workflow_cli.monitor.resources import METRICS, MonitorSettings, Thresholds
from workflow_cli.store.state import State

WEIGHTS: dict[str, float] = {"success": 0.40, "time": 0.25, "errors": 0.20, "resources": 0.15}
CRITICAL_BELOW = 50.0
HEALTHY_FROM = 70.0
_SLOWEST_SHOWN = 5


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
