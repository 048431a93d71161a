"""Approval gates through the real CLI: durable deadlines fired by `tick`, by a live
runner and by commands; escalation; quorum; separation of duties; identity; forms;
push-back; reassignment; the inbox; skipping a gate. The clock is pinned with
WORKFLOW_CLI_NOW (a file, so that the test moves it, also for a runner in another
process)."""

from __future__ import annotations

import getpass
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


def gate(**parameters: Any) -> dict[str, Any]:
    return {"action": "approval_gate", "parameters": {"message": "ok?", **parameters}}


def echo(*deps: str, **parameters: Any) -> dict[str, Any]:
    task = {"action": "agent_task", "agent_id": "echo", "parameters": parameters or {"x": 1}}
    return {**task, "dependencies": list(deps)}


def create(cli: Callable[..., Result], workspace: Path, tasks: dict[str, Any], *args: str) -> str:
    created = cli("create", str(write_definition(workspace, tasks)), "--json", *args)
    assert created.exit_code == 0, created
    return str(created.json()["id"])


def status(cli: Callable[..., Result], instance: str) -> dict[str, Any]:
    shown = cli("status", instance, "--json")
    assert shown.exit_code == 0, shown
    return dict(shown.json())


# -- deadlines ---------------------------------------------------------------------------


def test_a_deadline_escalates_with_no_process_alive_then_times_out(workspace, cli, clock):
    tasks = {
        "gate": gate(
            approvers=["alice"], timeout_seconds=60, escalate_to=["dave"], on_timeout="reject"
        ),
        "after": echo("gate"),
    }
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    [deadline] = events(workspace, instance, "timer_set")
    assert deadline["due"] == (T0 + timedelta(seconds=60)).isoformat(timespec="milliseconds")

    clock.set(59)
    quiet = cli("tick", "--json")
    assert quiet.exit_code == 0 and quiet.json()["fired"] == {}, quiet

    clock.set(75)
    ticked = cli("tick", "--json")
    assert ticked.exit_code == 0, ticked
    fired = ticked.json()["fired"][instance]
    assert [e["type"] for e in fired] == ["timer_fired", "approval_escalated"]
    assert fired[0]["due"] == deadline["due"]
    assert fired[0]["fired_at"] == (T0 + timedelta(seconds=75)).isoformat(timespec="milliseconds")
    assert fired[0]["by"] == "tick"
    assert fired[1]["approvers"] == ["dave"] and fired[1]["level"] == 1
    waiting = status(cli, instance)["tasks"]["gate"]["waiting_for"]
    assert waiting["level"] == 1 and waiting["approvers"] == ["dave"]
    refused = cli("approve", instance, "--as", "alice")
    assert refused.exit_code == 2 and "may not decide" in refused.stderr
    assert cli("tick", "--json").json()["fired"] == {}  # nothing new is due
    journal = cli("events", instance).stdout
    assert "gate: escalated to level 1: dave" in journal
    assert "gate: approval_deadline fired by tick (due 2026-03-02T09:01:00.000" in journal

    clock.set(75 + 61)  # the second level's deadline started when it escalated
    last = cli("tick")
    assert last.exit_code == 0 and "1 timer(s) fired" in last.stdout, last
    assert f"go on with: workflow_cli resume {instance}" in last.stdout
    [decision] = events(workspace, instance, "approval_recorded")
    assert decision["decision"] == "rejected" and decision["via"] == "deadline"
    assert decision["level"] == 1 and decision["digest"].startswith("sha256:")
    assert cli("resume", instance).exit_code == 1
    after = status(cli, instance)
    assert after["tasks"]["gate"]["error"]["kind"] == "rejected"
    assert after["tasks"]["after"]["state"] in ("skipped", "cancelled", "pending")


def test_on_timeout_fail_and_approve(workspace, cli, clock):
    failing = create(cli, workspace, {"gate": gate(approvers=["a"], timeout_seconds=10)})
    approving = create(
        cli,
        workspace,
        {
            "gate": gate(approvers=["a"], timeout_seconds=10, on_timeout="approve"),
            "n": echo("gate"),
        },
    )
    assert cli("start", failing).exit_code == 3
    assert cli("start", approving).exit_code == 3
    clock.set(11)
    report = cli("tick", "--json").json()
    assert sorted(report["to_resume"]) == sorted([failing, approving])
    assert cli("resume", failing).exit_code == 1
    assert status(cli, failing)["tasks"]["gate"]["error"]["kind"] == "timeout"
    assert cli("resume", approving).exit_code == 0
    output = status(cli, approving)["tasks"]["gate"]["output"]
    assert output["decision"] == "approved" and output["by"] == "deadline"


def test_a_command_that_touches_the_instance_fires_its_due_deadline(workspace, cli, clock):
    tasks = {"gate": gate(approvers=["alice"], timeout_seconds=30, escalate_to=["bob"])}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    clock.set(31)
    late = cli("approve", instance, "--as", "alice")  # the deadline passed: bob decides now
    assert late.exit_code == 2 and "approvers: bob" in late.stderr, late
    [fired] = events(workspace, instance, "timer_fired")
    assert fired["by"] == "approve"
    assert cli("approve", instance, "--as", "bob").exit_code == 0


AGENT_WAITING_FOR_A_FILE = """\
import json, os, sys, time
params = json.load(sys.stdin)
deadline = time.monotonic() + 60
while not os.path.exists(params["release"]) and time.monotonic() < deadline:
    time.sleep(0.02)
print(json.dumps({"released": os.path.exists(params["release"])}))
"""


def test_a_live_runner_fires_a_due_timer(workspace, clock):
    """While another task keeps the runner alive, the gate's deadline passes (the clock
    file moves); the runner itself fires it and the gate is approved by its deadline."""
    (workspace / "hold.py").write_text(AGENT_WAITING_FOR_A_FILE)
    agents = {"agents": {"hold": {"command": [sys.executable, str(workspace / "hold.py")]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))
    release = workspace / "release"
    tasks = {
        "gate": gate(approvers=["alice"], timeout_seconds=5, on_timeout="approve"),
        "hold": {
            "action": "agent_task",
            "agent_id": "hold",
            "parameters": {"release": str(release)},
            "timeout_seconds": 120,
        },
    }
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    command = [sys.executable, "-m", "workflow_cli"]
    definition = str(write_definition(workspace, tasks))
    made = subprocess.run(
        [*command, "create", definition], env=env, capture_output=True, text=True, timeout=60
    )
    instance = made.stdout.strip()
    runner = subprocess.Popen(
        [*command, "start", instance],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        limit = time.monotonic() + WAIT_LIMIT
        while not events(workspace, instance, "timer_set"):
            assert time.monotonic() < limit and runner.poll() is None, "no deadline was set"
            time.sleep(0.02)
        clock.set(6)
        while not events(workspace, instance, "timer_fired"):
            assert time.monotonic() < limit and runner.poll() is None, "the runner did not fire"
            time.sleep(0.02)
        release.write_text("go")
        out, err = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, (out, err)
    [fired] = events(workspace, instance, "timer_fired")
    assert fired["by"] == "runner"
    assert fired["fired_at"] == (T0 + timedelta(seconds=6)).isoformat(timespec="milliseconds")
    [decision] = events(workspace, instance, "approval_recorded")
    assert decision["decision"] == "approved" and decision["by"] == "deadline"


def test_reminders_are_recorded_while_it_waits(workspace, cli, clock):
    tasks = {"gate": gate(approvers=["alice"], remind_every_seconds=100)}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    for n in (1, 2):
        clock.set(100 * n + 1)
        assert cli("tick").exit_code == 0
    reminders = events(workspace, instance, "approval_reminded")
    assert len(reminders) == 2 and reminders[0]["approvers"] == ["alice"]
    assert cli("approve", instance, "--as", "alice").exit_code == 0
    assert events(workspace, instance, "timer_cancelled")  # the next reminder is not needed
    clock.set(1000)
    assert cli("tick", "--json").json()["fired"] == {}


# -- who decides --------------------------------------------------------------------------


def test_quorum_needs_different_people_and_refuses_a_second_decision(workspace, cli, clock):
    tasks = {"gate": gate(approvers=["ann", "ben", "cid"], required=2), "next": echo("gate")}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    assert cli("approve", instance, "--as", "ann").exit_code == 0
    again = cli("approve", instance, "--as", "ann")
    assert again.exit_code == 2 and "one decision each" in again.stderr, again
    assert cli("resume", instance).exit_code == 3  # one of two: it still waits
    assert cli("approve", instance, "--as", "ben", "--comment", "fine").exit_code == 0
    late = cli("approve", instance, "--as", "cid")
    assert late.exit_code == 2 and "already approved" in late.stderr, late
    assert cli("resume", instance).exit_code == 0
    output = status(cli, instance)["tasks"]["gate"]["output"]
    assert [d["by"] for d in output["decisions"]] == ["ann", "ben"]
    decisions = events(workspace, instance, "approval_recorded")
    assert len(decisions) == 2
    for decision in decisions:  # who, when, the digest of what they saw, the level
        assert decision["by"] and decision["time"].startswith("2026-03-02T09:00")
        assert decision["digest"] == output["digest"] and decision["level"] == 0


def test_one_rejection_rejects_unless_reject_required_says_otherwise(workspace, cli, clock):
    tasks = {"gate": gate(approvers=["ann", "ben", "cid"], required=2, reject_required=2)}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    assert cli("reject", instance, "--as", "ann").exit_code == 0
    assert cli("approve", instance, "--as", "ben").exit_code == 0
    assert cli("reject", instance, "--as", "cid", "--comment", "no").exit_code == 0
    assert cli("resume", instance).exit_code == 1
    assert status(cli, instance)["tasks"]["gate"]["error"]["kind"] == "rejected"


def test_self_approval_is_refused(workspace, cli, clock):
    instance = create(cli, workspace, {"gate": gate(approvers=["alice", "bob"])}, "--as", "alice")
    assert cli("start", instance).exit_code == 3
    refused = cli("approve", instance, "--as", "alice")
    assert refused.exit_code == 2 and "separation of duties" in refused.stderr, refused
    assert cli("approve", instance, "--as", "bob").exit_code == 0
    allowed = create(
        cli,
        workspace,
        {"gate": gate(approvers=["alice"], allow_self_approval=True)},
        "--as",
        "alice",
    )
    assert cli("start", allowed).exit_code == 3
    assert cli("approve", allowed, "--as", "alice").exit_code == 0


def test_identity_os_refuses_a_forged_name_and_groups_expand(workspace, cli, clock):
    me = getpass.getuser()
    settings = {"approvals": {"identity": "os", "groups": {"finance": [me, "fiona"]}}}
    (workspace / "workflow_cli.yaml").write_text(json.dumps(settings))
    request = str(write_definition(workspace, {"g": gate(approvers=["x"])}, name="r.json"))
    forged_request = cli("create", request, "--as", "fiona")
    assert forged_request.exit_code == 2 and "OS identity" in forged_request.stderr
    mine_alone = create(cli, workspace, {"gate": gate(approvers=["@finance"])})
    assert status(cli, mine_alone)["requester"] == me  # under identity: os, always recorded
    assert cli("start", mine_alone).exit_code == 3
    refused = cli("approve", mine_alone)  # one may not approve what one asked for
    assert refused.exit_code == 2 and "separation of duties" in refused.stderr
    settings["approvals"]["admins"] = [me]  # an admin may name someone else as requester
    (workspace / "workflow_cli.yaml").write_text(json.dumps(settings))
    instance = create(cli, workspace, {"gate": gate(approvers=["@finance"])}, "--as", "frank")
    settings["approvals"].pop("admins")
    (workspace / "workflow_cli.yaml").write_text(json.dumps(settings))
    assert cli("start", instance).exit_code == 3
    assert status(cli, instance)["tasks"]["gate"]["waiting_for"]["approvers"] == [me, "fiona"]
    forged = cli("approve", instance, "--as", "fiona")
    assert forged.exit_code == 2 and "OS identity" in forged.stderr, forged
    mine = cli("approve", instance, "--json")  # --as defaults to the OS user
    assert mine.exit_code == 0 and mine.json()["by"] == me, mine


def test_an_unknown_group_fails_the_gate_clearly(workspace, cli, clock):
    instance = create(cli, workspace, {"gate": gate(approvers=["@nobody"])})
    assert cli("start", instance).exit_code == 1
    error = status(cli, instance)["tasks"]["gate"]["error"]
    assert "@nobody" in error["message"] and error["kind"] == "parameters"


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"on_timeout": "later"}, "on_timeout"),
        ({"required": 2}, "required"),
        ({"escalate_to": ["b"]}, "escalate_to"),
        ({"timeout_seconds": -1}, "timeout_seconds"),
        ({"escalation": [{"approvers": ["b"]}]}, "after_seconds"),
    ],
)
def test_bad_gate_parameters_are_found_by_validate(workspace, cli, parameters, named):
    path = write_definition(workspace, {"gate": gate(approvers=["a"], **parameters)})
    checked = cli("validate", str(path))
    assert checked.exit_code == 2 and named in checked.stdout + checked.stderr, checked


# -- forms, push-back, reassignment --------------------------------------------------------


FORM = {
    "type": "object",
    "properties": {"amount": {"type": "number"}, "note": {"type": "string"}},
    "required": ["amount"],
}


def test_a_form_is_checked_and_becomes_the_gates_output(workspace, cli, clock):
    tasks = {
        "gate": gate(approvers=["bob"], inputs=FORM),
        "use": echo("gate", amount="{{ steps.gate.output.inputs.amount }}"),
    }
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    wrong = cli("approve", instance, "--as", "bob", "--set", "amount=lots")
    assert wrong.exit_code == 2 and "amount" in wrong.stderr, wrong
    missing = cli("approve", instance, "--as", "bob", "--set", "note=ok")
    assert missing.exit_code == 2 and "'amount' is a required property" in missing.stderr
    assert not events(workspace, instance, "approval_recorded")
    good = cli("approve", instance, "--as", "bob", "--set", "amount=1200", "--set", "note=12")
    assert good.exit_code == 0, good
    assert cli("resume", instance).exit_code == 0
    state = status(cli, instance)
    assert state["tasks"]["gate"]["output"]["inputs"] == {"amount": 1200, "note": "12"}
    assert state["tasks"]["use"]["output"] == {"amount": 1200}
    as_json = create(cli, workspace, {"gate": gate(approvers=["bob"], inputs=FORM)})
    assert cli("start", as_json).exit_code == 3
    assert cli("approve", as_json, "--as", "bob", "--inputs", '{"amount": 5}').exit_code == 0


def test_push_back_sends_the_run_back_and_the_gate_asks_again(workspace, cli, clock):
    tasks = {"build": echo(), "gate": {**gate(approvers=["bob"]), "dependencies": ["build"]}}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    pushed = cli(
        "reject", instance, "--as", "bob", "--rewind-to", "build", "--comment", "fix it", "--json"
    )
    assert pushed.exit_code == 0, pushed
    assert sorted(pushed.json()["rewound"]) == ["build", "gate"]
    state = status(cli, instance)
    assert state["tasks"]["build"]["state"] == "pending"
    assert state["tasks"]["gate"]["state"] == "pending"
    assert cli("resume", instance).exit_code == 3  # built again, the gate asks again
    assert len(events(workspace, instance, "task_completed")) == 2
    assert cli("approve", instance, "--as", "bob").exit_code == 0
    assert cli("resume", instance).exit_code == 0


def test_reassign_by_an_approver_or_an_admin_and_the_inbox(workspace, cli, clock):
    settings = {"approvals": {"admins": ["root"]}}
    (workspace / "workflow_cli.yaml").write_text(json.dumps(settings))
    tasks = {"gate": gate(approvers=["bob"], timeout_seconds=3600, message="pay 12 EUR?")}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    stranger = cli("reassign", instance, "--to", "eve", "--as", "mallory")
    assert stranger.exit_code == 2 and "may not reassign" in stranger.stderr
    handed = cli("reassign", instance, "--to", "carol", "--as", "bob", "--comment", "away")
    assert handed.exit_code == 0 and "approvers now: carol" in handed.stdout, handed
    assert cli("reassign", instance, "--to", "dan", "--as", "root").exit_code == 0
    [inbox] = cli("approvals", "--for", "carol", "--json").json()
    assert inbox["instance"] == instance and inbox["approvers"] == ["carol", "dan"]
    assert inbox["message"] == "pay 12 EUR?" and inbox["level"] == 0
    assert inbox["deadline"] == (T0 + timedelta(hours=1)).isoformat(timespec="milliseconds")
    assert inbox["overdue"] is False
    assert cli("approvals", "--for", "bob", "--json").json() == []
    assert cli("approvals", "--overdue", "--json").json() == []
    clock.set(3601)
    assert [g["task"] for g in cli("approvals", "--overdue", "--json").json()] == ["gate"]
    listed = cli("approvals")  # piped: tab-separated rows under a header, whole values
    header, row = listed.stdout.splitlines()
    assert header.split("\t") == [
        "INSTANCE", "TASK", "LEVEL", "APPROVERS", "NEEDS", "DECIDED", "WAITING SINCE",
        "DEADLINE", "MESSAGE",
    ]  # fmt: skip
    cells = row.split("\t")
    assert cells[:5] == [instance, "gate", "0", "carol, dan", "1"]
    assert cells[7].endswith(" OVERDUE") and cells[8] == "pay 12 EUR?"
    moves = events(workspace, instance, "approval_reassigned")
    assert [(m["by"], m["to"], m["replaced"]) for m in moves] == [
        ("bob", "carol", "bob"),
        ("root", "dan", None),
    ]


def test_skipping_a_gate_needs_force_and_records_who(workspace, cli, clock):
    instance = create(cli, workspace, {"gate": gate(approvers=["bob"]), "n": echo("gate")})
    assert cli("start", instance).exit_code == 3
    refused = cli("skip", instance, "--task", "gate", "--as", "ops")
    assert refused.exit_code == 2 and "--force" in refused.stderr, refused
    assert cli("skip", instance, "--task", "gate", "--as", "ops", "--force").exit_code == 0
    [skipped] = events(workspace, instance, "task_skipped")
    assert skipped["by"] == "ops"


def test_a_bad_pinned_clock_is_a_clear_error(cli, monkeypatch):
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "yesterday")
    result = cli("tick")
    assert result.exit_code == 2 and "ISO 8601" in result.stderr


def test_the_approval_chain_escalates_after_its_timeout(workspace, cli, clock):
    created = cli(
        "create",
        "approval_chain",
        "--param",
        "approval_timeout_seconds=60",
        "--param",
        "escalation_approver=boss",
        "--json",
    )
    instance = created.json()["id"]
    assert cli("start", instance).exit_code == 3
    clock.set(61)
    assert cli("tick").exit_code == 0
    waiting = status(cli, instance)["tasks"]["level1_approval"]["waiting_for"]
    assert waiting["approvers"] == ["boss"] and waiting["level"] == 1
    assert cli("approve", instance, "--as", "boss").exit_code == 0
    assert cli("resume", instance).exit_code == 3
    assert cli("approve", instance, "--as", "director").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    shown = status(cli, instance)
    assert shown["tasks"]["level1_approval"]["output"]["by"] == "boss"
    assert shown["tasks"]["level1_approval"]["output"]["level"] == 1


def test_a_changed_request_makes_earlier_decisions_void(workspace, cli, clock):
    """Hash-bound: a decision counts only for the request (message and form) it saw."""
    tasks = {"gate": gate(approvers=["ann", "ben", "cid"], required=2, message="pay 10 EUR")}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    assert cli("approve", instance, "--as", "ann").exit_code == 0
    first = status(cli, instance)["tasks"]["gate"]["waiting_for"]["digest"]
    changed = cli("resume", instance, "--set", "gate.message=pay 20 EUR", "--as", "ops")
    assert changed.exit_code == 3, changed
    waiting = status(cli, instance)["tasks"]["gate"]["waiting_for"]
    assert waiting["digest"] != first and waiting["approved_by"] == []
    assert cli("approve", instance, "--as", "ann").exit_code == 0  # asked again
    assert cli("approve", instance, "--as", "ben").exit_code == 0
    assert cli("resume", instance).exit_code == 0
    output = status(cli, instance)["tasks"]["gate"]["output"]
    assert [d["by"] for d in output["decisions"]] == ["ann", "ben"]
    assert {d["digest"] for d in output["decisions"]} == {waiting["digest"]}


def test_twenty_concurrent_approvals_of_a_quorum_of_two_record_exactly_two(workspace, cli):
    people = [f"p{n:02d}" for n in range(20)]
    instance = create(cli, workspace, {"gate": gate(approvers=people, required=2)})
    assert cli("start", instance).exit_code == 3
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "workflow_cli", "approve", instance, "--as", person],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for person in people
    ]
    results = [(p.wait(timeout=WAIT_LIMIT), p.communicate()[1]) for p in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 0] + [2] * 18, results
    assert all("already approved" in err for code, err in results if code == 2)
    assert len(events(workspace, instance, "approval_recorded")) == 2


def test_health_counts_overdue_approvals_and_status_shows_the_audit(
    workspace, cli, clock, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")  # the status table's lines are not wrapped
    tasks = {"gate": gate(approvers=["ann"], timeout_seconds=10, escalate_to=["bob"])}
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    clock.set(11)
    health = cli("health", "--json")
    assert health.exit_code == 0, health
    assert health.json()["approvals_overdue"] == 1
    shown = cli("status", instance)  # a command that touches it: the deadline fires
    assert "level 1, approvers: bob" in shown.stdout, shown
    assert "gate escalated at level 1: bob" in shown.stdout
    assert cli("approve", instance, "--as", "bob", "--comment", "fine").exit_code == 0
    assert "gate approved by bob (level 1): fine" in cli("status", instance).stdout
    page = workspace / "report.html"
    assert cli("report", instance, "--html", str(page)).exit_code == 0
    html = page.read_text()
    assert '<section id="approvals">' in html
    for shown in ("approval_deadline due", "approval escalated", "level 1: bob", "fine"):
        assert shown in html, shown
    assert "<td>approved</td><td>bob</td>" in html and "sha256:" in html


def test_tick_resume_runs_what_a_deadline_decided(workspace, cli, clock):
    tasks = {"gate": gate(approvers=["a"], timeout_seconds=10, on_timeout="approve"), "n": echo()}
    instance = create(cli, workspace, {**tasks, "n": echo("gate")})
    waiting = create(cli, workspace, {"gate": gate(approvers=["a"], timeout_seconds=500)})
    assert cli("start", instance).exit_code == 3
    assert cli("start", waiting).exit_code == 3
    clock.set(11)
    ticked = cli("tick", "--resume", "--json")
    assert ticked.exit_code == 0, ticked
    assert ticked.json()["resumed"] == {instance: "completed"}
    assert status(cli, instance)["state"] == "completed"
    assert status(cli, waiting)["state"] == "waiting"
