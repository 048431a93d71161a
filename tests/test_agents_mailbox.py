"""Mailbox agents through the real CLI: the assignment file, the instance that waits,
deliveries by command and by outbox file (with a runner live and with none), the output
schema, a second delivery, a real ``kill -9`` between assignment and delivery, undeclared
agents, and the ``agents`` and ``inbox`` listings."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import start_runner, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.workspace import Workspace

WAIT_LIMIT = 30.0  # an upper bound on every wait for another process
POLL = 0.01

# A command agent that holds its task until the file "go" exists (at most 60 s): it keeps
# a runner live while a mailbox task waits.
HOLDER = """\
import json, os, sys, time
json.load(sys.stdin)
deadline = time.monotonic() + 60
while not os.path.exists("go") and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"held": True}))
"""

SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


def review_task(**extra: Any) -> dict[str, Any]:
    return {
        "action": "agent_task",
        "agent_id": "reviewer",
        "name": "Review the report",
        "description": "Read it and say whether it may go out.",
        "parameters": {"report": "q3.txt", "pages": "{{ 2 + 3 }}"},
        "output_schema": SCHEMA,
        **extra,
    }


def with_next(tasks: dict[str, Any]) -> dict[str, Any]:
    """A task after the review that reads its output."""
    after = {"action": "condition_check", "parameters": {"expression": "steps.review.output"}}
    return {**tasks, "after": {**after, "dependencies": ["review"]}}


def state_of(root: Path, instance_id: str) -> Any:
    return load_state(open_journal(Workspace(root), instance_id, utc_now))


def events_of(root: Path, instance_id: str) -> list[dict[str, Any]]:
    lines = (root / "instances" / instance_id / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def inbox_file(root: Path, instance_id: str, task: str = "review", agent: str = "reviewer") -> Path:
    return root / "agents" / agent / "inbox" / f"{instance_id}.{task}.json"


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(POLL)


def write_outbox(root: Path, agent: str, name: str, body: Any) -> Path:
    """Write an outbox file as an agent should: under another name, then renamed."""
    folder = root / "agents" / agent / "outbox"
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f"{name}.tmp"
    temp.write_text(json.dumps(body), encoding="utf-8")
    os.replace(temp, folder / name)
    return folder / name


def run_waiting(cli, workspace: Path, tasks: dict[str, Any]) -> str:
    result = cli("run", str(write_definition(workspace, tasks)), "--json")
    assert result.exit_code == 3, result
    assert result.json()["state"] == "waiting"
    instance_id: str = result.json()["id"]
    return instance_id


def holder_workspace(root: Path) -> None:
    (root / "holder.py").write_text(HOLDER, encoding="utf-8")
    (root / "agents.yaml").write_text(
        json.dumps({"agents": {"holder": {"command": [sys.executable, str(root / "holder.py")]}}})
    )


def hold_task() -> dict[str, Any]:
    return {"action": "agent_task", "agent_id": "holder", "parameters": {}}


# -- the assignment ------------------------------------------------------------------------


def test_assignment_is_written_and_the_instance_waits(cli, workspace):
    before = utc_now()
    result = cli(
        "run",
        str(write_definition(workspace, with_next({"review": review_task(timeout_seconds=3600)}))),
    )
    assert result.exit_code == 3, result
    assert "agent 'reviewer' is not declared" in result.stderr
    assert "agents/reviewer/inbox/" in result.stderr
    instance_id = next(p.name for p in (workspace / "instances").iterdir())
    assert "review waits for agent reviewer" in result.stdout
    path = inbox_file(workspace, instance_id)
    assert path.stat().st_mode & 0o777 == 0o600
    assignment = json.loads(path.read_text())
    assert {k: assignment[k] for k in ("instance", "task", "attempt", "agent", "name")} == {
        "instance": instance_id,
        "task": "review",
        "attempt": 1,
        "agent": "reviewer",
        "name": "Review the report",
    }
    assert assignment["description"] == "Read it and say whether it may go out."
    assert assignment["parameters"] == {"report": "q3.txt", "pages": 5}  # rendered
    assert assignment["output_schema"] == SCHEMA
    assigned = datetime.fromisoformat(assignment["assigned_at"])
    assert assigned >= before.replace(microsecond=before.microsecond // 1000 * 1000)
    assert datetime.fromisoformat(assignment["deadline"]) == assigned + timedelta(seconds=3600)
    state = state_of(workspace, instance_id)
    assert state["state"] == "waiting"
    assert state["tasks"]["review"]["state"] == "waiting"
    assert state["tasks"]["review"]["attempts"] == 0  # an assignment is not an attempt started
    assert state["tasks"]["review"]["waiting_for"]["agent"] == "reviewer"
    assert state["reason"] == "waiting for agent reviewer: review"


def test_secret_values_never_reach_the_assignment(cli, workspace, monkeypatch):
    monkeypatch.setenv("REVIEW_TOKEN", "s3cr3t-value-abc")
    tasks = {"review": review_task(parameters={"token": "{{ secrets.token }}", "x": 1})}
    path = write_definition(workspace, tasks, secrets={"token": {"env": "REVIEW_TOKEN"}})
    result = cli("run", str(path), "--json")
    assert result.exit_code == 3, result
    instance_id = result.json()["id"]
    text = inbox_file(workspace, instance_id).read_text()
    assert "s3cr3t-value-abc" not in text
    assert json.loads(text)["parameters"] == {"token": "***", "x": 1}


# -- delivery by command -------------------------------------------------------------------


def test_delivery_by_command_then_resume(cli, workspace):
    instance_id = run_waiting(cli, workspace, with_next({"review": review_task()}))
    delivered = cli(
        "deliver",
        instance_id,
        "review",
        "--as",
        "reviewer",
        "--output",
        '{"approved": true, "note": "fine"}',
        "--json",
    )
    assert delivered.exit_code == 0, delivered
    assert delivered.json()["attempt"] == 1
    assert not inbox_file(workspace, instance_id).exists()  # no longer waiting for the agent
    [event] = [e for e in events_of(workspace, instance_id) if e["type"] == "agent_delivered"]
    assert (event["task"], event["attempt"], event["agent"], event["via"]) == (
        "review",
        1,
        "reviewer",
        "command",
    )
    assert event["output"] == {"approved": True, "note": "fine"} and event["time"]
    resumed = cli("resume", instance_id, "--json")
    assert resumed.exit_code == 0, resumed
    state = state_of(workspace, instance_id)
    assert state["state"] == "completed"
    assert state["tasks"]["review"]["output"] == {"approved": True, "note": "fine"}
    assert state["tasks"]["review"]["attempts"] == 1
    assert state["tasks"]["after"]["output"] == {"approved": True, "note": "fine"}


def test_output_from_a_file(cli, workspace, tmp_path):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    answer = tmp_path / "answer.json"
    answer.write_text('{"approved": false}')
    delivered = cli("deliver", instance_id, "review", "--as", "reviewer", "--output", f"@{answer}")
    assert delivered.exit_code == 0, delivered
    assert f"resume {instance_id}" in delivered.stdout
    assert cli("resume", instance_id).exit_code == 0
    assert state_of(workspace, instance_id)["tasks"]["review"]["output"] == {"approved": False}


def test_output_that_breaks_the_schema_is_refused_and_nothing_recorded(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    journal = workspace / "instances" / instance_id / "events.jsonl"
    before = journal.read_bytes()
    refused = cli(
        "deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": "yes"}'
    )
    assert refused.exit_code == 2, refused
    assert "does not match its output_schema" in refused.stderr
    assert "/approved: 'yes' is not of type 'boolean'" in refused.stderr
    not_json = cli("deliver", instance_id, "review", "--as", "reviewer", "--output", "yes")
    assert not_json.exit_code == 2 and "is not JSON" in not_json.stderr
    assert journal.read_bytes() == before
    assert inbox_file(workspace, instance_id).exists()


def test_second_delivery_for_the_same_attempt_is_refused(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    first = cli(
        "deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": true}'
    )
    assert first.exit_code == 0, first
    second = cli("deliver", instance_id, "review", "--as", "reviewer", "--error", "changed my mind")
    assert second.exit_code == 2, second
    assert "a second delivery is refused" in second.stderr
    delivered = [e for e in events_of(workspace, instance_id) if e["type"] == "agent_delivered"]
    assert len(delivered) == 1


def test_deliveries_that_do_not_fit_are_refused(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    unknown = cli("deliver", instance_id, "review", "--as", "mallory", "--output", "{}")
    assert unknown.exit_code == 2 and "unknown agent 'mallory'" in unknown.stderr
    wrong_agent = cli("deliver", instance_id, "review", "--as", "echo", "--output", "{}")
    assert wrong_agent.exit_code == 2 and "assigned to agent 'reviewer'" in wrong_agent.stderr
    no_task = cli("deliver", instance_id, "nope", "--as", "reviewer", "--output", "{}")
    assert no_task.exit_code == 2 and "no task 'nope'" in no_task.stderr
    both = cli("deliver", instance_id, "review", "--as", "reviewer")
    assert both.exit_code == 2 and "--output or --error" in both.stderr


def test_error_delivery_fails_the_attempt_and_the_retry_is_a_new_assignment(cli, workspace):
    tasks = {"review": review_task(retry_count=1, retry_delay=0)}
    instance_id = run_waiting(cli, workspace, tasks)
    failed = cli("deliver", instance_id, "review", "--as", "reviewer", "--error", "no access")
    assert failed.exit_code == 0, failed
    again = cli("resume", instance_id, "--json")
    assert again.exit_code == 3, again  # attempt 1 failed; attempt 2 is assigned and waits
    task = state_of(workspace, instance_id)["tasks"]["review"]
    assert (task["state"], task["attempts"]) == ("waiting", 1)
    assert task["error"]["kind"] == "agent_error" and "no access" in task["error"]["message"]
    assert json.loads(inbox_file(workspace, instance_id).read_text())["attempt"] == 2
    ok = cli("deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": true}')
    assert ok.exit_code == 0 and ok.stdout.startswith(f"{instance_id}: review attempt 2")
    assert cli("resume", instance_id).exit_code == 0
    task = state_of(workspace, instance_id)["tasks"]["review"]
    assert (task["state"], task["attempts"]) == ("completed", 2)


def test_no_delivery_by_the_deadline_fails_the_attempt_when_looked_at_again(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task(timeout_seconds=0.2)})
    deadline = datetime.fromisoformat(
        json.loads(inbox_file(workspace, instance_id).read_text())["deadline"]
    )
    wait_for(lambda: utc_now() > deadline, "the deadline to pass")
    resumed = cli("resume", instance_id)
    assert resumed.exit_code == 1, resumed
    task = state_of(workspace, instance_id)["tasks"]["review"]
    assert task["error"]["kind"] == "timeout" and "by the deadline" in task["error"]["message"]
    assert not inbox_file(workspace, instance_id).exists()


def test_error_delivery_without_retries_fails_the_instance(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    cli("deliver", instance_id, "review", "--as", "reviewer", "--error", "cannot do it")
    assert cli("resume", instance_id).exit_code == 1
    assert state_of(workspace, instance_id)["state"] == "failed"


# -- delivery by outbox file -----------------------------------------------------------------


def test_delivery_by_outbox_file_taken_on_resume(cli, workspace):
    instance_id = run_waiting(cli, workspace, with_next({"review": review_task()}))
    sent = write_outbox(
        workspace, "reviewer", f"{instance_id}.review.json", {"output": {"approved": True}}
    )
    resumed = cli("resume", instance_id)
    assert resumed.exit_code == 0, resumed
    assert not sent.exists()
    state = state_of(workspace, instance_id)
    assert state["tasks"]["review"]["output"] == {"approved": True}
    [event] = [e for e in events_of(workspace, instance_id) if e["type"] == "agent_delivered"]
    assert event["via"] == f"outbox:{instance_id}.review.json" and event["agent"] == "reviewer"


def test_outbox_file_that_is_refused_is_set_apart_with_the_reason(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    name = f"{instance_id}.review.json"
    write_outbox(workspace, "reviewer", name, {"output": {"approved": "maybe"}})
    resumed = cli("resume", instance_id)
    assert resumed.exit_code == 3, resumed  # still waiting: nothing was recorded
    rejected = workspace / "agents" / "reviewer" / "outbox" / "rejected"
    assert json.loads((rejected / name).read_text()) == {"output": {"approved": "maybe"}}
    assert "does not match its output_schema" in (rejected / f"{name}.reason.txt").read_text()
    assert not [e for e in events_of(workspace, instance_id) if e["type"] == "agent_delivered"]
    write_outbox(workspace, "reviewer", name, {"error": "gave up"})
    assert cli("resume", instance_id).exit_code == 1
    assert "gave up" in state_of(workspace, instance_id)["tasks"]["review"]["error"]["message"]


# -- a runner that is live when the delivery comes ---------------------------------------


@pytest.mark.parametrize("how", ["command", "outbox"])
def test_live_runner_takes_a_delivery_at_once(cli, workspace, how):
    holder_workspace(workspace)
    path = write_definition(workspace, {"review": review_task(), "hold": hold_task()})
    instance_id, runner = start_runner(workspace, path)
    try:
        wait_for(lambda: inbox_file(workspace, instance_id).exists(), "the assignment")
        wait_for(
            lambda: state_of(workspace, instance_id)["tasks"]["review"]["state"] == "waiting",
            "the wait to be journaled",
        )
        if how == "command":
            out = '{"approved": true}'
            delivered = cli("deliver", instance_id, "review", "--as", "reviewer", "--output", out)
            assert delivered.exit_code == 0, delivered
            assert "resume" not in delivered.stdout  # a runner is live: it takes it
        else:
            write_outbox(
                workspace, "reviewer", f"{instance_id}.review.json", {"output": {"approved": True}}
            )
        wait_for(
            lambda: state_of(workspace, instance_id)["tasks"]["review"]["state"] == "completed",
            "the live runner to take the delivery",
        )
        assert runner.poll() is None  # the same run took it: the holder still holds
        assert state_of(workspace, instance_id)["tasks"]["hold"]["state"] == "running"
    finally:
        (workspace / "go").write_text("")
        _, stderr = runner.communicate(timeout=WAIT_LIMIT)
    assert runner.returncode == 0, stderr
    state = state_of(workspace, instance_id)
    assert state["state"] == "completed" and state["runs"] == 1
    assert state["tasks"]["review"]["output"] == {"approved": True}


# -- kill -9 between assignment and delivery -------------------------------------------------


def test_kill_9_between_assignment_and_delivery(cli, workspace, cli_process):
    holder_workspace(workspace)
    path = write_definition(workspace, {"review": review_task(), "hold": hold_task()})
    instance_id, runner = start_runner(workspace, path)
    try:
        wait_for(
            lambda: state_of(workspace, instance_id)["tasks"]["review"]["state"] == "waiting",
            "the assignment",
        )
        assigned = inbox_file(workspace, instance_id).read_bytes()
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate()
    assert state_of(workspace, instance_id)["state"] == "running"  # its runner died
    (workspace / "go").write_text("")  # the holder, run again on resume, finishes
    resumed = cli_process("resume", instance_id, "--json")
    assert resumed.returncode == 3, resumed.stderr  # the review still waits
    assert inbox_file(workspace, instance_id).read_bytes() == assigned  # not assigned again
    assert sorted(p.name for p in inbox_file(workspace, instance_id).parent.iterdir()) == [
        f"{instance_id}.review.json"
    ]
    delivered = cli(
        "deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": true}'
    )
    assert delivered.exit_code == 0, delivered
    assert cli_process("resume", instance_id).returncode == 0
    events = events_of(workspace, instance_id)
    assert [
        e["attempt"] for e in events if e["type"] == "task_started" and e["task"] == "review"
    ] == [1]
    state = state_of(workspace, instance_id)
    assert state["state"] == "completed"
    assert state["tasks"]["review"]["output"] == {"approved": True}


def test_kill_9_then_delivery_while_no_runner_lives(cli, workspace, cli_process):
    holder_workspace(workspace)
    path = write_definition(workspace, {"review": review_task(), "hold": hold_task()})
    instance_id, runner = start_runner(workspace, path)
    try:
        wait_for(
            lambda: state_of(workspace, instance_id)["tasks"]["review"]["state"] == "waiting",
            "the assignment",
        )
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate()
    sent = write_outbox(
        workspace, "reviewer", f"{instance_id}.review.json", {"output": {"approved": False}}
    )
    (workspace / "go").write_text("")
    resumed = cli_process("resume", instance_id)
    assert resumed.returncode == 0, resumed.stderr
    assert not sent.exists()
    assert state_of(workspace, instance_id)["tasks"]["review"]["output"] == {"approved": False}


# -- undeclared agents ---------------------------------------------------------------------------


def test_undeclared_agent_notices(cli, workspace):
    path = write_definition(workspace, {"review": review_task()})
    validated = cli("validate", str(path), "--json")
    assert validated.exit_code == 0, validated
    assert validated.json()["mailbox_agents"] == ["reviewer"]
    assert "agent 'reviewer' is not declared" in validated.stderr
    assert "agents/reviewer/inbox/" in validated.stderr
    created = cli("create", str(path))
    assert created.exit_code == 0 and "agents/reviewer/inbox/" in created.stderr


def test_declared_mailbox_agent_has_no_notice(cli, workspace):
    (workspace / "agents.yaml").write_text("agents:\n  reviewer:\n    mailbox: true\n")
    path = write_definition(workspace, {"review": review_task()})
    result = cli("run", str(path), "--json")
    assert result.exit_code == 3, result
    assert "notice" not in result.stderr
    assert inbox_file(workspace, result.json()["id"]).exists()


def test_undeclared_agents_may_be_an_error(cli, workspace):
    (workspace / "workflow_cli.yaml").write_text("undeclared_agents: error\n")
    path = write_definition(workspace, {"review": review_task()})
    validated = cli("validate", str(path))
    assert validated.exit_code == 2, validated
    assert "/tasks/review/agent_id: unknown agent 'reviewer'" in validated.stderr
    assert cli("create", str(path)).exit_code == 2
    assert cli("run", str(path)).exit_code == 2
    assert not (workspace / "instances").exists()
    (workspace / "workflow_cli.yaml").write_text("undeclared_agents: sometimes\n")
    assert "must be 'mailbox' or 'error'" in cli("validate", str(path)).stderr


# -- agents and inbox ------------------------------------------------------------------------------


def test_agents_and_inbox_list_assignments_and_runs(cli, workspace):
    (workspace / "agents.yaml").write_text(
        "agents:\n  hook:\n    url: http://127.0.0.1:9/x\n  reviewer:\n    mailbox: true\n"
    )
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    listed = cli("agents", "--json")
    assert listed.exit_code == 0, listed
    agents = {a["name"]: a for a in listed.json()}
    assert agents["hook"]["kind"] == "http" and agents["echo"]["kind"] == "builtin"
    [waiting] = agents["reviewer"]["waiting"]
    assert (waiting["instance"], waiting["task"], waiting["attempt"]) == (instance_id, "review", 1)
    assert waiting["age_seconds"] >= 0
    inbox = cli("inbox", "reviewer", "--json")
    [item] = inbox.json()
    assert item["parameters"] == {"report": "q3.txt", "pages": 5}
    assert item["task_state"] == "waiting"
    header, row = cli("inbox", "reviewer").stdout.splitlines()  # piped: tab-separated
    assert header.split("\t") == [
        "INSTANCE", "TASK", "ATTEMPT", "TASK STATE", "WAITING SECONDS", "DEADLINE", "PARAMETERS"
    ]  # fmt: skip
    cells = row.split("\t")
    assert cells[:4] == [instance_id, "review", "1", "waiting"] and cells[5] == ""
    assert json.loads(cells[6]) == {"report": "q3.txt", "pages": 5}
    cli("deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": true}')
    assert cli("resume", instance_id).exit_code == 0
    second = run_waiting(cli, workspace, {"review": review_task()})
    cli("deliver", second, "review", "--as", "reviewer", "--error", "no")
    assert cli("resume", second).exit_code == 1
    agents = {a["name"]: a for a in cli("agents", "--json").json()}
    reviewer = agents["reviewer"]
    assert (reviewer["runs"], reviewer["failed"], reviewer["failure_rate"]) == (2, 1, 0.5)
    assert {r["instance"] for r in reviewer["last_runs"]} == {instance_id, second}
    assert reviewer["waiting"] == []
    rows = [line.split("\t") for line in cli("agents").stdout.splitlines()]
    assert rows[0] == ["NAME", "KIND", "SOURCE", "RUNS", "FAILED", "FAILURE RATE", "WAITING"]
    assert ["reviewer", "mailbox", "agents.yaml", "2", "1", "0.5", "0"] in rows
    assert cli("inbox", "reviewer").stdout.strip() == "no assignments for reviewer"
    assert cli("inbox", "../etc").exit_code == 2


def test_a_task_retried_by_hand_is_assigned_again_not_given_the_old_delivery(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    cli("deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": false}')
    assert cli("resume", instance_id).exit_code == 0
    retried = cli("retry", instance_id, "--task", "review")
    assert retried.exit_code == 0, retried
    again = cli("resume", instance_id)
    assert again.exit_code == 3, again  # waits for a new delivery
    assert json.loads(inbox_file(workspace, instance_id).read_text())["attempt"] == 1
    cli("deliver", instance_id, "review", "--as", "reviewer", "--output", '{"approved": true}')
    assert cli("resume", instance_id).exit_code == 0
    assert state_of(workspace, instance_id)["tasks"]["review"]["output"] == {"approved": True}


def test_an_assignment_outlives_a_rollback_and_may_still_be_delivered(cli, workspace):
    instance_id = run_waiting(cli, workspace, with_next({"review": review_task()}))
    rolled = cli("rollback", instance_id, "--checkpoint", "1", "--yes")
    assert rolled.exit_code == 0, rolled
    assert state_of(workspace, instance_id)["tasks"]["review"]["state"] == "pending"
    delivered = cli(
        "deliver",
        instance_id,
        "review",
        "--as",
        "reviewer",
        "--output",
        '{"approved": true}',
        "--json",
    )
    assert delivered.exit_code == 0, delivered  # the attempt it assigned has not started
    assert delivered.json()["attempt"] == 1
    assert cli("resume", instance_id).exit_code == 0
    state = state_of(workspace, instance_id)
    assert state["tasks"]["review"]["output"] == {"approved": True}
    assert state["tasks"]["review"]["attempts"] == 1
    assert not inbox_file(workspace, instance_id).exists()


def test_an_undeclared_agent_name_that_cannot_be_a_folder_is_refused(cli, workspace):
    path = write_definition(workspace, {"review": review_task(agent_id="../../etc")})
    validated = cli("validate", str(path))
    assert validated.exit_code == 2, validated
    assert "cannot be a mailbox agent's name" in validated.stderr
    assert not (workspace / "agents").exists()


def test_an_assignment_whose_instance_was_cancelled_is_shown_stale(cli, workspace):
    instance_id = run_waiting(cli, workspace, {"review": review_task()})
    assert cli("cancel", instance_id).exit_code == 0
    [_, row] = cli("inbox", "reviewer").stdout.splitlines()
    assert row.split("\t")[:4] == [instance_id, "review", "1", "cancelled"]
    agents = {a["name"]: a for a in cli("agents", "--json").json()}
    assert agents["reviewer"]["waiting"] == []
    refused = cli("deliver", instance_id, "review", "--as", "reviewer", "--output", "{}")
    assert refused.exit_code == 2 and "is cancelled" in refused.stderr
