"""The design documents' four ``create`` commands, verbatim, and what they rest on:
agents chosen by parameters (resolved and checked at create), every parameter problem
reported at once, and who asked for an instance (``create --as``)."""

from __future__ import annotations

import csv
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from workflow_cli.definition.templates import builtin_dir

DOCUMENTED = {
    "approval_chain": [
        "--param",
        "level1_approver=alice",
        "--param",
        "level2_approver=bob",
        "--param",
        "request_title=Budget Approval",
    ],
    "parallel_processing": [
        "--param",
        "worker_agent_1=CA",
        "--param",
        "worker_agent_2=CB",
        "--param",
        "worker_agent_3=CC",
    ],
    "sequential_pipeline": [
        "--param",
        "extraction_agent=data_agent",
        "--param",
        "transformation_agent=process_agent",
    ],
    "conditional_workflow": [
        "--param",
        "assessment_agent=review_agent",
        "--param",
        "priority_agent=urgent_agent",
    ],
}

# The agents the documents name, as command agents of the workspace: a small program
# that does each one's job on the records it is given.
AGENT_SCRIPT = """
import csv, json, sys

name = sys.argv[1]
params = json.load(sys.stdin)
if name == "data_agent":  # extraction: a CSV file of the workspace, numbers as numbers
    with open(params["path"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["quantity"] = int(row["quantity"]) if row["quantity"].strip() else None
        row["unit_price"] = float(row["unit_price"]) if row["unit_price"].strip() else None
    print(json.dumps({"records": rows, "count": len(rows), "by": name}))
elif name == "process_agent":  # transformation: keep rows with a quantity, add totals
    rows = [dict(r, total=round(r["quantity"] * r["unit_price"], 2)) for r in params["records"]
            if r["quantity"] is not None and r["unit_price"] is not None and r["quantity"] >= 1]
    print(json.dumps({"records": rows, "count": len(rows), "by": name}))
elif name == "review_agent":  # assessment: the share of rows with every field filled
    rows = params["records"]
    fields = params.get("required_fields") or []
    valid = [r for r in rows if all(str(r.get(f) or "").strip() for f in fields)]
    print(json.dumps({"score": round(100 * len(valid) / len(rows)), "valid": len(valid),
                      "invalid": len(rows) - len(valid), "reasons": {}, "by": name}))
else:  # urgent_agent and the workers: count what they were given
    print(json.dumps({"by": name, "count": len(params.get("records") or [])}))
"""

AGENTS = ("CA", "CB", "CC", "data_agent", "process_agent", "review_agent", "urgent_agent")


@pytest.fixture
def documented_agents(workspace: Path) -> Path:
    script = workspace / "doc_agent.py"
    script.write_text(AGENT_SCRIPT)
    lines = ["agents:"]
    for name in AGENTS:
        lines += [
            f"  {name}:",
            f"    command: [{json.dumps(sys.executable)}, doc_agent.py, {name}]",
        ]
    (workspace / "agents.yaml").write_text("\n".join(lines) + "\n")
    return script


def _definition(workspace: Path, instance: str) -> Any:
    return json.loads((workspace / "instances" / instance / "definition.json").read_text())


def _status(cli, instance: str) -> Any:
    result = cli("status", instance, "--json")
    assert result.exit_code == 0, result
    return result.json()


@pytest.mark.parametrize("template", sorted(DOCUMENTED))
def test_the_documented_create_command_works_verbatim(cli, workspace, documented_agents, template):
    result = cli("create", template, *DOCUMENTED[template])
    assert result.exit_code == 0, result
    instance = result.stdout.strip()
    assert _status(cli, instance)["state"] == "created"
    agents = {
        task_id: task.get("agent_id")
        for task_id, task in _definition(workspace, instance)["tasks"].items()
    }
    assert not any("{{" in str(agent) for agent in agents.values())  # resolved at create
    if template == "parallel_processing":
        assert [agents[f"process_{n}"] for n in range(4)] == ["CA", "CB", "CC", "CA"]
    if template == "sequential_pipeline":
        assert (agents["extract"], agents["transform"]) == ("data_agent", "process_agent")
    if template == "conditional_workflow":
        assert (agents["assess"], agents["remediation_path"]) == ("review_agent", "urgent_agent")


def test_every_template_runs_with_no_set_up(cli):
    for template in sorted(DOCUMENTED):
        definition = json.loads((builtin_dir() / f"{template}.json").read_text())
        chosen = [
            name for name, spec in definition["parameters"].items() if name.endswith("_agent")
        ]
        assert all(definition["parameters"][n]["default"] for n in chosen)
        if template != "approval_chain":
            result = cli("run", template, "--json")
            assert result.exit_code == 0, result
            assert result.json()["state"] == "completed"


def test_the_documented_approval_chain_waits_for_alice_then_bob(cli, workspace):
    created = cli("create", "approval_chain", *DOCUMENTED["approval_chain"])
    assert created.exit_code == 0, created
    instance = created.stdout.strip()
    first = cli("start", instance, "--json")
    assert first.exit_code == 3, first
    assert first.json()["waiting"]["level1_approval"]["approvers"] == ["alice"]
    assert cli("approve", instance, "--as", "bob").exit_code == 2  # not a level-1 approver
    assert cli("approve", instance, "--as", "alice").exit_code == 0
    second = cli("resume", instance, "--json")
    assert second.exit_code == 3
    assert second.json()["waiting"]["level2_approval"]["approvers"] == ["bob"]
    assert cli("approve", instance, "level2_approval", "--as", "bob").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    record = json.loads((workspace / "output" / instance / "approval.json").read_text())
    assert record["request"]["title"] == "Budget Approval"
    assert record["status"] == "approved"
    assert [a["by"] for a in record["approvals"]] == ["alice", "bob"]


def test_the_approver_lists_still_serve(cli):
    result = cli("run", "approval_chain", "-p", 'level1_approvers=["kim", "lee"]', "--json")
    assert result.exit_code == 3, result
    assert result.json()["waiting"]["level1_approval"]["approvers"] == ["kim", "lee"]


def test_the_documented_pipeline_runs_through_the_named_agents(cli, workspace, documented_agents):
    sample = builtin_dir().parent / "data" / "sample_sales.csv"
    (workspace / "sales.csv").write_text(sample.read_text())
    created = cli(
        "create", "sequential_pipeline", *DOCUMENTED["sequential_pipeline"], "-p", "input=sales.csv"
    )
    assert created.exit_code == 0, created
    instance = created.stdout.strip()
    run = cli("start", instance, "--json")
    assert run.exit_code == 0, run
    tasks = _status(cli, instance)["tasks"]
    assert tasks["extract"]["output"]["by"] == "data_agent"
    assert tasks["transform"]["output"]["by"] == "process_agent"
    with (workspace / "output" / instance / "clean_sales.csv").open(newline="") as handle:
        written = list(csv.DictReader(handle))
    with sample.open(newline="") as handle:
        expected = [
            r
            for r in csv.DictReader(handle)
            if r["quantity"] and r["unit_price"] and int(r["quantity"]) >= 1
        ]
    assert [r["order_id"] for r in written] == [r["order_id"] for r in expected]
    assert all("total" in r for r in written)


def test_the_documented_routing_reaches_the_priority_agent(cli, workspace, documented_agents):
    args = [*DOCUMENTED["conditional_workflow"], "-p", "threshold=100"]
    created = cli("create", "conditional_workflow", *args)
    assert created.exit_code == 0, created
    instance = created.stdout.strip()
    run = cli("start", instance, "--json")
    assert run.exit_code == 0, run
    tasks = _status(cli, instance)["tasks"]
    assert tasks["assess"]["output"]["by"] == "review_agent"
    assert tasks["assess"]["output"]["score"] < 100
    assert tasks["remediation_path"]["output"]["by"] == "urgent_agent"
    assert tasks["remediation_path"]["output"]["count"] > 0
    assert tasks["high_quality_path"]["state"] == "skipped"


@pytest.mark.parametrize("template", sorted(DOCUMENTED))
def test_the_documented_create_command_works_verbatim_with_no_set_up(cli, workspace, template):
    result = cli("create", template, *DOCUMENTED[template])
    assert result.exit_code == 0, result
    instance = result.stdout.strip()
    agents = {t.get("agent_id") for t in _definition(workspace, instance)["tasks"].values()}
    for name in {"CA", "CB", "CC", "data_agent", "process_agent", "review_agent"} & agents:
        assert f"notice: agent '{name}' is not declared" in result.stderr  # a mailbox agent
        assert f"agents/{name}/inbox/" in result.stderr


def test_an_agent_no_one_declared_is_refused_naming_its_parameter(cli, workspace):
    (workspace / "workflow_cli.yaml").write_text("undeclared_agents: error\n")
    result = cli("create", "parallel_processing", *DOCUMENTED["parallel_processing"])
    assert result.exit_code == 2, result
    for param, agent in (
        ("worker_agent_1", "CA"),
        ("worker_agent_2", "CB"),
        ("worker_agent_3", "CC"),
    ):
        assert f"parameter '{param}': names agent '{agent}'" in result.stderr
    assert not (workspace / "instances").exists() or not any((workspace / "instances").iterdir())


@pytest.mark.parametrize("command", ["create", "run"])
def test_every_parameter_problem_is_reported_at_once(cli, workspace, command):
    result = cli(
        command,
        "sequential_pipeline",
        "-p",
        "min_quantity=many",
        "-p",
        "output_format=xml",
        "-p",
        "extraction_agent=no body",
        "-p",
        "colour=blue",
        "-p",
        "broken",
    )
    assert result.exit_code == 2, result
    assert "5 parameter problems" in result.stderr
    for expected in (
        "parameter 'min_quantity': expects an integer",
        "parameter 'output_format': must be one of",
        "parameter 'extraction_agent': names agent 'no body', which is not declared and cannot",
        "parameter 'colour': unknown for template 'sequential_pipeline'",
        "parameter 'broken': expected key=value",
    ):
        assert expected in result.stderr
    assert not (workspace / "instances").exists() or not any((workspace / "instances").iterdir())


def test_every_missing_parameter_is_reported_at_once(cli, workspace):
    template: dict[str, Any] = {
        "name": "needs_two",
        "parameters": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "workflow": {
            "id": "needs_two",
            "name": "needs two",
            "version": "1",
            "tasks": {
                "t": {
                    "action": "agent_task",
                    "agent_id": "echo",
                    "parameters": {"a": "{{ params.a }}", "b": "{{ params.b }}"},
                }
            },
        },
    }
    (workspace / "templates").mkdir()
    (workspace / "templates" / "needs_two.json").write_text(json.dumps(template))
    result = cli("create", "needs_two")
    assert result.exit_code == 2
    assert "parameter 'a': is required" in result.stderr
    assert "parameter 'b': is required" in result.stderr
    one = cli("create", "needs_two", "-p", "a=x", "-p", "b=two")
    assert one.exit_code == 2
    assert "parameter 'b': expects an integer" in one.stderr
    assert "is required" not in one.stderr  # b was given, if wrongly


def test_an_agent_chosen_by_a_parameter_is_checked_where_it_is_written(cli, workspace):
    template: dict[str, Any] = {
        "name": "chooser",
        "parameters": {"worker": {"type": "string", "default": "echo"}},
        "workflow": {
            "name": "chooser",
            "version": "2.0.0",
            "tasks": {
                "a": {"action": "agent_task", "agent_id": "{{ params.worker }}"},
                "b": {
                    "action": "agent_task",
                    "agent_id": "{{ params.other }}",
                    "dependencies": ["a"],
                },
                "c": {
                    "action": "agent_task",
                    "agent_id": "{{ steps.a.output }}",
                    "dependencies": ["a"],
                },
            },
        },
    }
    path = workspace / "chooser.json"
    path.write_text(json.dumps(template))
    result = cli("validate", str(path))
    assert result.exit_code == 2
    assert "/workflow/tasks/b/agent_id: refers to unknown parameter 'other'" in result.stderr
    assert "/workflow/tasks/c/agent_id: an agent may be chosen by parameters only" in result.stderr
    assert "/workflow/tasks/a" not in result.stderr

    del template["workflow"]["tasks"]["b"], template["workflow"]["tasks"]["c"]
    path.write_text(json.dumps(template))
    assert cli("validate", str(path)).exit_code == 0
    empty = cli("create", str(path), "-p", "worker=")
    assert empty.exit_code == 2
    assert "parameter 'worker': must name an agent" in empty.stderr
    ran = cli("run", str(path), "-p", 'worker={{ "echo" }}', "--json")
    assert ran.exit_code == 2  # a value is data, never a template: no such agent
    assert "names agent '{{ \"echo\" }}'" in ran.stderr


def test_create_records_who_asked(cli, workspace):
    named = cli("create", "sequential_pipeline", "--as", "carol")
    assert named.exit_code == 0, named
    instance = named.stdout.strip()
    assert _status(cli, instance)["requester"] == "carol"
    first = (workspace / "instances" / instance / "events.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["requester"] == "carol"
    assert "requested by carol" in cli("status", instance).stdout

    default = cli("run", "sequential_pipeline", "--json")
    assert _status(cli, default.json()["id"])["requester"] == getpass.getuser()
    assert cli("create", "sequential_pipeline", "--as", " ").exit_code == 2


def test_expressions_see_who_asked(cli, workspace):
    path = workspace / "who.json"
    task = {
        "action": "agent_task",
        "agent_id": "echo",
        "parameters": {"by": "{{ instance.requester }}"},
    }
    path.write_text(json.dumps({"name": "Who", "version": "1", "tasks": {"t": task}}))
    result = cli("run", str(path), "--as", "zed", "--json")
    assert result.exit_code == 0, result
    assert _status(cli, result.json()["id"])["tasks"]["t"]["output"] == {"by": "zed"}
