"""repeat loops through the real CLI: a task runs again until ``until`` holds over its
last output, each iteration recorded; past ``max_iterations`` it fails saying so. And
the dead letters a plain task leaves when it fails for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition
from conftest import journal_events as events

AGENT = '''\
"""Test agent: counts its runs in count.txt and prints the count and its parameters."""
import json, os, sys, time

params = json.load(sys.stdin)
time.sleep(float(os.environ.get("AGENT_SLEEP", "0")))
count = int(open("count.txt").read()) + 1 if os.path.exists("count.txt") else 1
with open("count.txt", "w") as out:
    out.write(str(count))
if params.get("fail"):
    print("told to fail", file=sys.stderr)
    sys.exit(5)
print(json.dumps({"n": count, "iteration": params.get("iteration")}))
'''


@pytest.fixture
def agent(workspace: Path) -> Path:
    script = workspace / "agent.py"
    script.write_text(AGENT, encoding="utf-8")
    agents = {"agents": {"counter": {"command": [sys.executable, str(script)]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents), encoding="utf-8")
    return script


def poll(until: str, max_iterations: int, **extra: Any) -> dict[str, Any]:
    return {
        "poll": {
            "action": "agent_task",
            "agent_id": "counter",
            "parameters": {"iteration": "{{ iteration }}"},
            "repeat": {"until": until, "max_iterations": max_iterations, "delay_seconds": 0.01},
            **extra,
        },
        "after": {
            "action": "condition_check",
            "dependencies": ["poll"],
            "parameters": {"expression": "steps.poll.output.n"},
        },
    }


def run(cli: Callable[..., Result], path: Path) -> tuple[str, Result]:
    created = cli("create", str(path), "--json")
    assert created.exit_code == 0, created
    instance: str = created.json()["id"]
    return instance, cli("start", instance)


def test_repeat_until_the_condition_holds(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    path = write_definition(workspace, poll("output.n >= 3 and iteration == 3", 5))
    instance, ran = run(cli, path)
    assert ran.exit_code == 0, ran
    state = cli("status", instance, "--json").json()
    assert state["tasks"]["poll"]["output"] == {"n": 3, "iteration": 3}
    assert state["tasks"]["poll"]["iteration"] == 3
    assert state["tasks"]["after"]["output"] == 3
    iterations = [e for e in events(workspace, instance) if e["type"] == "task_iterated"]
    assert [(e["iteration"], e["held"], e["output"]["n"]) for e in iterations] == [
        (1, False, 1),
        (2, False, 2),
        (3, True, 3),
    ]
    assert [e["delay"] for e in iterations] == [0.01, 0.01, 0]


def test_repeat_fails_after_max_iterations(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    instance, ran = run(cli, write_definition(workspace, poll("output.n > 100", 2)))
    assert ran.exit_code == 1, ran
    state = cli("status", instance, "--json").json()
    error = state["tasks"]["poll"]["error"]
    assert error["kind"] == "repeat" and error["iterations"] == 2
    assert "did not hold after 2 iterations (max_iterations 2)" in error["message"]
    assert "did not hold after 2 iterations" in (state["reason"] or "")
    assert (workspace / "count.txt").read_text() == "2"
    held = [e["held"] for e in events(workspace, instance) if e["type"] == "task_iterated"]
    assert held == [False, False]


def test_validate_names_misused_loop_names(workspace: Path, cli: Callable[..., Result]) -> None:
    tasks = poll("item > 1", 3)
    tasks["after"]["parameters"]["expression"] = "iteration"
    checked = cli("validate", str(write_definition(workspace, tasks)), "--json")
    assert checked.exit_code == 2, checked
    messages = {p["pointer"]: p["message"] for p in checked.json()["problems"]}
    assert "'until' sees output and iteration" in messages["/tasks/poll/repeat/until"]
    assert "only a repeating task" in messages["/tasks/after/parameters/expression"]


def test_a_failed_task_is_listed_with_its_inputs_until_retried(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    tasks = {
        "work": {
            "action": "agent_task",
            "agent_id": "counter",
            "retry_count": 1,
            "retry_delay": 0,
            "parameters": {"fail": "{{ params.fail }}", "size": 3},
        }
    }
    path = write_definition(workspace, tasks, params={"fail": True})
    instance, ran = run(cli, path)
    assert ran.exit_code == 1, ran
    [letter] = cli("failures", "--json").json()
    assert letter["instance"] == instance and letter["task"] == "work" and letter["item"] is None
    assert letter["attempts"] == 2
    assert letter["inputs"] == {"fail": True, "size": 3}
    assert "exited with code 5" in letter["error"]["message"]
    assert letter["retry"] == f"workflow_cli retry {instance} --task work"
    only = cli("failures", "--instance", instance, "--json").json()
    assert only == [letter]

    assert cli("retry", instance, "--task", "work").exit_code == 0
    assert cli("failures", "--json").json() == []  # retried: no longer a dead letter
    assert cli("failures").stdout.strip() == "no failures"


def group_flow(until: str, max_iterations: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """first → (fetch → check, a repeating group) → after."""
    tasks = {
        "first": {"action": "condition_check", "parameters": {"expression": "7"}},
        "fetch": {
            "action": "agent_task",
            "agent_id": "counter",
            "dependencies": ["first"],
            "parameters": {},
        },
        "check": {
            "action": "condition_check",
            "dependencies": ["fetch"],
            "parameters": {"expression": "steps.fetch.output.n >= 3"},
        },
        "after": {
            "action": "condition_check",
            "dependencies": ["check"],
            "parameters": {"expression": "[steps.fetch.output.n, steps.first.output]"},
        },
    }
    groups = {
        "poll": {
            "tasks": ["fetch", "check"],
            "repeat": {"until": until, "max_iterations": max_iterations, "delay_seconds": 0},
        }
    }
    return tasks, groups


def test_a_group_repeats_until_it_holds_and_what_follows_runs_once(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    tasks, groups = group_flow("output.check and iteration == 3", 5)
    instance, ran = run(cli, write_definition(workspace, tasks, groups=groups))
    assert ran.exit_code == 0, ran
    state = cli("status", instance, "--json").json()
    assert state["tasks"]["after"]["output"] == [3, 7]
    assert (workspace / "count.txt").read_text() == "3"
    journal = events(workspace, instance)
    iterated = [e for e in journal if e["type"] == "group_iterated"]
    assert [(e["iteration"], e["held"], e["again"]) for e in iterated] == [
        (1, False, ["fetch", "check"]),
        (2, False, ["fetch", "check"]),
        (3, True, []),
    ]
    started = [e["task"] for e in journal if e["type"] == "task_started"]
    assert started.count("first") == 1 and started.count("after") == 1
    assert started.count("fetch") == 3 and started.count("check") == 3
    assert started.index("after") > max(i for i, t in enumerate(started) if t == "check")


def test_a_group_that_never_holds_fails_its_last_task(
    workspace: Path, agent: Path, cli: Callable[..., Result]
) -> None:
    tasks, groups = group_flow("output.fetch.n > 100", 2)
    instance, ran = run(cli, write_definition(workspace, tasks, groups=groups))
    assert ran.exit_code == 1, ran
    state = cli("status", instance, "--json").json()
    error = state["tasks"]["check"]["error"]
    assert error["kind"] == "repeat" and error["group"] == "poll"
    assert "group 'poll': repeat: 'until' did not hold after 2 iterations" in error["message"]
    assert state["tasks"]["fetch"]["state"] == "completed"
    assert state["tasks"]["after"]["state"] == "pending"  # the run failed first
    assert (workspace / "count.txt").read_text() == "2"


def test_a_group_goes_on_after_a_kill_9(
    workspace: Path, agent: Path, cli: Callable[..., Result], cli_process: Any
) -> None:
    tasks, groups = group_flow("output.check", 6)
    created = cli("create", str(write_definition(workspace, tasks, groups=groups)), "--json")
    instance = created.json()["id"]
    env = {**os.environ, "WORKFLOW_HOME": str(workspace), "AGENT_SLEEP": "0.2"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "workflow_cli", "start", instance],
        env=env,
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    for _ in range(6000):
        if any(e["type"] == "group_iterated" for e in events(workspace, instance)):
            break
        assert time.monotonic() < deadline and runner.poll() is None, "no iteration ended"
        time.sleep(0.01)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    at_kill = [e["iteration"] for e in events(workspace, instance) if e["type"] == "group_iterated"]
    resumed = cli_process("resume", instance)
    assert resumed.returncode == 0, resumed.stderr
    state = cli("status", instance, "--json").json()
    assert state["tasks"]["after"]["output"][0] >= 3
    assert state["groups"]["poll"]["done"] is True
    iterated = [e for e in events(workspace, instance) if e["type"] == "group_iterated"]
    iterations = [e["iteration"] for e in iterated]
    assert iterations[: len(at_kill)] == at_kill
    assert iterations == list(range(1, len(iterations) + 1))  # went on, never started over
    assert iterated[-1]["held"] is True


def test_validate_names_what_a_group_cannot_be(workspace: Path, cli: Callable[..., Result]) -> None:
    tasks, groups = group_flow("steps.after.output", 2)
    tasks["side"] = {
        "action": "condition_check",
        "dependencies": ["fetch"],
        "parameters": {"expression": "1"},
    }
    tasks["check"]["dependencies"] = ["fetch", "side"]
    groups["poll"]["tasks"].append("nope")
    checked = cli("validate", str(write_definition(workspace, tasks, groups=groups)), "--json")
    assert checked.exit_code == 2, checked
    messages = [(p["pointer"], p["message"]) for p in checked.json()["problems"]]
    assert ("/groups/poll/tasks/2", "unknown task 'nope'") in messages
    assert (
        "/groups/poll/tasks",
        "task 'side' is outside the group but runs between its tasks",
    ) in messages
    assert (
        "/groups/poll/repeat/until",
        "refers to task 'after', which the group neither holds nor depends on",
    ) in messages
