"""Templates, create and parameters, ids, status and list, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import write_definition

BUILTINS = {"approval_chain", "parallel_processing", "sequential_pipeline", "conditional_workflow"}


def test_help_lists_commands(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("create", "run", "start", "resume", "status", "list", "approve", "templates"):
        assert command in result.stdout


def test_templates_list_and_show(cli):
    listed = cli("templates", "--json")
    assert listed.exit_code == 0
    names = {t["name"] for t in listed.json()}
    assert names >= BUILTINS
    shown = cli("templates", "show", "sequential_pipeline", "--json").json()
    assert shown["parameters"]["type"] == "object"
    assert shown["tasks"]
    text = cli("templates")
    assert "sequential_pipeline" in text.stdout


def test_unknown_template_suggests(cli):
    result = cli("create", "sequential_pipelin")
    assert result.exit_code == 2
    assert "did you mean 'sequential_pipeline'" in result.stderr


def test_workspace_template_overrides_and_adds(cli, workspace):
    (workspace / "templates").mkdir()
    template = {
        "name": "mine",
        "description": "mine",
        "parameters": {"n": {"type": "integer", "default": 2}},
        "workflow": {
            "id": "mine",
            "name": "mine",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {"a": {"action": "condition_check", "parameters": {"expression": "params.n"}}},
        },
    }
    (workspace / "templates" / "mine.json").write_text(json.dumps(template))
    (workspace / "templates" / "approval_chain.json").write_text(
        json.dumps({**template, "name": "approval_chain", "description": "overridden"})
    )
    listed = {t["name"]: t for t in cli("templates", "--json").json()}
    assert "mine" in listed
    assert listed["approval_chain"]["description"] == "overridden"
    result = cli("run", "mine", "--param", "n=5", "--json")
    assert result.exit_code == 0, result
    status = cli("status", result.json()["id"], "--json").json()
    assert status["tasks"]["a"]["output"] == 5


def _typed_template(workspace):
    params = {
        "count": {"type": "integer", "default": 1},
        "ratio": {"type": "number", "default": 0.5},
        "flag": {"type": "boolean", "default": False},
        "items": {"type": "array", "default": []},
        "opts": {"type": "object", "default": {}},
        "mode": {"type": "string", "default": "a", "enum": ["a", "b"]},
        "title": {"type": "string", "required": True},
    }
    expression = (
        "[params.count, params.ratio, params.flag, params.items, params.opts, params.title]"
    )
    template = {
        "name": "typed",
        "description": "typed",
        "parameters": params,
        "workflow": {
            "id": "typed",
            "name": "typed",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {
                "a": {"action": "condition_check", "parameters": {"expression": expression}},
                "b": {
                    "action": "condition_check",
                    "parameters": {"expression": "1", "title": "{{ params.title }}"},
                },
            },
        },
    }
    (workspace / "templates").mkdir(exist_ok=True)
    (workspace / "templates" / "typed.json").write_text(json.dumps(template))


def test_params_are_coerced_to_declared_types(cli, workspace):
    _typed_template(workspace)
    result = cli(
        "run",
        "typed",
        "-p",
        "count=3",
        "-p",
        "ratio=2.5",
        "-p",
        "flag=yes",
        "-p",
        'items=[1,"x"]',
        "-p",
        'opts={"k":1}',
        "-p",
        "title=hello",
        "--json",
    )
    assert result.exit_code == 0, result
    output = cli("status", result.json()["id"], "--json").json()["tasks"]["a"]["output"]
    assert output == [3, 2.5, True, [1, "x"], {"k": 1}, "hello"]


def test_param_errors_name_the_parameter_and_write_nothing(cli, workspace):
    _typed_template(workspace)
    cases = [
        (["-p", "title=x", "-p", "count=many"], "parameter 'count': expects an integer"),
        # Digits as JSON writes them, not the other spellings Python's int() and float()
        # take (a separator, other scripts' digits), nor a number too long to convert.
        (["-p", "title=x", "-p", "count=1_000"], "parameter 'count': expects an integer"),
        (["-p", "title=x", "-p", "count=\u0663"], "parameter 'count': expects an integer"),
        (["-p", "title=x", "-p", "count=" + "9" * 5000], "parameter 'count': expects an"),
        (["-p", "title=x", "-p", "ratio=2_5.0"], "parameter 'ratio': expects a number"),
        (["-p", "title=x", "-p", "ratio=\u0662.5"], "parameter 'ratio': expects a number"),
        (["-p", "title=x", "-p", "flag=maybe"], "parameter 'flag': expects true or false"),
        (["-p", "title=x", "-p", "items={}"], "parameter 'items': expects array"),
        (["-p", "title=x", "-p", "mode=c"], "parameter 'mode': must be one of"),
        (["-p", "title=x", "-p", "cont=1"], "did you mean 'count'"),
        ([], "parameter 'title': is required"),
        (["-p", "title"], "expected key=value"),
    ]
    for args, message in cases:
        result = cli("create", "typed", *args)
        assert result.exit_code == 2, (args, result)
        assert message in result.stderr, (args, result.stderr)
    assert not (workspace / "instances").exists() or not os.listdir(workspace / "instances")


def test_param_values_are_data_not_template_source(cli, workspace):
    _typed_template(workspace)
    result = cli("run", "typed", "-p", "title={{7*7}}", "--json")
    assert result.exit_code == 0
    instance = result.json()["id"]
    status = cli("status", instance, "--json").json()
    assert status["tasks"]["a"]["output"][-1] == "{{7*7}}"
    assert status["params"]["title"] == "{{7*7}}"


def test_create_prints_id_and_status_shows_created(cli):
    result = cli("create", "sequential_pipeline", "--json")
    assert result.exit_code == 0
    instance = result.json()["id"]
    assert instance.startswith("sequential_pipeline-")
    status = cli("status", instance[:-2], "--json").json()  # a unique prefix works
    assert status["state"] == "created"
    assert all(t["state"] == "pending" for t in status["tasks"].values())
    listed = cli("list", "--json", "--state", "created").json()
    assert [row["id"] for row in listed] == [instance]
    assert cli("list", "--json", "--state", "completed").json() == []


def test_unknown_or_unsafe_ids(cli):
    cli("create", "sequential_pipeline")
    cli("create", "sequential_pipeline")
    assert "no instance 'nothing'" in cli("status", "nothing").stderr
    for bad in ("../etc", "a/b", ".."):
        result = cli("status", bad)
        assert result.exit_code == 2
        assert "not an instance id" in result.stderr
    ambiguous = cli("status", "sequential")
    assert ambiguous.exit_code == 2
    assert "names 2 instances" in ambiguous.stderr
    assert cli("list", "--state", "bogus").exit_code == 2


def test_resume_of_created_and_start_of_completed_are_refused(cli, workspace):
    path = write_definition(
        workspace, {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    instance = cli("create", str(path), "--json").json()["id"]
    assert "has not started" in cli("resume", instance).stderr
    assert cli("start", instance).exit_code == 0
    again = cli("start", instance)
    assert again.exit_code == 2
    assert "is completed; there is nothing to run" in again.stderr


def test_module_entry_point_and_missing_workspace():
    result = subprocess.run(
        [sys.executable, "-m", "workflow_cli", "--home", "/nonexistent/x", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "workspace folder does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_numbers_stay_exact_and_json_stays_standard(cli, workspace):
    _typed_template(workspace)
    result = cli("run", "typed", "-p", "title=x", "-p", "ratio=12345678901234567890", "--json")
    assert result.exit_code == 0, result
    output = cli("status", result.json()["id"], "--json").json()["tasks"]["a"]["output"]
    assert output[1] == 12345678901234567890
    for bad in ("items=[NaN]", "items=[Infinity]", "ratio=nan", "ratio=inf"):
        refused = cli("create", "typed", "-p", "title=x", "-p", bad)
        assert refused.exit_code == 2, (bad, refused)
