"""Definitions as the design documents write them, through the real CLI: the documents'
two example definitions, ``id`` and ``schema_version`` left out, tasks as a list,
``timeout`` for ``timeout_seconds``, ``parallel_group``, and a workflow's own timeout."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

SIMPLE_ANALYSIS = {
    "name": "Simple Analysis",
    "version": "2.0.0",
    "tasks": {
        "analyze": {
            "name": "Analyze Data",
            "agent_id": "analyst",
            "action": "agent_task",
            "parameters": {"description": "Perform data analysis", "estimated_hours": 2},
        }
    },
}

MULTI_AGENT = {
    "name": "Multi-Agent Processing",
    "version": "2.0.0",
    "tasks": {
        "preprocessing": {
            "name": "Preprocess Data",
            "agent_id": "data_agent",
            "action": "agent_task",
            "execution_mode": "sequential",
        },
        "analysis_1": {
            "name": "Analysis Path 1",
            "agent_id": "analyst_1",
            "action": "agent_task",
            "execution_mode": "parallel",
            "dependencies": ["preprocessing"],
        },
        "analysis_2": {
            "name": "Analysis Path 2",
            "agent_id": "analyst_2",
            "action": "agent_task",
            "execution_mode": "parallel",
            "dependencies": ["preprocessing"],
        },
        "synthesis": {
            "name": "Synthesize Results",
            "agent_id": "synthesizer",
            "action": "agent_task",
            "dependencies": ["analysis_1", "analysis_2"],
        },
    },
}

# Each agent answers with its name, what it was asked, and the instance and task it
# ran for (from the environment a command agent gets).
AGENT_SCRIPT = """
import json, os, sys
params = json.load(sys.stdin)
print(json.dumps({"agent": sys.argv[1], "task": os.environ["WORKFLOW_TASK"],
                  "instance": os.environ["WORKFLOW_INSTANCE"], "parameters": params}))
"""


def declare_agents(workspace: Path, *names: str, command: list[str] | None = None) -> None:
    (workspace / "doc_agent.py").write_text(AGENT_SCRIPT)
    entries = {
        name: {"command": command or [sys.executable, "doc_agent.py", name]} for name in names
    }
    (workspace / "agents.yaml").write_text(yaml.safe_dump({"agents": entries}))


def events_of(workspace: Path, instance: str) -> list[dict[str, Any]]:
    lines = (workspace / "instances" / instance / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def first_seq(events: list[dict[str, Any]], kind: str, task: str) -> int:
    return int(next(e["seq"] for e in events if e["type"] == kind and e.get("task") == task))


@pytest.mark.parametrize(
    ("document", "agents"),
    [
        (SIMPLE_ANALYSIS, ["analyst"]),
        (MULTI_AGENT, ["data_agent", "analyst_1", "analyst_2", "synthesizer"]),
    ],
    ids=["simple-analysis", "multi-agent-processing"],
)
def test_the_documents_example_definitions_validate_and_run(cli, workspace, document, agents):
    path = workspace / "example.json"
    path.write_text(json.dumps(document, indent=2))
    declare_agents(workspace, *agents)
    checked = cli("validate", str(path))
    assert checked.exit_code == 0, checked
    assert "notice" not in checked.stderr  # version 2.0.0 is the current schema
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    assert result.json()["state"] == "completed"
    instance = result.json()["id"]
    stored = json.loads((workspace / "instances" / instance / "definition.json").read_text())
    assert stored["id"] == document["name"].lower().replace(" ", "-")
    assert stored["schema_version"] == "2.0.0"
    tasks = cli("status", instance, "--json").json()["tasks"]
    for task_id, task in document["tasks"].items():
        output = tasks[task_id]["output"]
        assert (output["agent"], output["task"]) == (task["agent_id"], task_id)
        assert output["parameters"] == task.get("parameters", {})
    if document is MULTI_AGENT:
        events = events_of(workspace, instance)
        completed = first_seq(events, "task_completed", "preprocessing")
        assert first_seq(events, "task_started", "analysis_1") > completed
        assert first_seq(events, "task_started", "analysis_2") > completed
        for branch in ("analysis_1", "analysis_2"):
            done = first_seq(events, "task_completed", branch)
            assert first_seq(events, "task_started", "synthesis") > done


def test_the_documents_examples_name_their_missing_agents(cli, workspace):
    path = workspace / "example.json"
    path.write_text(json.dumps(MULTI_AGENT))
    mailbox = cli("validate", str(path))  # undeclared agents are mailbox agents
    assert mailbox.exit_code == 0, mailbox
    assert "notice: agent 'synthesizer' is not declared" in mailbox.stderr
    (workspace / "workflow_cli.yaml").write_text("undeclared_agents: error\n")
    result = cli("validate", str(path))
    assert result.exit_code == 2
    for task in ("preprocessing", "analysis_1", "analysis_2", "synthesis"):
        assert f"/tasks/{task}/agent_id: unknown agent" in result.stderr


def test_tasks_as_a_list_with_ids_and_timeout_as_an_alias(cli, workspace):
    path = workspace / "listed.yaml"
    path.write_text(
        "name: Listed tasks\n"
        "version: '4.1'\n"
        "tasks:\n"
        "  - id: first\n"
        "    action: agent_task\n"
        "    agent_id: echo\n"
        "    timeout: 2m\n"
        "    parameters: {n: 1}\n"
        "  - id: second\n"
        "    action: agent_task\n"
        "    agent_id: echo\n"
        "    timeout: 30\n"
        "    dependencies: [first]\n"
        "    parameters: {got: '{{ steps.first.output.n }}'}\n"
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    instance = result.json()["id"]
    assert instance.startswith("listed-tasks-")
    stored = json.loads((workspace / "instances" / instance / "definition.json").read_text())
    assert list(stored["tasks"]) == ["first", "second"]
    assert stored["tasks"]["first"]["timeout_seconds"] == 120
    assert stored["tasks"]["second"]["timeout_seconds"] == 30
    assert "timeout" not in stored["tasks"]["first"]
    tasks = cli("status", instance, "--json").json()["tasks"]
    assert tasks["second"]["output"] == {"got": 1}


def test_problems_with_the_documents_way_of_writing_are_all_reported(cli, workspace):
    path = workspace / "bad.json"
    path.write_text(
        json.dumps(
            {
                "name": "Bad",
                "timeout": "whenever",
                "tasks": [
                    {"action": "agent_task", "agent_id": "echo"},
                    {"id": "a", "action": "agent_task", "agent_id": "echo", "timeout": -1},
                    {"id": "a", "action": "agent_task", "agent_id": "echo"},
                ],
            }
        )
    )
    result = cli("validate", str(path), "--json")
    assert result.exit_code == 2
    problems = {p["pointer"]: p["message"] for p in result.json()["problems"]}
    assert "must be seconds above 0" in problems["/timeout"]
    assert "needs an 'id'" in problems["/tasks/0/id"]
    assert "duplicate task id 'a'" in problems["/tasks/2/id"]
    assert "must be seconds above 0" in problems["/tasks/a/timeout"]


def test_a_definition_without_a_name_or_id_is_refused(cli, workspace):
    path = workspace / "anonymous.json"
    path.write_text(json.dumps({"tasks": {"a": {"action": "agent_task", "agent_id": "echo"}}}))
    result = cli("validate", str(path))
    assert result.exit_code == 2
    assert "'id' is a required property" in result.stderr
    assert "'name' is a required property" in result.stderr


def test_a_parallel_group_starts_together_and_is_a_dependency_by_name(cli, workspace):
    path = workspace / "grouped.json"
    path.write_text(
        json.dumps(
            {
                "name": "Grouped",
                "version": "2.0.0",
                "tasks": {
                    "p1": {"action": "agent_task", "agent_id": "echo", "parameters": {"v": 1}},
                    "p2": {"action": "agent_task", "agent_id": "echo", "parameters": {"v": 2}},
                    "a": {
                        "action": "agent_task",
                        "agent_id": "echo",
                        "dependencies": ["p1"],
                        "parallel_group": "fan",
                        "priority": 10,
                    },
                    "b": {
                        "action": "agent_task",
                        "agent_id": "echo",
                        "dependencies": ["p2"],
                        "parallel_group": "fan",
                    },
                    "report": {
                        "action": "agent_task",
                        "agent_id": "echo",
                        "dependencies": ["fan"],
                        "parameters": {"sum": "{{ steps.p1.output.v + steps.p2.output.v }}"},
                    },
                },
            }
        )
    )
    result = cli("run", str(path), "--max-workers", "1", "--json")
    assert result.exit_code == 0, result
    instance = result.json()["id"]
    events = events_of(workspace, instance)
    p2_done = first_seq(events, "task_completed", "p2")
    # One worker and priority 10: without the group, a would start before p2.
    assert first_seq(events, "task_started", "a") > p2_done
    for member in ("a", "b"):
        assert first_seq(events, "task_started", "report") > first_seq(
            events, "task_completed", member
        )
    assert cli("status", instance, "--json").json()["tasks"]["report"]["output"] == {"sum": 3}
    graph = cli("graph", str(path), "--format", "json")
    assert graph.exit_code == 0, graph
    assert "fan" not in graph.stdout.replace('"parallel_group"', "")


def test_group_problems_are_named(cli, workspace):
    path = workspace / "groups.json"
    path.write_text(
        json.dumps(
            {
                "name": "Groups",
                "tasks": {
                    "a": {"action": "agent_task", "agent_id": "echo", "parallel_group": "b"},
                    "b": {"action": "agent_task", "agent_id": "echo"},
                    "c": {
                        "action": "agent_task",
                        "agent_id": "echo",
                        "parallel_group": "g",
                        "dependencies": ["g"],
                    },
                    "d": {"action": "agent_task", "agent_id": "echo", "dependencies": ["nope"]},
                },
            }
        )
    )
    result = cli("validate", str(path), "--json")
    assert result.exit_code == 2
    problems = {p["pointer"]: p["message"] for p in result.json()["problems"]}
    assert "has the name of a task" in problems["/tasks/a/parallel_group"]
    assert "its own group 'g'" in problems["/tasks/c/dependencies/0"]
    assert "unknown task 'nope'" in problems["/tasks/d/dependencies/0"]


def test_a_run_longer_than_the_workflows_timeout_fails_with_that_reason(cli, workspace):
    declare_agents(
        workspace, "sleeper", command=[sys.executable, "-c", "import time; time.sleep(120)"]
    )
    path = workspace / "slow.yaml"
    path.write_text(
        "name: Slow\n"
        "version: '2.0.0'\n"
        "timeout_seconds: 1\n"
        "tasks:\n"
        "  slow: {action: agent_task, agent_id: sleeper}\n"
        "  after: {action: agent_task, agent_id: echo, dependencies: [slow]}\n"
    )
    began = time.monotonic()
    result = cli("run", str(path), "--json")
    assert time.monotonic() - began < 100  # an upper bound: the sleeper was ended
    assert result.exit_code == 1, result
    assert result.json()["state"] == "failed"
    assert "timeout (1 s)" in result.json()["reason"]
    instance = result.json()["id"]
    status = cli("status", instance, "--json").json()
    assert {t["state"] for t in status["tasks"].values()} == {"cancelled"}
    assert status["reason"] == result.json()["reason"]


def test_the_workflow_timeout_may_be_written_as_a_duration(cli, workspace):
    path = workspace / "quick.json"
    document = {
        "name": "Quick",
        "version": "1",
        "timeout": "10m",
        "tasks": {"a": {"action": "agent_task", "agent_id": "echo"}},
    }
    path.write_text(json.dumps(document))
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    stored = json.loads(
        (workspace / "instances" / result.json()["id"] / "definition.json").read_text()
    )
    assert stored["timeout_seconds"] == 600


def test_the_multi_agent_example_runs_through_mailbox_agents_to_completion(cli, workspace):
    path = workspace / "example.json"
    path.write_text(json.dumps(MULTI_AGENT))
    first = cli("run", str(path), "--json")
    assert first.exit_code == 3, first
    instance = first.json()["id"]
    assert list(first.json()["waiting"]) == ["preprocessing"]
    rounds = [
        [("preprocessing", "data_agent")],
        [("analysis_1", "analyst_1"), ("analysis_2", "analyst_2")],
        [("synthesis", "synthesizer")],
    ]
    for number, deliveries in enumerate(rounds):
        for task, agent in deliveries:
            assert (workspace / "agents" / agent / "inbox" / f"{instance}.{task}.json").is_file()
            output = json.dumps({"by": agent, "round": number})
            delivered = cli("deliver", instance, task, "--as", agent, "--output", output)
            assert delivered.exit_code == 0, delivered
        resumed = cli("resume", instance, "--json")
        expected = 0 if number == len(rounds) - 1 else 3
        assert resumed.exit_code == expected, resumed
    tasks = cli("status", instance, "--json").json()["tasks"]
    assert tasks["synthesis"]["output"] == {"by": "synthesizer", "round": 2}
    assert {t["state"] for t in tasks.values()} == {"completed"}
