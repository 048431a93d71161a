"""Each built-in template runs end to end through the real CLI, doing real work."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import start_runner, write_definition


def _status(cli, instance):
    return cli("status", instance, "--json").json()


def test_sequential_pipeline(cli_process, workspace):
    result = cli_process("run", "sequential_pipeline", "--json")
    assert result.returncode == 0, result.stderr
    instance = result.stdout and json.loads(result.stdout)["id"]
    rows = list(csv.DictReader((workspace / "output" / instance / "clean_sales.csv").open()))
    assert len(rows) == 46
    assert all(float(row["quantity"]) >= 1 for row in rows)


def test_sequential_pipeline_on_a_workspace_file(cli, workspace):
    (workspace / "in.csv").write_text(
        "order_id,region,product,quantity,unit_price,date\n"
        "1,north,pen,2,1.5,2026-01-01\n"
        "2,south,ink,0,3.0,2026-01-02\n"
    )
    result = cli(
        "run", "sequential_pipeline", "-p", "input=in.csv", "-p", "output_format=json", "--json"
    )
    assert result.exit_code == 0, result
    instance = result.json()["id"]
    records = json.loads((workspace / "output" / instance / "clean_sales.json").read_text())
    assert [r["order_id"] for r in records] == [1]


def test_parallel_processing(cli, workspace):
    result = cli("run", "parallel_processing", "--json")
    assert result.exit_code == 0, result
    instance = result.json()["id"]
    tasks = _status(cli, instance)["tasks"]
    assert all(tasks[f"process_{i}"]["state"] == "completed" for i in range(4))
    report = json.loads((workspace / "output" / instance / "sales_report.json").read_text())
    assert report
    started = {}
    for line in (workspace / "instances" / instance / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "task_started":
            started[event["task"]] = event["seq"]
    # the four partitions were all started before any of them was checked
    assert max(started[f"process_{i}"] for i in range(4)) < min(
        started[f"check_{i}"] for i in range(4)
    )


def test_conditional_workflow_takes_one_branch(cli):
    high = cli("run", "conditional_workflow", "--json")
    assert high.exit_code == 0, high
    tasks = _status(cli, high.json()["id"])["tasks"]
    assert tasks["high_quality_path"]["state"] == "completed"
    assert tasks["remediation_path"]["state"] == "skipped"
    assert tasks["join"]["state"] == "completed"
    low = cli("run", "conditional_workflow", "-p", "threshold=99", "--json")
    assert low.exit_code == 0, low
    tasks = _status(cli, low.json()["id"])["tasks"]
    assert tasks["high_quality_path"]["state"] == "skipped"
    assert tasks["remediation_path"]["state"] == "completed"
    assert tasks["join"]["state"] == "completed"


def test_approval_chain(cli, workspace):
    first = cli("run", "approval_chain", "--json")
    assert first.exit_code == 3, first
    instance = first.json()["id"]
    assert list(first.json()["waiting"]) == ["level1_approval"]
    assert cli("approve", instance, "--as", "director").exit_code == 2  # not a level-1 approver
    assert cli("approve", instance, "--as", "team_lead", "--comment", "ok").exit_code == 0
    second = cli("resume", instance, "--json")
    assert second.exit_code == 3
    assert list(second.json()["waiting"]) == ["level2_approval"]
    assert cli("approve", instance, "level2_approval", "--as", "director").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    record = json.loads((workspace / "output" / instance / "approval.json").read_text())
    assert "team_lead" in json.dumps(record) and "director" in json.dumps(record)
    approvals = _status(cli, instance)["approvals"]
    assert [(a["task"], a["by"]) for a in approvals] == [
        ("level1_approval", "team_lead"),
        ("level2_approval", "director"),
    ]


def test_ctrl_c_pauses_and_resume_finishes(workspace):
    script = workspace / "wait.py"
    script.write_text(
        "import json, pathlib, sys, time\n"
        "pathlib.Path('started').write_text('x')\n"
        "deadline = time.monotonic() + 20\n"
        "while not pathlib.Path('go').exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('{}')\n"
    )
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"wait": {"command": [sys.executable, str(script)]}}})
    )
    path = write_definition(
        workspace,
        {
            "a": {"action": "agent_task", "agent_id": "wait"},
            "b": {
                "action": "condition_check",
                "parameters": {"expression": "1"},
                "dependencies": ["a"],
            },
        },
    )
    instance, runner = start_runner(workspace, path)
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    try:
        deadline = time.monotonic() + 20
        while not (workspace / "started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        runner.send_signal(signal.SIGINT)  # like stop: the task in flight finishes
        (workspace / "go").write_text("x")
        runner.communicate(timeout=30)
    finally:
        runner.kill()
    assert runner.returncode == 130
    status = subprocess.run(
        [sys.executable, "-m", "workflow_cli", "status", instance, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(status.stdout)["state"] == "paused"
    resumed = subprocess.run(
        [sys.executable, "-m", "workflow_cli", "resume", instance],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.parametrize(
    "template",
    ["sequential_pipeline", "parallel_processing", "conditional_workflow", "approval_chain"],
)
def test_a_plain_run_of_every_template_can_be_rolled_back_and_resumed(cli, template):
    """Checkpoints are written without asking: one when the run starts, milestones in
    the built-in templates, automatic ones; rollback works right after a plain run."""
    run = cli("run", template, "--json")
    instance = run.json()["id"]
    if template == "approval_chain":
        assert run.exit_code == 3
        assert cli("approve", instance, "--as", "team_lead").exit_code == 0
        assert cli("resume", instance).exit_code == 3
        assert cli("approve", instance, "--as", "director").exit_code == 0
        assert cli("resume", instance).exit_code == 0
    else:
        assert run.exit_code == 0, run
    kinds = [c["kind"] for c in cli("checkpoints", instance, "--json").json()]
    assert "start" in kinds and "milestone" in kinds
    rolled = cli("rollback", instance, "--yes", "--json")
    assert rolled.exit_code == 0, rolled
    status = _status(cli, instance)
    assert status["state"] == "paused"
    assert any(t["state"] == "pending" for t in status["tasks"].values())
    resumed = cli("resume", instance)
    if template == "approval_chain":  # rolled back to before an approval: asked again
        while resumed.exit_code == 3:
            waiting = [
                t for t, s in _status(cli, instance)["tasks"].items() if s["state"] == "waiting"
            ]
            approver = "team_lead" if waiting == ["level1_approval"] else "director"
            assert cli("approve", instance, "--as", approver).exit_code == 0
            resumed = cli("resume", instance)
    assert resumed.exit_code == 0, resumed
    assert _status(cli, instance)["state"] == "completed"
