"""`workflow_cli validate`: every problem, each at its JSON pointer; exit 2; nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition


def _problems(cli, path: Path) -> list[dict[str, str]]:
    result = cli("validate", str(path), "--json")
    assert result.exit_code == 2, result
    problems: list[dict[str, str]] = result.json()["problems"]
    return problems


def _check(expression: str = "1") -> dict[str, Any]:
    return {"action": "condition_check", "parameters": {"expression": expression}}


def test_valid_definition_passes(cli, workspace):
    path = write_definition(workspace, {"a": _check(), "b": {**_check(), "dependencies": ["a"]}})
    result = cli("validate", str(path))
    assert result.exit_code == 0
    assert "valid" in result.stdout


def test_every_problem_reported_at_once_with_pointers(cli, workspace):
    (workspace / "workflow_cli.yaml").write_text("undeclared_agents: error\n")
    path = write_definition(
        workspace,
        {
            "a": {**_check(), "dependencies": ["ghost"]},
            "b": {"action": "teleport"},
            "c": {"action": "agent_task", "agent_id": "nobody"},
            "d": {**_check(), "conditions": ["steps.a.output >"]},
            "e": {**_check(), "timeout_seconds": "soon"},
        },
    )
    problems = {p["pointer"]: p["message"] for p in _problems(cli, path)}
    assert "unknown task 'ghost'" in problems["/tasks/a/dependencies/0"]
    assert "unknown action 'teleport'" in problems["/tasks/b/action"]
    assert "unknown agent 'nobody'" in problems["/tasks/c/agent_id"]
    assert "does not parse" in problems["/tasks/d/conditions/0"]
    assert "soon" in problems["/tasks/e/timeout_seconds"]
    assert not (workspace / "instances").exists()


def test_cycle_is_named(cli, workspace):
    path = write_definition(
        workspace,
        {
            "a": {**_check(), "dependencies": ["b"]},
            "b": {**_check(), "dependencies": ["a"]},
            "c": _check(),
        },
    )
    messages = [p["message"] for p in _problems(cli, path)]
    assert any(
        "dependency cycle: a → b → a" in m or "dependency cycle: b → a → b" in m for m in messages
    ), messages


def test_duplicate_task_ids(cli, workspace):
    path = workspace / "dup.json"
    path.write_text(
        '{"id": "x", "name": "x", "version": "1", "schema_version": "2.0.0",'
        ' "tasks": {"a": {"action": "condition_check", "parameters": {"expression": "1"}},'
        ' "a": {"action": "condition_check", "parameters": {"expression": "2"}}}}'
    )
    problems = _problems(cli, path)
    assert {"pointer": "/tasks/a", "message": "duplicate key 'a'"} in problems


@pytest.mark.parametrize("command", [["create"], ["run"], ["templates", "show"]])
def test_a_definition_with_a_duplicate_key_is_refused_not_read_last_wins(cli, workspace, command):
    path = workspace / "dup.json"
    path.write_text(
        '{"id": "x", "name": "x", "version": "1", "schema_version": "2.0.0",'
        ' "tasks": {"a": {"action": "agent_task", "agent_id": "echo", "agent_id": "other"}}}'
    )
    shown = cli(*command, str(path))
    assert shown.exit_code == 2
    assert "/tasks/a/agent_id: duplicate key 'agent_id'" in shown.stderr
    assert not any((workspace / "instances").glob("*"))  # nothing created


def test_duplicate_ids_in_yaml(cli, workspace):
    path = workspace / "dup.yaml"
    path.write_text(
        "id: x\nname: x\nversion: '1'\nschema_version: '2.0.0'\ntasks:\n"
        "  a: {action: condition_check, parameters: {expression: '1'}}\n"
        "  a: {action: condition_check, parameters: {expression: '2'}}\n"
    )
    assert {"pointer": "/tasks/a", "message": "duplicate key 'a'"} in _problems(cli, path)


def test_references_to_unknown_or_unrelated_tasks_and_params(cli, workspace):
    path = write_definition(
        workspace,
        {
            "a": _check(),
            "b": {
                "action": "condition_check",
                "parameters": {
                    "expression": "1",
                    "note": "{{ steps.nope.output }} {{ steps.a.output }} {{ params.missing }}",
                },
            },
        },
    )
    messages = [p["message"] for p in _problems(cli, path)]
    assert "refers to unknown task 'nope'" in messages
    assert "refers to task 'a', which 'b' does not depend on" in messages
    assert "refers to unknown parameter 'missing'" in messages


def test_template_syntax_error_in_parameters(cli, workspace):
    path = write_definition(
        workspace,
        {
            "a": {"action": "condition_check", "parameters": {"expression": "1", "x": "{{ 1 + }}"}},
        },
    )
    problems = _problems(cli, path)
    assert problems[0]["pointer"] == "/tasks/a/parameters/x"
    assert "does not parse" in problems[0]["message"]


def test_unreadable_and_malformed_files(cli, workspace):
    assert "no such file" in cli("validate", "missing.json").stderr
    bad = workspace / "bad.json"
    bad.write_text("{not json")
    result = cli("validate", str(bad))
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_builtin_templates_validate(cli):
    from workflow_cli.definition.templates import builtin_dir

    for path in sorted(builtin_dir().glob("*.json")):
        result = cli("validate", str(path))
        assert result.exit_code == 0, (path.name, result)


def test_bare_expressions_of_actions_are_checked_like_conditions(cli, workspace):
    """condition_check's expression is a bare expression: what it reads is checked too."""
    path = write_definition(
        workspace,
        {
            "a": _check(),
            "b": _check("steps.a.output > 1"),  # does not depend on a
            "c": _check("params.nothere"),
            "d": {**_check("steps.a.output >"), "dependencies": ["a"]},
            "e": {**_check("steps.a.output + params.known"), "dependencies": ["a"]},
        },
        params={"known": 1},
    )
    problems = {p["pointer"]: p["message"] for p in _problems(cli, path)}
    assert problems["/tasks/b/parameters/expression"] == (
        "refers to task 'a', which 'b' does not depend on"
    )
    assert problems["/tasks/c/parameters/expression"] == "refers to unknown parameter 'nothere'"
    assert "does not parse" in problems["/tasks/d/parameters/expression"]
    assert "/tasks/e/parameters/expression" not in problems


def test_many_references_to_one_task_cost_one_walk_of_the_graph(monkeypatch):
    """A long chain whose every task refers to its first: the tasks below the first are
    found once (one walk), not once per reference; a reference to a task not depended
    on is still reported, and the answers are those of a walk per reference."""
    from workflow_cli.definition import validation
    from workflow_cli.definition.graph import TaskGraph
    from workflow_cli.engine.actions import get_action

    size = 300
    tasks: dict[str, Any] = {
        f"t{i}": {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {
                "first": "{{ steps.t0.output }}",
                "before": f"{{{{ steps.t{i - 1}.output }}}}",
            },
            "dependencies": [f"t{i - 1}"],
        }
        for i in range(1, size)
    }
    tasks["t0"] = {"action": "agent_task", "agent_id": "echo"}
    tasks["side"] = {
        "action": "agent_task",
        "agent_id": "echo",
        "parameters": {"x": "{{ steps.t5.output }}"},
    }
    tasks["late"] = {
        "action": "agent_task",
        "agent_id": "echo",
        "parameters": {"x": "{{ steps.t5.output }}"},
        "dependencies": ["side"],
    }
    document = {
        "id": "chain",
        "name": "chain",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": tasks,
    }
    walks = {"depends_on": 0, "downstream": 0}
    for name in walks:
        real = getattr(TaskGraph, name)

        def counted(self, *args, _real=real, _name=name):
            walks[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(TaskGraph, name, counted)
    problems = validation.validate_definition(
        document, actions=get_action, agent_names=frozenset({"echo"}), plain_data=True
    )
    assert [(p.pointer, p.message) for p in problems] == [
        ("/tasks/side/parameters/x", "refers to task 't5', which 'side' does not depend on"),
        ("/tasks/late/parameters/x", "refers to task 't5', which 'late' does not depend on"),
    ]
    assert walks["downstream"] <= 2  # t0's and t5's dependents, found once each
    assert walks["depends_on"] <= 2  # each asked about the first time
