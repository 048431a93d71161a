"""Event waits through the real CLI: ``wait_for_event`` tasks and ``workflow_cli signal``.
A signal after the wait starts, before it (kept, and taken once), a filter that does
not match, timeouts fired by ``tick`` for each ``on_timeout``, a live runner taking a
signal, bad input; the Python API and the REST route. The clock is pinned with
WORKFLOW_CLI_NOW (a file the test moves), never slept through."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, Result, write_definition
from conftest import journal_events as events

WAIT_LIMIT = 60.0


def wait_for(event: str, *deps: str, **parameters: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "action": "wait_for_event",
        "parameters": {"event": event, **parameters},
    }
    return {**task, "dependencies": list(deps)} if deps else task


def value(expression: str, *deps: str, **extra: Any) -> dict[str, Any]:
    task = {"action": "condition_check", "parameters": {"expression": expression}, **extra}
    return {**task, "dependencies": list(deps)}


def create(cli: Callable[..., Result], workspace: Path, tasks: dict[str, Any], **extra: Any) -> str:
    created = cli("create", str(write_definition(workspace, tasks, **extra)), "--json")
    assert created.exit_code == 0, created
    return str(created.json()["id"])


def status(cli: Callable[..., Result], instance: str) -> dict[str, Any]:
    shown = cli("status", instance, "--json")
    assert shown.exit_code == 0, shown
    return dict(shown.json())


def signal(cli: Callable[..., Result], instance: str, event: str, *args: str) -> dict[str, Any]:
    sent = cli("signal", instance, event, "--json", *args)
    assert sent.exit_code == 0, sent
    return dict(sent.json())


ORDER = {"params": {"order_id": 42}}
PAID = "event.data.order_id == params.order_id"


def test_a_signal_after_the_wait_starts_becomes_the_output(workspace, cli, clock, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # status's table on one line per task
    tasks = {
        "paid": wait_for("payment", filter=PAID, timeout_seconds=3600),
        "amount": value("steps.paid.output.amount", "paid"),
    }
    instance = create(cli, workspace, tasks, **ORDER)
    assert cli("start", instance).exit_code == 3
    shown = cli("status", instance).stdout
    assert "event payment where event.data.order_id == params.order_id" in shown
    assert "deadline 2026-03-02T10:00:00.000+00:00 (then fail)" in shown
    waiting = status(cli, instance)["tasks"]["paid"]["waiting_for"]
    assert (waiting["kind"], waiting["event"], waiting["filter"]) == ("event", "payment", PAID)
    debug = cli("debug", instance, "--json").json()
    [account] = [t for t in debug["tasks"] if t["task"] == "paid"]
    assert account["waiting_for"]["deadline"] == "2026-03-02T10:00:00.000+00:00"

    other = signal(cli, instance, "payment", "--data", '{"order_id": 7, "amount": 1}')
    assert other["consumed_by"] is None  # the filter does not hold: kept, not taken
    sent = cli("signal", instance, "payment", "--data", '{"order_id": 42, "amount": 5}')
    assert sent.exit_code == 0, sent
    assert "taken by paid" in sent.stdout
    assert f"go on with: workflow_cli resume {instance}" in sent.stdout
    assert status(cli, instance)["state"] == "waiting"  # nothing runs until resumed

    assert cli("resume", instance).exit_code == 0
    after = status(cli, instance)
    assert after["state"] == "completed"
    assert after["tasks"]["paid"]["output"] == {"order_id": 42, "amount": 5}
    assert after["tasks"]["amount"]["output"] == 5
    received = events(workspace, instance, "signal_received")
    assert [(e["data"]["order_id"], e["by"]) for e in received] == [(7, "root"), (42, "root")]
    [taken] = events(workspace, instance, "signal_consumed")
    assert (taken["signal"], taken["task"]) == (received[1]["signal"], "paid")
    assert [s["consumed_by"] for s in after["signals"]] == [None, "paid"]
    cancelled = events(workspace, instance, "timer_cancelled")
    assert [c["reason"] for c in cancelled] == [f"signal {taken['signal']} came"]


def test_a_signal_sent_before_the_wait_is_kept_and_taken_once(workspace, cli, clock):
    tasks = {"first": wait_for("go"), "second": wait_for("go")}
    instance = create(cli, workspace, tasks)
    early = signal(cli, instance, "go", "--data", '{"n": 1}', "--as", "ops")
    assert early["consumed_by"] is None and early["by"] == "ops"

    assert cli("start", instance).exit_code == 3  # one wait takes it, the other waits
    tasks_now = status(cli, instance)["tasks"]
    states = sorted(t["state"] for t in tasks_now.values())
    assert states == ["completed", "waiting"]
    [took] = [name for name, t in tasks_now.items() if t["state"] == "completed"]
    assert tasks_now[took]["output"] == {"n": 1}
    [taken] = events(workspace, instance, "signal_consumed")
    assert (taken["signal"], taken["task"]) == (early["signal"], took)

    assert cli("resume", instance).exit_code == 3  # taken once: not again on a new run
    assert len(events(workspace, instance, "signal_consumed")) == 1

    second = signal(cli, instance, "go", "--data", '{"n": 2}')
    [other] = [name for name in tasks if name != took]
    assert second["consumed_by"] == other
    assert cli("resume", instance).exit_code == 0
    final = status(cli, instance)["tasks"]
    assert (final[took]["output"], final[other]["output"]) == ({"n": 1}, {"n": 2})


def test_a_later_wait_takes_the_oldest_pending_signal_it_matches(workspace, cli, clock):
    tasks = {
        "start": value("1"),
        "paid": wait_for("payment", "start", filter=PAID),
    }
    instance = create(cli, workspace, tasks, **ORDER)
    signal(cli, instance, "refund", "--data", '{"order_id": 42}')  # another event
    signal(cli, instance, "payment", "--data", '{"order_id": 1}')  # does not match
    wanted = signal(cli, instance, "payment", "--data", '{"order_id": 42, "n": 1}')
    signal(cli, instance, "payment", "--data", '{"order_id": 42, "n": 2}')
    assert cli("start", instance).exit_code == 0
    assert status(cli, instance)["tasks"]["paid"]["output"] == {"order_id": 42, "n": 1}
    [taken] = events(workspace, instance, "signal_consumed")
    assert taken["signal"] == wanted["signal"]
    pending = [s for s in status(cli, instance)["signals"] if s["consumed_by"] is None]
    assert [(s["event"], s["data"]) for s in pending] == [
        ("refund", {"order_id": 42}),
        ("payment", {"order_id": 1}),
        ("payment", {"order_id": 42, "n": 2}),
    ]


def test_a_filter_mismatch_stays_pending_and_the_instance_waits(workspace, cli, clock):
    instance = create(cli, workspace, {"paid": wait_for("payment", filter=PAID)}, **ORDER)
    signal(cli, instance, "payment", "--data", '{"amount": 3}')  # no order_id: no match
    assert cli("start", instance).exit_code == 3
    after = status(cli, instance)
    assert after["tasks"]["paid"]["state"] == "waiting"
    assert [s["consumed_by"] for s in after["signals"]] == [None]
    assert events(workspace, instance, "signal_consumed") == []


@pytest.mark.parametrize("on_timeout", ["fail", "continue", "compensate"])
def test_a_timeout_fired_by_tick(workspace, cli, clock, on_timeout):
    tasks = {
        "book": value(
            "1", compensate={"action": "condition_check", "parameters": {"expression": "0"}}
        ),
        "paid": wait_for("payment", "book", timeout_seconds=60, on_timeout=on_timeout),
        "after": value("steps.paid.output", "paid"),
    }
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    [timer] = events(workspace, instance, "timer_set")
    assert (timer["kind"], timer["target"]) == ("event_timeout", "paid")
    assert timer["due"] == (T0 + timedelta(seconds=60)).isoformat(timespec="milliseconds")

    clock.set(59)
    quiet = cli("tick", "--json")
    assert quiet.exit_code == 0 and quiet.json()["fired"] == {}, quiet
    clock.set(61)
    late = signal(cli, instance, "payment", "--data", "{}")  # fires the due timeout first
    assert late["consumed_by"] is None
    [fired] = events(workspace, instance, "timer_fired")
    assert (fired["by"], fired["kind"]) == ("signal", "event_timeout")
    [timed_out] = events(workspace, instance, "event_wait_timed_out")
    assert (timed_out["on_timeout"], timed_out["timeout_seconds"]) == (on_timeout, 60.0)

    code = cli("resume", instance).exit_code
    after = status(cli, instance)
    compensated = events(workspace, instance, "compensation_completed")
    if on_timeout == "continue":
        assert code == 0
        assert after["tasks"]["paid"]["output"] == {"timed_out": True}
        assert after["tasks"]["after"]["output"] == {"timed_out": True}
        assert compensated == []
    else:
        assert code == 1
        error = after["tasks"]["paid"]["error"]
        assert (error["message"], error["kind"]) == ("no payment within 60 s", "timeout")
        assert after["tasks"]["paid"]["attempts"] == 1  # not retried
        assert [c["task"] for c in compensated] == (["book"] if on_timeout == "compensate" else [])
    assert [s["consumed_by"] for s in after["signals"]] == [None]  # too late: not taken


def test_tick_fires_the_timeout_with_no_process_alive(workspace, cli, clock):
    instance = create(cli, workspace, {"paid": wait_for("payment", timeout_seconds=5)})
    assert cli("start", instance).exit_code == 3
    clock.set(6)
    ticked = cli("tick", "--resume", "--json")
    assert ticked.exit_code == 0, ticked
    report = ticked.json()
    assert [e["type"] for e in report["fired"][instance]] == [
        "timer_fired",
        "event_wait_timed_out",
    ]
    assert report["fired"][instance][0]["by"] == "tick"
    assert report["resumed"] == {instance: "failed"}
    assert status(cli, instance)["tasks"]["paid"]["error"]["message"] == "no payment within 5 s"


HOLD = """\
import json, os, sys, time
params = json.load(sys.stdin)
deadline = time.monotonic() + 60
while not os.path.exists(params["release"]) and time.monotonic() < deadline:
    time.sleep(0.02)
print(json.dumps({"released": os.path.exists(params["release"])}))
"""


def test_a_live_runner_goes_on_when_the_signal_comes(workspace, cli, clock):
    """While another task keeps the runner alive, the signal comes: the runner takes it
    up and the waiting task completes in the same run."""
    (workspace / "hold.py").write_text(HOLD)
    agents = {"agents": {"hold": {"command": [sys.executable, str(workspace / "hold.py")]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))
    release = workspace / "release"
    tasks = {
        "paid": wait_for("payment"),
        "hold": {
            "action": "agent_task",
            "agent_id": "hold",
            "parameters": {"release": str(release)},
        },
    }
    instance = create(cli, workspace, tasks)
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "workflow_cli", "start", instance],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        limit = time.monotonic() + WAIT_LIMIT
        while not events(workspace, instance, "task_waiting"):
            assert time.monotonic() < limit and runner.poll() is None, "the task did not wait"
            time.sleep(0.02)
        sent = signal(cli, instance, "payment", "--data", '{"ok": true}')
        assert sent["consumed_by"] == "paid" and sent["runner_alive"] is True
        while status(cli, instance)["tasks"]["paid"]["state"] != "completed":
            assert time.monotonic() < limit and runner.poll() is None, "the runner did not go on"
            time.sleep(0.02)
        release.write_text("go")
        out, err = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, (out, err)
    after = status(cli, instance)
    assert after["state"] == "completed"
    assert after["tasks"]["paid"]["output"] == {"ok": True}
    assert len(events(workspace, instance, "run_started")) == 1


# -- bad input ---------------------------------------------------------------------------


def test_bad_signals_are_refused_and_write_nothing(workspace, cli, clock):
    unknown = cli("signal", "no-such-instance", "go")
    assert unknown.exit_code == 2 and "no-such-instance" in unknown.stderr, unknown
    assert "Traceback" not in unknown.stderr

    instance = create(cli, workspace, {"paid": wait_for("payment")})
    before = len(events(workspace, instance))
    bad = cli("signal", instance, "payment", "--data", "{not json")
    assert bad.exit_code == 2 and "--data is not JSON" in bad.stderr, bad
    missing = cli("signal", instance, "payment", "--data", "@nowhere.json")
    assert missing.exit_code == 2 and "cannot read nowhere.json" in missing.stderr, missing
    (workspace / "broken.json").write_text("[1,")
    broken = cli("signal", instance, "payment", "--data", "@broken.json")
    assert broken.exit_code == 2 and "broken.json is not JSON" in broken.stderr, broken
    empty = cli("signal", instance, " ")
    assert empty.exit_code == 2 and "needs a name" in empty.stderr, empty
    assert len(events(workspace, instance)) == before

    (workspace / "data.json").write_text('{"from": "file"}')
    assert signal(cli, instance, "payment", "--data", "@data.json")["consumed_by"] is None
    assert cli("start", instance).exit_code == 0
    assert status(cli, instance)["tasks"]["paid"]["output"] == {"from": "file"}
    done = len(events(workspace, instance))
    finished = cli("signal", instance, "payment")
    assert finished.exit_code == 2 and "is completed; it takes no more signals" in finished.stderr
    assert len(events(workspace, instance)) == done


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, "needs 'event'"),
        ({"event": "x", "on_timeout": "later"}, "'on_timeout' must be one of"),
        ({"event": "x", "timeout_seconds": -1}, "timeout_seconds"),
        ({"event": "x", "filter": "event.data.a =="}, "/parameters/filter"),
        ({"event": "x", "filter": "evnt.data.a"}, "unknown name 'evnt'"),
        ({"event": "x", "filter": "event.data.a == params.nope"}, "unknown parameter 'nope'"),
        ({"event": "x", "wait": 1}, "wait"),
    ],
)
def test_bad_wait_parameters_are_found_by_validate(workspace, cli, parameters, message):
    task = {"action": "wait_for_event", "parameters": parameters}
    result = cli("validate", str(write_definition(workspace, {"w": task})))
    assert result.exit_code == 2, result
    assert message in result.stdout + result.stderr, result


def test_event_is_read_only_by_a_wait_filter(workspace, cli):
    tasks = {"x": value("event.data", conditions=["event.data.ok"])}
    result = cli("validate", str(write_definition(workspace, tasks)))
    assert result.exit_code == 2, result
    assert result.stderr.count("reads 'event', which only a wait_for_event filter sees") == 2


# -- the Python API and the REST API -------------------------------------------------------


def test_the_python_api_sends_signals(workspace, cli, clock):
    from workflow_cli.api import SignalResult, Workspace

    instance = create(cli, workspace, {"a": wait_for("go"), "b": wait_for("go", "a")})
    ws = Workspace(workspace)
    assert cli("start", instance).exit_code == 3
    sent = ws.signal(instance, "go", {"n": 1}, sender="billing")
    assert isinstance(sent, SignalResult)
    assert (sent.consumed_by, sent.by, sent.runner_alive) == ("a", "billing", False)
    early = asyncio.run(ws.signal_async(instance, "go", [2]))  # b does not wait yet: kept
    assert early.consumed_by is None and early.by
    assert ws.run(instance).state == "completed"
    tasks = ws.status(instance)["tasks"]
    assert (tasks["a"]["output"], tasks["b"]["output"]) == ({"n": 1}, [2])


def test_the_rest_route_signals_as_the_tokens_name(workspace, cli, clock):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from test_server import ROLES, Server, add_token, start_server, stop_server

    instance = create(cli, workspace, {"paid": wait_for("payment", filter=PAID)}, **ORDER)
    assert cli("start", instance).exit_code == 3
    tokens = {name: add_token(cli, name, role) for name, role in ROLES.items()}
    process, url = start_server(workspace)
    try:
        server = Server(url, process, tokens)
        path = f"/api/workflows/{instance}/signal"
        code, body = server.call("POST", path, "viewer1", {"event": "payment"})
        assert code == 403, body
        code, body = server.call("POST", path, "ops", {"data": {}})
        assert code == 400 and "event" in body["error"], body
        code, body = server.call("POST", "/api/workflows/nope/signal", "ops", {"event": "x"})
        assert code == 404, body
        code, body = server.call(
            "POST", path, "ops", {"event": "payment", "data": {"order_id": 42}}
        )
        assert code == 200, body
        assert (body["consumed_by"], body["by"], body["event"]) == ("paid", "ops", "payment")
    finally:
        stop_server(process)
    [received] = events(workspace, instance, "signal_received")
    assert (received["by"], received["data"]) == ("ops", {"order_id": 42})
    assert cli("resume", instance).exit_code == 0
    assert status(cli, instance)["tasks"]["paid"]["output"] == {"order_id": 42}
