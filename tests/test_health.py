"""Health scores pinned for hand-built histories, the records, alerts and summary files
they leave, and the ``health`` and ``alerts`` commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from workflow_cli.monitor.alerts import append_alert, make_alert, read_alerts
from workflow_cli.monitor.health import (
    health_level,
    instance_health,
    peak_score,
    ratio_score,
    score_health,
)
from workflow_cli.store.instances import create_instance, open_journal
from workflow_cli.store.runlock import RunLock
from workflow_cli.store.spans import read_runs
from workflow_cli.store.state import fold
from workflow_cli.store.workspace import Workspace

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NO_PID = 2**22 + 12345  # above Linux's largest pid: never a live process


class StepClock:
    """Reads as T0 + step, T0 + 2*step, ...: each journal batch gets its own time."""

    def __init__(self, start: datetime = T0, step: float = 10.0) -> None:
        self.now = start
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def fixed(moment: datetime) -> Any:
    return lambda: moment


def task(**extra: Any) -> dict[str, Any]:
    return {"action": "agent_task", "agent_id": "echo", "parameters": {}, **extra}


def definition(tasks: dict[str, Any], template: str = "tmpl", **extra: Any) -> dict[str, Any]:
    return {
        "id": template,
        "name": template,
        "version": "1",
        "schema_version": "2.0.0",
        **extra,
        "tasks": tasks,
    }


def started(name: str, attempt: int = 1) -> dict[str, Any]:
    return {"type": "task_started", "task": name, "attempt": attempt}


def completed(name: str, duration: float = 1.0, attempt: int = 1) -> dict[str, Any]:
    return {
        "type": "task_completed",
        "task": name,
        "attempt": attempt,
        "duration": duration,
        "output": None,
    }


def failed(name: str, duration: float = 1.0, attempt: int = 1) -> dict[str, Any]:
    error = {"message": "boom", "kind": "exit"}
    return {
        "type": "task_failed",
        "task": name,
        "attempt": attempt,
        "duration": duration,
        "error": error,
    }


def retrying(name: str, duration: float = 1.0, attempt: int = 1) -> dict[str, Any]:
    error = {"message": "again", "kind": "exit"}
    return {
        "type": "task_retrying",
        "task": name,
        "attempt": attempt,
        "duration": duration,
        "error": error,
        "delay": 1.0,
    }


def run_started(pid: int = NO_PID) -> dict[str, Any]:
    return {"type": "run_started", "pid": pid}


def run_ended(state: str) -> dict[str, Any]:
    return {"type": "run_ended", "state": state, "reason": None}


def waiting(name: str, approvers: list[str]) -> dict[str, Any]:
    return {"type": "task_waiting", "task": name, "waiting_for": {"approvers": approvers}}


def state_of(tasks: list[str], events: list[dict[str, Any]], template: str = "tmpl") -> Any:
    """The state a journal of `events` folds to (times one second apart)."""
    created = {
        "type": "instance_created",
        "instance": "inst",
        "template": template,
        "tasks": tasks,
    }
    stamped = [
        {"seq": n, "time": (T0 + timedelta(seconds=n)).isoformat(), **event}
        for n, event in enumerate([created, *events], start=1)
    ]
    return fold(stamped)


def write_instance(
    root: Path,
    instance_id: str,
    doc: dict[str, Any],
    batches: list[list[dict[str, Any]]],
    *,
    start: datetime = T0,
    step: float = 10.0,
) -> None:
    """An instance on disk, written with the store's own functions; each batch of events
    is appended `step` seconds after the one before."""
    ws = Workspace.at(root)
    clock = StepClock(start, step)
    created = {
        "type": "instance_created",
        "instance": instance_id,
        "template": doc["id"],
        "workflow": doc["id"],
        "params": {},
        "parent": None,
        "tasks": list(doc["tasks"]),
    }
    create_instance(ws, instance_id, doc, created, clock)
    journal = open_journal(ws, instance_id, clock)
    for batch in batches:
        journal.append(batch, durable=False)
    journal.close()


def score(state: Any, doc: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("history", [])
    kw.setdefault("run_seconds", 0.0)
    kw.setdefault("now", T0)
    return score_health(state, doc, **kw)


# -- the formula ----------------------------------------------------------------------


def test_levels_at_their_boundaries():
    assert health_level(49.9) == "critical"
    assert health_level(50.0) == "warning"
    assert health_level(69.9) == "warning"
    assert health_level(70.0) == "healthy"
    assert health_level(100.0) == "healthy"


def test_ratio_and_peak_scores():
    assert ratio_score(0.5) == 100
    assert ratio_score(1.0) == 100
    assert ratio_score(2.0) == 50
    assert ratio_score(3.0) == 0
    assert ratio_score(7.0) == 0
    levels = {"warning": 0.8, "critical": 0.9}
    assert peak_score(0.8, levels) == 100
    assert peak_score(0.85, levels) == pytest.approx(75)
    assert peak_score(0.9, levels) == pytest.approx(50)
    assert peak_score(0.95, levels) == pytest.approx(25)
    assert peak_score(1.0, levels) == 0


def half_failed() -> tuple[Any, dict[str, Any]]:
    """4 tasks, 1 attempt each: 2 completed, 2 failed; the instance failed."""
    names = ["a", "b", "c", "d"]
    events = [run_started()]
    for name, ok in zip(names, (True, True, False, False), strict=True):
        events += [started(name), completed(name) if ok else failed(name)]
    events.append(run_ended("failed"))
    doc = definition({n: task() for n in names}, expected_duration=10)
    return state_of(names, events), doc


def test_healthy_boundary_is_exactly_70():
    state, doc = half_failed()
    result = score(state, doc, run_seconds=10.0)
    parts = {name: part["score"] for name, part in result["parts"].items()}
    assert parts == {"success": 50.0, "time": 100.0, "errors": 50.0, "resources": 100.0}
    assert result["score"] == 70.0
    assert result["level"] == "healthy"


def test_just_below_70_is_a_warning():
    state, doc = half_failed()
    result = score(state, doc, run_seconds=10.2)  # 1.02x expected: time 99
    assert result["parts"]["time"]["score"] == 99.0
    assert result["score"] == 69.8  # 20 + 24.75 + 10 + 15 = 69.75
    assert result["level"] == "warning"


def test_warning_boundary_is_exactly_50():
    state, doc = half_failed()
    result = score(state, doc, run_seconds=26.0)  # 2.6x expected: time 20
    assert result["parts"]["time"]["score"] == 20.0
    assert result["score"] == 50.0
    assert result["level"] == "warning"


def test_just_below_50_is_critical():
    state, doc = half_failed()
    result = score(state, doc, run_seconds=26.2)  # 2.62x: time 19, 49.75
    assert result["score"] == 49.8
    assert result["level"] == "critical"


def test_everything_fine_scores_100():
    names = ["a", "b"]
    events = [run_started(), started("a"), completed("a"), started("b"), completed("b")]
    state = state_of(names, [*events, run_ended("completed")])
    result = score(state, definition({n: task() for n in names}))
    assert result["score"] == 100.0
    assert result["figures"]["tasks"] == {"total": 2, "by_state": {"completed": 2}}


def test_retries_count_as_failed_attempts():
    names = ["a", "b"]
    events = [
        run_started(),
        started("a"),
        retrying("a"),
        started("a", 2),
        retrying("a", attempt=2),
        started("a", 3),
        completed("a", attempt=3),
        started("b"),
        completed("b"),
        run_ended("completed"),
    ]
    result = score(state_of(names, events), definition({n: task() for n in names}))
    errors = result["parts"]["errors"]
    assert errors["figures"]["attempts"] == 4
    assert errors["figures"]["failed_attempts"] == 2
    assert errors["score"] == 50.0
    assert errors["figures"]["most_failed_attempts"] == [{"task": "a", "failed_attempts": 2}]
    assert result["score"] == 90.0  # 40 + 25 + 10 + 15


def test_a_failure_leaves_pending_tasks_counted_against_success():
    names = ["a", "b", "c", "d"]
    events = [run_started(), started("a"), failed("a"), run_ended("failed")]
    result = score(state_of(names, events), definition({n: task() for n in names}))
    success = result["parts"]["success"]["figures"]
    assert success["completed"] == 0
    assert success["counted"] == 4
    assert result["level"] == "critical"  # 0 + 25 + 0 + 15 = 40
    assert result["score"] == 40.0


def test_skipped_tasks_do_not_count_and_a_running_instance_counts_settled_tasks():
    names = ["a", "b", "c"]
    events = [
        run_started(),
        started("a"),
        completed("a"),
        {"type": "task_skipped", "task": "b", "reason": "condition is false: x"},
        started("c"),
    ]
    result = score(state_of(names, events), definition({n: task() for n in names}))
    assert result["parts"]["success"]["figures"]["counted"] == 1
    assert result["parts"]["success"]["score"] == 100.0


def test_expected_time_from_the_median_of_earlier_runs():
    names = ["a"]
    state = state_of(names, [run_started(), started("a"), completed("a"), run_ended("completed")])
    result = score(state, definition({"a": task()}), history=[10.0, 20.0, 40.0], run_seconds=30.0)
    workflow = result["parts"]["time"]["figures"]["workflow"]
    assert workflow["expected"] == 20.0
    assert workflow["source"] == "median of 3 earlier runs"
    assert workflow["ratio"] == 1.5
    assert result["parts"]["time"]["score"] == 75.0


def test_task_expected_durations_and_the_workflow_are_averaged():
    names = ["a", "b"]
    events = [
        run_started(),
        started("a"),
        completed("a", duration=3.0),  # 3x its expected 1 s: 0
        started("b"),
        completed("b", duration=1.0),  # within its expected 2 s: 100
        run_ended("completed"),
    ]
    doc = definition(
        {"a": task(expected_duration=1), "b": task(expected_duration=2)},
        expected_duration=10,
    )
    result = score(state_of(names, events), doc, run_seconds=20.0)  # workflow 2x: 50
    time_part = result["parts"]["time"]
    assert time_part["figures"]["tasks"]["score"] == 50.0
    assert time_part["figures"]["tasks"]["slowest"][0]["task"] == "a"
    assert time_part["score"] == 50.0  # mean of 50 (workflow) and 50 (tasks)


def test_a_running_task_is_measured_until_now():
    state = state_of(["a"], [run_started(), started("a")])
    doc = definition({"a": task(expected_duration=10)})
    began = datetime.fromisoformat(state["tasks"]["a"]["started_at"])
    result = score(state, doc, now=began + timedelta(seconds=20))
    assert result["parts"]["time"]["figures"]["tasks"]["slowest"][0]["seconds"] == 20.0
    assert result["parts"]["time"]["score"] == 50.0


def test_resources_score_is_the_worst_metric_against_its_thresholds():
    state = state_of(["a"], [run_started(), started("a"), completed("a"), run_ended("completed")])
    peaks = {"cpu": 0.85, "memory": 0.5, "disk": 0.3, "samples": 4}
    result = score(state, definition({"a": task()}), peaks=peaks)
    resources = result["parts"]["resources"]
    assert resources["figures"]["scores"] == {"cpu": 75.0, "memory": 100.0, "disk": 100.0}
    assert resources["figures"]["worst"] == "cpu"
    assert resources["score"] == 75.0
    assert result["score"] == 96.2  # 40 + 25 + 20 + 11.25 = 96.25


# -- journal timelines and records on disk --------------------------------------------


def approval_doc(**extra: Any) -> dict[str, Any]:
    gate = {"action": "approval_gate", "parameters": {"approvers": ["alice"]}}
    return definition({"a": task(), "gate": {**gate, "dependencies": ["a"]}}, **extra)


def test_run_time_counts_runs_not_the_wait_for_an_approval(workspace):
    doc = approval_doc(expected_duration=35)
    approval = {"type": "approval_recorded", "task": "gate", "decision": "approved", "by": "alice"}
    batches = [
        [run_started()],  # t+20 (creation is t+10)
        [started("a")],
        [completed("a", duration=10.0)],
        [waiting("gate", ["alice"])],
        [run_ended("waiting")],  # t+60: the first run took 40 s
        [approval],  # t+70: decided after a wait
        [run_started()],  # t+80
        [started("gate")],
        [completed("gate", duration=0.0)],
        [run_ended("completed")],  # t+110: the second run took 30 s
    ]
    write_instance(workspace, "inst", doc, batches)
    timeline = read_runs(workspace / "instances" / "inst" / "events.jsonl").timeline()
    assert timeline.run_seconds(None) == 70.0
    waited = (T0 + timedelta(seconds=50)).isoformat(timespec="milliseconds")
    assert timeline.waiting_since == {"gate": waited}
    record = instance_health(Workspace(workspace), "inst", fixed(T0 + timedelta(hours=1)))
    assert record["figures"]["run_seconds"] == 70.0
    workflow = record["parts"]["time"]["figures"]["workflow"]
    assert workflow["ratio"] == 2.0  # 70 s of 35 expected: time 50
    assert record["score"] == 87.5  # 40 + 12.5 + 20 + 15
    assert record["level"] == "healthy"
    on_disk = json.loads((workspace / "monitoring" / "instances" / "inst.json").read_text())
    assert on_disk == record
    alerts = read_alerts(Workspace(workspace))
    assert [(a["kind"], a["level"], a["task"]) for a in alerts] == [("duration", "warning", None)]
    assert "2.0x its expected time" in alerts[0]["message"]
    # Scoring again alerts nothing new: the same crossing is not reported twice.
    instance_health(Workspace(workspace), "inst", fixed(T0 + timedelta(hours=2)))
    assert len(read_alerts(Workspace(workspace))) == 1


def test_a_run_that_died_counts_until_its_last_event(workspace):
    doc = definition({"a": task()})
    batches = [
        [run_started()],  # t+20
        [started("a")],  # t+30: the runner dies after this
        [{**run_started(), "recovered": True}],  # t+40
        [started("a", 2)],
        [completed("a", attempt=2)],
        [run_ended("completed")],  # t+70
    ]
    write_instance(workspace, "inst", doc, batches)
    timeline = read_runs(workspace / "instances" / "inst" / "events.jsonl").timeline()
    assert timeline.run_seconds(None) == 40.0  # 10 s cut short, then 30 s


def test_falling_to_critical_writes_one_health_alert(workspace):
    names = ["a", "b"]
    doc = definition({n: task() for n in names})
    batches = [[run_started()], [started("a")], [failed("a")], [run_ended("failed")]]
    write_instance(workspace, "bad", doc, batches)
    record = instance_health(Workspace(workspace), "bad", fixed(T0 + timedelta(hours=1)))
    assert record["level"] == "critical"
    assert record["score"] == 40.0
    alerts = read_alerts(Workspace(workspace), instance="bad")
    assert [(a["kind"], a["level"], a["metric"], a["threshold"]) for a in alerts] == [
        ("health", "critical", "score", 50.0)
    ]
    instance_health(Workspace(workspace), "bad", fixed(T0 + timedelta(hours=2)))
    assert len(read_alerts(Workspace(workspace))) == 1


def test_history_comes_from_earlier_completed_runs_of_the_template(workspace, cli):
    doc = definition({"a": task()}, template="etl")
    for n, seconds in enumerate((10, 20, 30)):
        batches = [[run_started()], [started("a")], [completed("a")], [run_ended("completed")]]
        write_instance(
            workspace, f"old{n}", doc, batches, start=T0 + timedelta(hours=n), step=seconds / 3
        )
    assert cli("health", "--json").exit_code == 0  # scores the three, writes the index
    batches = [[run_started()], [started("a")], [completed("a")], [run_ended("completed")]]
    write_instance(workspace, "new", doc, batches, start=T0 + timedelta(days=1), step=20)
    record = cli("health", "new", "--json").json()
    workflow = record["parts"]["time"]["figures"]["workflow"]
    assert workflow["source"] == "median of 3 earlier runs"
    assert workflow["expected"] == 20.0
    assert workflow["run_seconds"] == 60.0
    assert record["parts"]["time"]["score"] == 0.0  # 3x the median


# -- the workspace summary ------------------------------------------------------------


def populated(workspace: Path) -> None:
    """done (completed), broke (failed), asks (waiting for alice), died (running, no
    runner), busy (running, a live runner, no progress for hours)."""
    names = ["a", "b"]
    doc = definition({n: task() for n in names})
    ok = [[started(n)] for n in names] + [[completed(n)] for n in names]
    write_instance(workspace, "done", doc, [[run_started()], *ok, [run_ended("completed")]])
    write_instance(
        workspace,
        "broke",
        doc,
        [[run_started()], [started("a")], [failed("a")], [run_ended("failed")]],
    )
    write_instance(
        workspace,
        "asks",
        approval_doc(),
        [
            [run_started()],
            [started("a")],
            [completed("a")],
            [waiting("gate", ["alice"])],
            [run_ended("waiting")],
        ],
    )
    write_instance(workspace, "died", doc, [[run_started()], [started("a")]])
    write_instance(
        workspace,
        "busy",
        doc,
        [[run_started(os.getpid())], [started("a")]],
        start=datetime.now(UTC) - timedelta(hours=3),
    )


def test_health_summary_json_and_files(workspace, cli):
    populated(workspace)
    lock = RunLock(workspace / "instances" / "busy")
    lock.acquire("busy")  # a live runner that has not appended anything for hours
    try:
        result = cli("health", "--json")
    finally:
        lock.release()
    assert result.exit_code == 0, result
    summary = result.json()
    assert summary["instances"]["total"] == 5
    by_state = summary["instances"]["by_state"]
    assert (by_state["completed"], by_state["failed"], by_state["waiting"]) == (1, 1, 1)
    assert by_state["running"] == 2
    assert sum(summary["health"]["by_level"].values()) == 5
    assert summary["health"]["lowest"][0]["id"] == "broke"
    stuck = {item["id"]: item["reason"] for item in summary["stuck"]}
    assert set(stuck) == {"died", "busy"}
    assert "no live runner" in stuck["died"]
    assert stuck["busy"].startswith("no progress for")
    [approval] = summary["approvals"]
    assert approval["id"] == "asks" and approval["task"] == "gate"
    assert approval["approvers"] == ["alice"]
    assert approval["waiting_seconds"] > 0
    machine = summary["machine"]
    assert 0 <= machine["cpu"] <= 1 and 0 <= machine["memory"] <= 1
    assert machine["disk_free"] > 0
    on_disk = json.loads((workspace / "monitoring" / "health.json").read_text())
    assert on_disk["instances"] == summary["instances"]
    for name in ("done", "broke", "asks", "died", "busy"):
        assert (workspace / "monitoring" / "instances" / f"{name}.json").is_file()
    text = cli("health")
    assert text.exit_code == 0
    assert "5 instances" in text.stdout
    assert "died: no live runner" in text.stdout
    assert "asks gate: waiting" in text.stdout


def test_the_summary_rescores_only_what_changed(workspace, cli):
    populated(workspace)
    first = cli("health", "--json").json()
    record = workspace / "monitoring" / "instances" / "done.json"
    written = record.stat().st_mtime_ns
    second = cli("health", "--json").json()
    assert record.stat().st_mtime_ns == written  # unchanged: not scored again

    def finished(summary: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in summary["scores"] if s["state"] != "running"]

    assert finished(second) == finished(first)
    assert cli("approve", "asks", "gate", "--as", "alice").exit_code == 0
    third = cli("health", "--json").json()
    assert third["approvals"] == []  # the journal grew: rescored


def prometheus_lines(text: str) -> list[tuple[str, dict[str, str], float]]:
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN)$")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    found = []
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter")
            declared[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = sample.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        assert match.group(1) in declared, f"{match.group(1)} has no # TYPE"
        labels = dict(label.findall(match.group(3) or ""))
        found.append((match.group(1), labels, float(match.group(4))))
    return found


def test_metrics_prom_is_prometheus_text(workspace, cli):
    populated(workspace)
    odd = definition({"a": task()}, template='we"ird\\name')
    write_instance(
        workspace,
        "odd",
        odd,
        [[run_started()], [started("a")], [completed("a")], [run_ended("completed")]],
    )
    assert cli("health").exit_code == 0
    samples = prometheus_lines((workspace / "monitoring" / "metrics.prom").read_text())
    values = {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples}
    assert values[("workflow_cli_instances", (("state", "running"),))] == 2
    assert values[("workflow_cli_stuck_instances", ())] >= 1
    assert values[("workflow_cli_approvals_waiting", ())] == 1
    scores = [s for s in samples if s[0] == "workflow_cli_instance_health_score"]
    assert len(scores) == 6
    assert any(labels["template"] == 'we\\"ird\\\\name' for _, labels, _ in scores)
    assert all(0 <= value <= 100 for _, _, value in scores)


def test_bad_workspace_config_is_a_clear_error(workspace, cli):
    (workspace / "workflow_cli.yaml").write_text(
        "monitoring:\n  thresholds:\n    cpu: {warning: 2}\n"
    )
    result = cli("health")
    assert result.exit_code == 2
    assert "monitoring.thresholds.cpu.warning must be a fraction from 0 to 1" in result.stderr


# -- health ID ------------------------------------------------------------------------


def test_health_of_one_instance_explained(workspace, cli):
    populated(workspace)
    result = cli("health", "bro", "--explain")
    assert result.exit_code == 0, result
    assert "broke" in result.stdout
    assert "40 critical" in result.stdout
    for title in ("task success", "run time", "errors and retries", "resources"):
        assert title in result.stdout
    assert "0 completed of 2 counted" in result.stdout
    assert "score = 0 + 25 + 0 + 15 = 40" in result.stdout
    as_json = cli("health", "broke", "--json").json()
    assert as_json["score"] == 40.0
    assert set(as_json["parts"]) == {"success", "time", "errors", "resources"}
    assert as_json == json.loads(
        (workspace / "monitoring" / "instances" / "broke.json").read_text()
    )


def test_health_errors(workspace, cli):
    populated(workspace)
    missing = cli("health", "nope")
    assert missing.exit_code == 2 and "no instance 'nope'" in missing.stderr
    assert cli("health", "--explain").exit_code == 2
    assert cli("health", "done", "--stuck-after", "5").exit_code == 2
    assert "Traceback" not in missing.stderr


# -- alerts ---------------------------------------------------------------------------


def test_alerts_filters(workspace, cli):
    ws = Workspace(workspace)
    now = datetime.now(UTC)
    for age, level, instance in (
        (7200, "warning", "one"),
        (600, "critical", "two"),
        (60, "warning", "two"),
    ):
        append_alert(
            ws,
            make_alert(
                fixed(now - timedelta(seconds=age)),
                level=level,
                instance=instance,
                kind="resource",
                metric="cpu",
                value=0.95,
                threshold=0.9,
                message=f"{level} {instance}",
            ),
        )
    everything = cli("alerts", "--json")
    assert everything.exit_code == 0
    assert [a["message"] for a in everything.json()] == [
        "warning one",
        "critical two",
        "warning two",
    ]
    assert [a["message"] for a in cli("alerts", "--level", "warning", "--json").json()] == [
        "warning one",
        "warning two",
    ]
    assert len(cli("alerts", "--instance", "two", "--json").json()) == 2
    assert [a["message"] for a in cli("alerts", "--since", "1h", "--json").json()] == [
        "critical two",
        "warning two",
    ]
    since = (now - timedelta(minutes=5)).isoformat()
    assert [a["message"] for a in cli("alerts", "--since", since, "--json").json()] == [
        "warning two"
    ]
    text = cli("alerts", "--level", "critical")
    assert "critical two" in text.stdout and "warning" not in text.stdout
    bad_level = cli("alerts", "--level", "loud")
    assert bad_level.exit_code == 2 and "unknown alert level 'loud'" in bad_level.stderr
    bad_since = cli("alerts", "--since", "yesterday")
    assert bad_since.exit_code == 2 and "--since 'yesterday'" in bad_since.stderr


def test_no_alerts(cli):
    assert cli("alerts", "--json").json() == []
    assert "no alerts" in cli("alerts").stdout


APPENDER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from workflow_cli.monitor.alerts import append_alert, make_alert
from workflow_cli.store.workspace import Workspace

ws = Workspace(Path(sys.argv[1]))
for n in range(int(sys.argv[3])):
    append_alert(ws, make_alert(lambda: datetime.now(UTC), level="warning",
        instance=sys.argv[2], kind="resource", metric="cpu", value=0.9, threshold=0.8,
        message="x" * 300 + str(n)))
"""


def test_alerts_appended_from_several_processes_stay_whole(workspace):
    (workspace / "monitoring").mkdir()
    # A writer that died mid-line left a torn line behind.
    (workspace / "monitoring" / "alerts.jsonl").write_text('{"time": "2026-01-01T00:0')
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(workspace), f"p{n}", "50"])
        for n in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    lines = (workspace / "monitoring" / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 201
    alerts = read_alerts(Workspace(workspace))
    assert len(alerts) == 200
    for n in range(4):
        mine = [a["message"] for a in alerts if a["instance"] == f"p{n}"]
        assert mine == ["x" * 300 + str(i) for i in range(50)]


def test_the_worked_example_in_the_readme():
    """5 tasks: a and b complete; c fails, is retried, fails again; d and e never run.
    Expected 60 s, ran 90 s; peaks cpu 62%, memory 77.5%, disk 41% (default thresholds)."""
    names = list("abcde")
    events = [
        run_started(),
        started("a"),
        completed("a"),
        started("b"),
        completed("b"),
        started("c"),
        retrying("c"),
        started("c", 2),
        failed("c", attempt=2),
        run_ended("failed"),
    ]
    doc = definition({n: task() for n in names}, expected_duration=60)
    peaks = {"cpu": 0.62, "memory": 0.775, "disk": 0.41, "samples": 90}
    result = score(state_of(names, events), doc, run_seconds=90.0, peaks=peaks)
    parts = {name: (part["score"], part["weighted"]) for name, part in result["parts"].items()}
    assert parts == {
        "success": (40.0, 16.0),
        "time": (75.0, 18.75),
        "errors": (50.0, 10.0),
        "resources": (75.0, 11.25),
    }
    assert (result["score"], result["level"]) == (56.0, "warning")
