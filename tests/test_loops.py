"""repeat loops through the real CLI: a task runs again until ``until`` holds over its
last output, each iteration recorded; past ``max_iterations`` it fails saying so. And
the dead letters a plain task leaves when it fails for good."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.store.journal import Journal

AGENT = '''\
"""Test agent: counts its runs in count.txt and prints the count and its parameters."""
import json, os, sys

params = json.load(sys.stdin)
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


def events(workspace: Path, instance: str) -> list[dict[str, Any]]:
    return Journal(workspace / "instances" / instance / "events.jsonl", utc_now).read_new()


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
