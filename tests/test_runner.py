"""The runner through the real CLI: retries, timeouts, failure policies, conditions,
event-driven scheduling, priorities, approvals, agents and sub-workflows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import start_runner, write_definition

PY = sys.executable


def events(workspace: Path, instance: str) -> list[dict[str, Any]]:
    path = workspace / "instances" / instance / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_agent(workspace: Path, name: str, body: str, *, callable_: bool = False) -> None:
    """Declare agent `name` in agents.yaml, backed by a script with `body`."""
    script = workspace / f"{name}.py"
    if callable_:
        script.write_text(textwrap.dedent(body))
        entry: dict[str, Any] = {"callable": f"{name}:run"}
    else:
        script.write_text(
            "import json, os, sys, time, pathlib\n"
            "params = json.load(sys.stdin)\n" + textwrap.dedent(body)
        )
        entry = {"command": [PY, str(script)]}
    path = workspace / "agents.yaml"
    existing = json.loads(path.read_text()) if path.exists() else {"agents": {}}
    existing["agents"][name] = entry
    path.write_text(json.dumps(existing))  # JSON is YAML


def run_definition(cli, workspace, tasks, *args, **extra):
    path = write_definition(workspace, tasks, **extra)
    result = cli("run", str(path), "--json", *args)
    return result, result.json()["id"] if result.stdout.strip().startswith("{") else None


def check(expression: str = "1", **more: Any) -> dict[str, Any]:
    return {"action": "condition_check", "parameters": {"expression": expression}, **more}


def test_retries_with_exponential_backoff_then_success(cli, workspace):
    write_agent(
        workspace,
        "flaky",
        """
        counter = pathlib.Path("count.txt")
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        if n < 3:
            print("not yet", file=sys.stderr)
            sys.exit(7)
        print(json.dumps({"attempts": n}))
    """,
    )
    result, instance = run_definition(
        cli,
        workspace,
        {
            "t": {
                "action": "agent_task",
                "agent_id": "flaky",
                "retry_count": 3,
                "retry_delay": 0.05,
                "retry_backoff": 2,
            }
        },
    )
    assert result.exit_code == 0, result
    retries = [e for e in events(workspace, instance) if e["type"] == "task_retrying"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert retries[0]["error"]["exit_code"] == 7
    assert 0.045 <= retries[0]["delay"] <= 0.055
    assert 0.09 <= retries[1]["delay"] <= 0.11
    status = cli("status", instance, "--json").json()
    assert status["tasks"]["t"]["attempts"] == 3
    assert status["tasks"]["t"]["output"] == {"attempts": 3}
    assert "not yet" in (workspace / "instances" / instance / "logs" / "t.log").read_text()


def test_retry_delay_is_capped(cli, workspace):
    write_agent(workspace, "fails", "sys.exit(1)\n")
    result, instance = run_definition(
        cli,
        workspace,
        {
            "t": {
                "action": "agent_task",
                "agent_id": "fails",
                "retry_count": 2,
                "retry_delay": 1,
                "retry_backoff": 10,
                "max_retry_delay": 0.05,
            }
        },
    )
    assert result.exit_code == 1
    delays = [e["delay"] for e in events(workspace, instance) if e["type"] == "task_retrying"]
    assert len(delays) == 2 and all(d <= 0.05 for d in delays)


def test_non_retryable_failure_is_not_retried(cli, workspace):
    result, instance = run_definition(
        cli,
        workspace,
        {
            "t": {
                "action": "file_operation",
                "parameters": {"operation": "read", "path": "absent.txt"},
                "retry_count": 3,
                "retry_delay": 0.01,
            }
        },
    )
    assert result.exit_code == 1
    status = cli("status", instance, "--json").json()
    assert status["state"] == "failed"
    assert status["tasks"]["t"]["attempts"] == 1
    assert "absent.txt" in status["tasks"]["t"]["error"]["message"]


def test_timeout_kills_the_agents_whole_process_group(cli, workspace):
    write_agent(
        workspace,
        "hang",
        """
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        child = __import__("subprocess").Popen(sleeper)
        pathlib.Path("child.pid").write_text(str(child.pid))
        time.sleep(60)
    """,
    )
    started = time.monotonic()
    result, instance = run_definition(
        cli, workspace, {"t": {"action": "agent_task", "agent_id": "hang", "timeout_seconds": 1}}
    )
    assert time.monotonic() - started < 20
    assert result.exit_code == 1
    error = cli("status", instance, "--json").json()["tasks"]["t"]["error"]
    assert error["kind"] == "timeout"
    pid = int((workspace / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # a killed child may linger as a zombie of its (also killed) parent until reaped
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("the agent's child process survived the timeout")


def test_critical_failure_fails_the_workflow_and_stops_dependents(cli, workspace):
    write_agent(workspace, "boom", "sys.exit(3)\n")
    result, instance = run_definition(
        cli,
        workspace,
        {
            "bad": {"action": "agent_task", "agent_id": "boom"},
            "after": check(dependencies=["bad"]),
        },
    )
    assert result.exit_code == 1
    assert result.json()["state"] == "failed"
    status = cli("status", instance, "--json").json()
    assert status["tasks"]["bad"]["state"] == "failed"
    assert status["tasks"]["after"]["state"] == "pending"
    assert "task 'bad' failed" in status["reason"]


def test_failure_policies(cli, workspace):
    write_agent(workspace, "boom", "sys.exit(3)\n")
    tasks = {
        "soft": {"action": "agent_task", "agent_id": "boom", "critical": False},
        "after_soft": check(dependencies=["soft"]),
        "cont": {"action": "agent_task", "agent_id": "boom", "on_failure": "continue"},
        "after_cont": check("steps.cont.state", dependencies=["cont"]),
        "skipper": {"action": "agent_task", "agent_id": "boom", "on_failure": "skip"},
        "after_skipper": check(dependencies=["skipper"]),
        "independent": check(),
    }
    result, instance = run_definition(cli, workspace, tasks)
    assert result.exit_code == 0, result
    states = {t: s["state"] for t, s in cli("status", instance, "--json").json()["tasks"].items()}
    assert states == {
        "soft": "failed",
        "after_soft": "skipped",
        "cont": "failed",
        "after_cont": "completed",
        "skipper": "failed",
        "after_skipper": "skipped",
        "independent": "completed",
    }
    outputs = cli("status", instance, "--json").json()["tasks"]
    assert outputs["after_cont"]["output"] == "failed"


def test_conditions_and_skip_propagation(cli, workspace):
    tasks = {
        "score": check("80"),
        "high": check(
            "'high'",
            dependencies=["score"],
            conditions="steps.score.output >= 70",
            execution_mode="conditional",
        ),
        "low": check("'low'", dependencies=["score"], conditions=["steps.score.output < 70"]),
        "join": check(dependencies=["high", "low"]),
        "only_low": check(dependencies=["low"]),
        "only_low_anyway": check(dependencies=["low"], run_if_dependencies_skipped=True),
    }
    result, instance = run_definition(cli, workspace, tasks)
    assert result.exit_code == 0, result
    status = cli("status", instance, "--json").json()["tasks"]
    assert status["high"]["state"] == "completed"
    assert status["low"]["state"] == "skipped"
    assert "steps.score.output < 70" in status["low"]["reason"]
    assert status["join"]["state"] == "completed"
    assert status["only_low"]["state"] == "skipped"
    assert status["only_low_anyway"]["state"] == "completed"


def test_expression_error_at_run_time_fails_the_task(cli, workspace):
    result, instance = run_definition(
        cli,
        workspace,
        {
            "a": check("{'x': 1}"),
            "b": check("1", dependencies=["a"], conditions="steps.a.output.y > 1"),
        },
    )
    assert result.exit_code == 1
    error = cli("status", instance, "--json").json()["tasks"]["b"]["error"]
    assert error["kind"] == "expression"
    assert "no attribute 'y'" in error["message"]


def test_scheduling_is_event_driven_not_level_by_level(cli, workspace):
    # 'slow' (level 1) finishes only once 'fast2' (level 2) has run: level-by-level
    # scheduling would deadlock here until slow's timeout.
    write_agent(
        workspace,
        "wait_for",
        """
        deadline = time.monotonic() + 10
        while not pathlib.Path(params["file"]).exists():
            if time.monotonic() > deadline:
                sys.exit(9)
            time.sleep(0.01)
        print("{}")
    """,
    )
    write_agent(workspace, "touch", 'pathlib.Path(params["file"]).write_text("x")\nprint("{}")\n')
    tasks = {
        "slow": {"action": "agent_task", "agent_id": "wait_for", "parameters": {"file": "f2"}},
        "fast1": {"action": "agent_task", "agent_id": "touch", "parameters": {"file": "f1"}},
        "fast2": {
            "action": "agent_task",
            "agent_id": "touch",
            "parameters": {"file": "f2"},
            "dependencies": ["fast1"],
        },
        "end": check(dependencies=["slow", "fast2"]),
    }
    result, _ = run_definition(cli, workspace, tasks)
    assert result.exit_code == 0, result


def test_priorities_order_the_ready_set(cli, workspace):
    tasks = {f"t{i}": check(str(i), priority=i) for i in range(5)}
    write_agent(workspace, "noop", 'print("{}")\n')
    tasks = {
        f"t{i}": {"action": "agent_task", "agent_id": "noop", "priority": p}
        for i, p in enumerate([1, 5, 3, 4, 2])
    }
    result, instance = run_definition(cli, workspace, tasks, "--max-workers", "1")
    assert result.exit_code == 0
    order = [e["task"] for e in events(workspace, instance) if e["type"] == "task_started"]
    assert order == ["t1", "t3", "t2", "t4", "t0"]


def test_sequential_task_runs_alone(cli, workspace):
    write_agent(workspace, "noop", 'print("{}")\n')
    tasks: dict[str, dict[str, Any]] = {
        f"p{i}": {"action": "agent_task", "agent_id": "noop"} for i in range(4)
    }
    tasks["solo"] = {
        "action": "agent_task",
        "agent_id": "noop",
        "execution_mode": "sequential",
        "priority": 10,
    }
    result, instance = run_definition(cli, workspace, tasks, "--max-workers", "4")
    assert result.exit_code == 0
    running: set[str] = set()
    for event in events(workspace, instance):
        if event["type"] == "task_started":
            running.add(event["task"])
        elif event["type"] == "task_completed":
            running.discard(event["task"])
        if "solo" in running:
            assert running == {"solo"}, running


def test_command_and_callable_agents(cli, workspace):
    write_agent(
        workspace,
        "double",
        """
        print("working", file=sys.stderr)
        print(json.dumps({"value": params["n"] * 2, "task": os.environ["WORKFLOW_TASK"]}))
    """,
    )
    write_agent(
        workspace,
        "adder",
        """
        def run(params):
            return {"sum": params["a"] + params["b"]}
    """,
        callable_=True,
    )
    write_agent(workspace, "chatty", 'print("not json")\n')
    result, instance = run_definition(
        cli,
        workspace,
        {
            "d": {"action": "agent_task", "agent_id": "double", "parameters": {"n": 21}},
            "s": {
                "action": "agent_task",
                "agent_id": "adder",
                "dependencies": ["d"],
                "parameters": {"a": "{{ steps.d.output.value }}", "b": 1},
            },
            "c": {"action": "agent_task", "agent_id": "chatty", "critical": False},
        },
    )
    assert result.exit_code == 0, result
    tasks = cli("status", instance, "--json").json()["tasks"]
    assert tasks["d"]["output"] == {"value": 42, "task": "d"}
    assert tasks["s"]["output"] == {"sum": 43}
    assert tasks["c"]["state"] == "failed"
    assert "not JSON" in tasks["c"]["error"]["message"]
    assert "working" in (workspace / "instances" / instance / "logs" / "d.log").read_text()


def test_approval_gate_wait_approve_reject(cli, workspace):
    tasks = {
        "gate": {"action": "approval_gate", "parameters": {"approvers": ["ann", "bob"]}},
        "after": check(dependencies=["gate"]),
    }
    result, instance = run_definition(cli, workspace, tasks)
    assert result.exit_code == 3
    assert result.json()["waiting"]["gate"]["approvers"] == ["ann", "bob"]
    assert cli("status", instance, "--json").json()["state"] == "waiting"
    refused = cli("approve", instance, "--as", "eve")
    assert refused.exit_code == 2 and "may not decide" in refused.stderr
    assert cli("approve", instance, "nope", "--as", "ann").exit_code == 2
    assert cli("approve", instance, "gate", "--as", "ann", "--comment", "fine").exit_code == 0
    resumed = cli("resume", instance, "--json")
    assert resumed.exit_code == 0, resumed
    status = cli("status", instance, "--json").json()
    assert status["tasks"]["gate"]["output"]["by"] == "ann"
    assert status["approvals"][0]["comment"] == "fine"
    assert cli("approve", instance, "--as", "ann").exit_code == 2  # nothing waits now

    result, second = run_definition(cli, workspace, tasks)
    assert cli("reject", second, "--as", "bob", "--comment", "no").exit_code == 0
    rejected = cli("resume", second, "--json")
    assert rejected.exit_code == 1
    gate = cli("status", second, "--json").json()["tasks"]["gate"]
    assert gate["state"] == "failed" and "rejected by bob: no" in gate["error"]["message"]


def test_a_live_runner_picks_up_an_approval(workspace):
    write_agent(
        workspace,
        "wait_for",
        """
        deadline = time.monotonic() + 20
        while not pathlib.Path(params["file"]).exists():
            if time.monotonic() > deadline:
                sys.exit(9)
            time.sleep(0.01)
        print("{}")
    """,
    )
    path = write_definition(
        workspace,
        {
            "gate": {"action": "approval_gate", "parameters": {"approvers": ["ann"]}},
            "long": {"action": "agent_task", "agent_id": "wait_for", "parameters": {"file": "go"}},
            "after": check(dependencies=["gate", "long"]),
        },
    )
    instance, runner = start_runner(workspace, path)
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    try:
        deadline = time.monotonic() + 20
        journal = workspace / "instances" / instance / "events.jsonl"
        while '"task_waiting"' not in journal.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        approve = subprocess.run(
            [PY, "-m", "workflow_cli", "approve", instance, "--as", "ann"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert approve.returncode == 0, approve.stderr
        (workspace / "go").write_text("x")
        out, err = runner.communicate(timeout=30)
    finally:
        runner.kill()
    assert runner.returncode == 0, (out, err)
    assert "gate: approved by ann" in out


def test_workflow_trigger_runs_a_child(cli, workspace):
    child = {
        "name": "child",
        "description": "child",
        "parameters": {"n": {"type": "integer", "default": 1}},
        "workflow": {
            "id": "child",
            "name": "child",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {"square": check("params.n * params.n")},
        },
    }
    (workspace / "templates").mkdir()
    (workspace / "templates" / "child.json").write_text(json.dumps(child))
    result, parent = run_definition(
        cli,
        workspace,
        {
            "kick": {
                "action": "workflow_trigger",
                "parameters": {"template": "child", "params": {"n": 7}},
            },
            "use": check("steps.kick.output.outputs.square + 1", dependencies=["kick"]),
        },
    )
    assert result.exit_code == 0, result
    status = cli("status", parent, "--json").json()
    child_id = status["children"]["kick"]
    assert status["tasks"]["use"]["output"] == 50
    child_status = cli("status", child_id, "--json").json()
    assert child_status["parent"] == {"instance": parent, "task": "kick"}
    assert child_status["state"] == "completed"
    text = cli("status", parent).stdout
    assert child_id in text


def test_workflow_trigger_with_a_bad_child_fails_the_task(cli, workspace):
    result, parent = run_definition(
        cli,
        workspace,
        {
            "kick": {"action": "workflow_trigger", "parameters": {"template": "no_such_template"}},
        },
    )
    assert result.exit_code == 1
    error = cli("status", parent, "--json").json()["tasks"]["kick"]["error"]
    assert "unknown template 'no_such_template'" in error["message"]
