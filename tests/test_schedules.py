"""Schedules: ``schedules:`` in workflow_cli.yaml, ``tick`` and ``schedules``, through the
real CLI, with the clock pinned by WORKFLOW_CLI_NOW, and runners started as real
background processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

from workflow_cli.engine.background import RUNNER_LOG
from workflow_cli.engine.schedules import due_windows, parse_schedules

Cli = Callable[..., Result]
FINAL = {"completed", "failed", "cancelled"}


def _template(workspace: Path, name: str, tasks: dict[str, Any]) -> None:
    (workspace / "templates").mkdir(exist_ok=True)
    template = {
        "name": name,
        "parameters": {"n": {"type": "integer", "default": 1}},
        "workflow": {
            "id": name,
            "name": name,
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": tasks,
        },
    }
    (workspace / "templates" / f"{name}.json").write_text(json.dumps(template))


def _quick(workspace: Path) -> None:
    _template(
        workspace,
        "quick",
        {"a": {"action": "condition_check", "parameters": {"expression": "params.n"}}},
    )


def _gated(workspace: Path) -> None:
    """A template whose instances wait for ann's approval: still going until she says."""
    _template(
        workspace,
        "gated",
        {"gate": {"action": "approval_gate", "parameters": {"approvers": ["ann"]}}},
    )


def _config(workspace: Path, *schedules: dict[str, Any]) -> None:
    (workspace / "workflow_cli.yaml").write_text(json.dumps({"schedules": list(schedules)}))


def _tick(cli: Cli, monkeypatch: pytest.MonkeyPatch, now: str) -> dict[str, Any]:
    monkeypatch.setenv("WORKFLOW_CLI_NOW", now)
    result = cli("tick", "--json")
    assert result.exit_code == 0, result
    value: dict[str, Any] = result.json()
    return value


def _wait_state(cli: Cli, instance: str, states: set[str], timeout: float = 60) -> str:
    """Poll the instance (at most `timeout` seconds) until it is in one of `states`; past
    that, fail with what its detached runner wrote."""
    deadline = time.monotonic() + timeout
    while True:
        state: str = cli("status", instance, "--json").json()["state"]
        if state in states:
            return state
        if time.monotonic() > deadline:
            log = Path.cwd() / "instances" / instance / RUNNER_LOG  # the workspace
            written = log.read_text(errors="replace") if log.exists() else "(no runner log)"
            pytest.fail(f"{instance} still {state} after {timeout} s; its runner wrote:\n{written}")
        time.sleep(0.1)


def _firings(workspace: Path) -> list[dict[str, Any]]:
    lines = (workspace / "schedules" / "firings.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_schedule_fires_once_per_window(cli, workspace, monkeypatch):
    _quick(workspace)
    _config(
        workspace,
        {"name": "minutely", "template": "quick", "params": {"n": 7}, "cron": "* * * * *"},
    )
    first = _tick(cli, monkeypatch, "2026-03-01T10:00:30Z")
    assert first["firings"] == [] and first["problems"] == []  # counts from the first tick
    fired = _tick(cli, monkeypatch, "2026-03-01T10:01:02Z")["firings"]
    assert [(f["window"], f["outcome"]) for f in fired] == [
        ("2026-03-01T10:01:00+00:00", "started")
    ]
    instance = fired[0]["instance"]
    assert _wait_state(cli, instance, FINAL) == "completed"
    assert cli("status", instance, "--json").json()["tasks"]["a"]["output"] == 7
    again = _tick(cli, monkeypatch, "2026-03-01T10:01:30Z")
    assert again["firings"] == []
    assert [f["outcome"] for f in _firings(workspace)] == ["started"]
    shown = cli("schedules", "--json")
    assert shown.exit_code == 0, shown
    (view,) = shown.json()
    assert view["next"] == "2026-03-01T10:02:00+00:00"
    assert view["last"]["instance"] == instance and view["active"] == []
    text = cli("schedules")
    assert "next:  2026-03-01T10:02:00+00:00" in text.stdout and instance in text.stdout


def test_a_schedule_fires_within_seconds_on_the_real_clock(cli, workspace):
    """A six-field cron (seconds last) on the real clock: the first tick sets the start;
    a later tick fires the window that came meanwhile."""
    _quick(workspace)
    _config(workspace, {"name": "every-second", "template": "quick", "cron": "* * * * * *"})
    assert cli("tick", "--json").json()["firings"] == []
    fired: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while not fired and time.monotonic() < deadline:
        time.sleep(0.2)
        result = cli("tick", "--json")
        assert result.exit_code == 0, result
        fired = [f for f in result.json()["firings"] if f["outcome"] == "started"]
    assert fired, "no window fired within 15 s"
    assert _wait_state(cli, fired[0]["instance"], FINAL) == "completed"


def test_two_ticks_at_once_fire_a_window_once(workspace):
    _quick(workspace)
    _config(workspace, {"name": "m", "template": "quick", "cron": "* * * * *"})
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    tick = [sys.executable, "-m", "workflow_cli", "tick", "--json"]
    subprocess.run(tick, env={**env, "WORKFLOW_CLI_NOW": "2026-03-01T10:00:30Z"}, check=True)
    later = {**env, "WORKFLOW_CLI_NOW": "2026-03-01T10:01:10Z"}
    ticks = [subprocess.Popen(tick, env=later, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in ticks]
    assert all(p.returncode == 0 for p in ticks)
    started = [f for out in outputs for f in out["firings"] if f["outcome"] == "started"]
    assert len(started) == 1
    assert [f["outcome"] for f in _firings(workspace)] == ["started"]


def test_a_tick_killed_halfway_is_finished_by_the_next(workspace):
    """kill -9 of a tick right after it wrote its instance's first journal line: the next
    tick makes and starts that window's instance; no window fires twice."""
    _quick(workspace)
    _config(workspace, {"name": "m", "template": "quick", "cron": "* * * * *"})
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    tick = [sys.executable, "-m", "workflow_cli", "tick", "--json"]
    subprocess.run(tick, env={**env, "WORKFLOW_CLI_NOW": "2026-03-01T10:00:30Z"}, check=True)
    later = {**env, "WORKFLOW_CLI_NOW": "2026-03-01T10:01:10Z"}
    killed = subprocess.run(
        tick, env={**later, "WORKFLOW_CLI_KILL_AFTER_APPEND": "1"}, capture_output=True, timeout=60
    )
    assert killed.returncode == -9
    assert not [p for p in (workspace / "instances").iterdir() if not p.name.startswith(".")]
    done = subprocess.run(tick, env=later, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (firing,) = json.loads(done.stdout)["firings"]
    assert firing["outcome"] == "started" and firing["reason"] == "after an interrupted tick"
    assert firing["window"] == "2026-03-01T10:01:00+00:00"
    again = subprocess.run(tick, env=later, capture_output=True, text=True, timeout=60)
    assert json.loads(again.stdout)["firings"] == []
    instances = [p.name for p in (workspace / "instances").iterdir() if not p.name.startswith(".")]
    assert instances == [firing["instance"]]


def test_overlap_skip_queue_and_allow(cli, workspace, monkeypatch):
    _gated(workspace)
    base = {"template": "gated", "cron": "*/5 * * * *"}
    _config(
        workspace,
        {"name": "s", **base, "overlap": "skip"},
        {"name": "q", **base, "overlap": "queue"},
        {"name": "a", **base, "overlap": "allow"},
    )
    _tick(cli, monkeypatch, "2026-03-01T10:01:00Z")
    first = {f["schedule"]: f for f in _tick(cli, monkeypatch, "2026-03-01T10:05:01Z")["firings"]}
    assert {name: f["outcome"] for name, f in first.items()} == {
        "s": "started",
        "q": "started",
        "a": "started",
    }
    for firing in first.values():
        assert _wait_state(cli, firing["instance"], {"waiting"}) == "waiting"
    second = {f["schedule"]: f for f in _tick(cli, monkeypatch, "2026-03-01T10:10:01Z")["firings"]}
    assert second["s"]["outcome"] == "skipped"
    assert first["s"]["instance"] in second["s"]["reason"]
    assert second["q"]["outcome"] == "queued"
    assert cli("status", second["q"]["instance"], "--json").json()["state"] == "created"
    assert second["a"]["outcome"] == "started"
    assert _wait_state(cli, second["a"]["instance"], {"waiting"}) == "waiting"

    queued = second["q"]["instance"]
    shown = {v["name"]: v for v in cli("schedules", "--json").json()}
    assert shown["q"]["queue"] == [queued]
    assert shown["q"]["active"] == [first["q"]["instance"]]
    # Nothing is due at 10:11, but the queue moves only when the first one has ended.
    assert _tick(cli, monkeypatch, "2026-03-01T10:11:00Z")["firings"] == []
    earlier = first["q"]["instance"]
    assert cli("approve", earlier, "gate", "--as", "ann").exit_code == 0
    assert cli("resume", earlier, "--json").exit_code == 0
    turn = _tick(cli, monkeypatch, "2026-03-01T10:12:00Z")["firings"]
    assert [(f["schedule"], f["outcome"], f["instance"]) for f in turn] == [
        ("q", "started", queued)
    ]
    assert _wait_state(cli, queued, {"waiting"}) == "waiting"


def test_catchup_runs_the_latest_windows_and_reports_the_missed(cli, workspace, monkeypatch):
    _quick(workspace)
    base = {"template": "quick", "cron": "0 * * * *", "overlap": "allow"}
    _config(
        workspace,
        {"name": "latest", **base},
        {"name": "two", **base, "catchup": 2},
    )
    _tick(cli, monkeypatch, "2026-03-01T09:30:00Z")
    firings = _tick(cli, monkeypatch, "2026-03-01T14:10:00Z")["firings"]
    by = {(f["schedule"], f["outcome"]): f for f in firings}
    assert by[("latest", "missed")]["count"] == 4
    assert (
        "from 2026-03-01T10:00:00+00:00 to 2026-03-01T13:00:00+00:00"
        in (by[("latest", "missed")]["reason"])
    )
    started = [(f["schedule"], f["window"]) for f in firings if f["outcome"] == "started"]
    assert started == [
        ("latest", "2026-03-01T14:00:00+00:00"),
        ("two", "2026-03-01T13:00:00+00:00"),
        ("two", "2026-03-01T14:00:00+00:00"),
    ]
    assert by[("two", "missed")]["count"] == 3
    for firing in firings:
        if firing["instance"]:
            assert _wait_state(cli, firing["instance"], FINAL) == "completed"
    shown = {v["name"]: v for v in cli("schedules", "--json").json()}
    assert shown["two"]["counts"] == {"missed": 3, "started": 2}
    assert "so far: 3 missed, 2 started" in cli("schedules").stdout


def test_timezones_are_read_in_the_schedule_zone(cli, workspace, monkeypatch):
    _quick(workspace)
    _config(
        workspace,
        {"name": "paris", "template": "quick", "cron": "0 9 * * *", "timezone": "Europe/Paris"},
    )
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "2026-07-01T06:00:00Z")
    (view,) = cli("schedules", "--json").json()
    assert view["next"] == "2026-07-01T07:00:00+00:00"  # 09:00 in Paris, summer time


def test_bad_schedules_are_reported_and_the_good_ones_fire(cli, workspace, monkeypatch):
    _quick(workspace)
    _config(
        workspace,
        {"name": "good", "template": "quick", "cron": "* * * * *"},
        {"name": "badcron", "template": "quick", "cron": "61 * * * *"},
        {"name": "badzone", "template": "quick", "cron": "* * * * *", "timezone": "Mars/Base"},
        {"name": "badtemplate", "template": "nope", "cron": "* * * * *"},
        {"name": "badparam", "template": "quick", "cron": "* * * * *", "params": {"x": 1}},
        {"name": "badoverlap", "template": "quick", "cron": "* * * * *", "overlap": "later"},
    )
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "2026-03-01T10:00:30Z")
    shown = cli("schedules")
    assert shown.exit_code == 2
    for text in (
        "schedule 'badcron': cron '61 * * * *' is not a valid cron expression",
        "schedule 'badzone': unknown timezone 'Mars/Base'",
        "schedule 'badtemplate': ",
        "schedule 'badparam': parameter 'x': unknown",
        "schedule 'badoverlap': overlap: expected one of skip, queue, allow",
    ):
        assert text in shown.stderr, shown
    assert "Traceback" not in shown.stderr
    views = {v["name"]: v for v in cli("schedules", "--json").json()}
    assert views["good"]["error"] is None and views["badtemplate"]["next"] is None

    assert cli("tick").exit_code == 2  # counts from now; good fires on the next tick
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "2026-03-01T10:01:05Z")
    result = cli("tick", "--json")
    assert result.exit_code == 2
    outcomes = {(f["schedule"], f["outcome"]) for f in result.json()["firings"]}
    assert ("good", "started") in outcomes
    assert ("badtemplate", "failed") in outcomes and ("badparam", "failed") in outcomes
    assert any("badcron" in p for p in result.json()["problems"])
    for firing in result.json()["firings"]:
        if firing["instance"]:
            assert _wait_state(cli, firing["instance"], FINAL) == "completed"


def test_a_bad_pinned_time_is_a_usage_error(cli, monkeypatch):
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "yesterday")
    result = cli("tick")
    assert result.exit_code == 2
    assert "WORKFLOW_CLI_NOW is not an ISO 8601 time: 'yesterday'" in result.stderr


def test_due_windows_is_pure_and_bounded():
    after = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
    now = datetime(2026, 3, 1, 10, 3, 30, tzinfo=UTC)
    due = due_windows("* * * * *", "UTC", after, now, 1)
    assert [w.minute for w in due.fire] == [3] and due.missed_count == 2
    assert [w.minute for w in due.missed] == [1, 2]
    nothing = due_windows("* * * * *", "UTC", now, now, 3)
    assert nothing.fire == [] and nothing.missed_count == 0
    year = due_windows("* * * * * *", "UTC", after, after.replace(year=2027), 1)
    assert year.fire == [after.replace(year=2027)] and year.capped
    assert year.missed_count == 10_000 - 1
    schedules, problems = parse_schedules({"x": {"template": "t", "cron": "* * * * *"}})
    assert [s.name for s in schedules] == ["x"] and problems == []
    assert parse_schedules("nope")[1][0].message.startswith("schedules:")
