"""``debug``: the account of a failed or stuck instance, for a failure from every action
kind, with secrets masked; and `mask_secrets` itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.secrets import MASK, mask_secrets, mask_text, secret_values
from workflow_cli.store.workspace import Workspace

PY = sys.executable


def clock() -> datetime:
    return datetime.now(UTC)


def write_agent(workspace: Path, name: str, body: str) -> None:
    """Declare command agent `name` in agents.yaml, a script with `body` (parameters in
    `params`)."""
    script = workspace / f"{name}.py"
    script.write_text("import json, sys\nparams = json.load(sys.stdin)\n" + textwrap.dedent(body))
    path = workspace / "agents.yaml"
    existing = json.loads(path.read_text()) if path.exists() else {"agents": {}}
    existing["agents"][name] = {"command": [PY, str(script)]}
    path.write_text(json.dumps(existing))  # JSON is YAML


def run(cli: Any, workspace: Path, tasks: dict[str, Any], **extra: Any) -> tuple[int, str]:
    result = cli("run", str(write_definition(workspace, tasks, **extra)), "--json")
    return result.exit_code, result.json()["id"]


def debug(cli: Any, *args: str) -> tuple[dict[str, Any], str]:
    """The account as JSON and the text view, both checked to exit 0."""
    as_json = cli("debug", *args, "--json")
    assert as_json.exit_code == 0, as_json
    text = cli("debug", *args)
    assert text.exit_code == 0, text
    return as_json.json(), text.stdout


def only_task(account: dict[str, Any], task: str) -> dict[str, Any]:
    assert [t["task"] for t in account["tasks"]] == [task]
    found: dict[str, Any] = account["tasks"][0]
    return found


def commands(entry: dict[str, Any]) -> list[str]:
    return [step["command"] for step in entry["next"]]


def check(expression: str = "1", **more: Any) -> dict[str, Any]:
    return {"action": "condition_check", "parameters": {"expression": expression}, **more}


# -- a failure from every action kind ----------------------------------------------------


def test_agent_task_exit_code_with_retries_log_parameters_and_conditions(cli, workspace):
    write_agent(
        workspace,
        "failing",
        """
        sys.stderr.write("connecting with password=hunter2222 and " + params["api_token"] + "\\n")
        sys.stderr.write("giving up\\n")
        sys.exit(3)
        """,
    )
    code, instance = run(
        cli,
        workspace,
        {
            "work": {
                "action": "agent_task",
                "agent_id": "failing",
                "parameters": {"api_token": "{{ params.api_token }}", "count": "{{ params.n }}"},
                "conditions": ["params.n > 1"],
                "retry_count": 1,
                "retry_delay": 0.01,
            }
        },
        params={"api_token": "tok-ABCDEFGHIJ", "n": 3},
    )
    assert code == 1
    account, text = debug(cli, instance)
    for shown in (json.dumps(account), text):
        assert "tok-ABCDEFGHIJ" not in shown and "hunter2222" not in shown
    assert account["state"] == "failed"
    assert account["params"] == {"api_token": MASK, "n": 3}
    task = only_task(account, "work")
    assert task["action"] == "agent_task" and task["agent_id"] == "failing"
    assert task["error"]["kind"] == "exit_code" and task["error"]["exit_code"] == 3
    first, second = task["attempts"]
    assert (first["attempt"], first["outcome"], first["exit_code"]) == (1, "retried", 3)
    assert 0.009 <= first["backoff"] <= 0.011  # 0.01 s ± 10 %
    assert (second["attempt"], second["outcome"], second["exit_code"]) == (2, "failed", 3)
    assert "backoff" not in second
    for attempt in (first, second):
        assert attempt["started_at"] and attempt["duration"] > 0
    assert task["parameters"] == {"api_token": MASK, "count": 3}
    assert task["parameters_rendered"] is True
    assert task["conditions"] == [
        {"expression": "params.n > 1", "values": {"params.n": 3}, "missing": [], "result": True}
    ]
    assert (
        task["log"]["lines"]
        == [
            f"connecting with password={MASK} and {MASK}",
            "giving up",
        ]
        * 2
    )
    assert f"workflow_cli retry {instance} --task work" in commands(task)
    assert f"workflow_cli skip {instance} --task work" in commands(task)
    assert "#1" in text and "exit code 3" in text
    assert re.search(r"then waited 0\.0(09|1[01]?)\d*s", text)  # 0.01 s ± 10 %
    assert "params.n > 1  ->  true   [params.n = 3]" in text
    assert f"| connecting with password={MASK} and {MASK}" in text


def test_file_operation_reading_a_missing_file(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {
            "read": {
                "action": "file_operation",
                "parameters": {"operation": "read", "path": "no.txt"},
            }
        },
    )
    assert code == 1
    account, text = debug(cli, instance)
    task = only_task(account, "read")
    assert task["error"] == {"message": "'no.txt' does not exist", "kind": "not_found"}
    assert [(a["attempt"], a["outcome"], a["kind"]) for a in task["attempts"]] == [
        (1, "failed", "not_found")
    ]
    assert task["log"]["exists"] is False
    assert task["parameters"] == {"operation": "read", "path": "no.txt"}
    assert "error: 'no.txt' does not exist  (not_found)" in text
    assert "log: none written" in text


class FailingServer:
    """A real HTTP server on 127.0.0.1 that answers every request with 500."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = b'{"error": "database down"}'
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[FailingServer]:
    running = FailingServer()
    yield running
    running.stop()


def test_api_call_answered_500_with_credentials_masked(cli, workspace, server):
    code, instance = run(
        cli,
        workspace,
        {
            "call": {
                "action": "api_call",
                "parameters": {
                    "url": server.url("/orders?token=qs-secret-123&page=2"),
                    "headers": {"Authorization": "Bearer hdr-secret-456", "Accept": "json"},
                },
                "retry_count": 1,
                "retry_delay": 0.01,
            }
        },
    )
    assert code == 1
    account, text = debug(cli, instance)
    for shown in (json.dumps(account), text):
        assert "qs-secret-123" not in shown and "hdr-secret-456" not in shown
    task = only_task(account, "call")
    assert [(a["outcome"], a["status"], a["kind"]) for a in task["attempts"]] == [
        ("retried", 500, "http_status"),
        ("failed", 500, "http_status"),
    ]
    assert task["attempts"][0]["backoff"] is not None
    assert task["parameters"]["url"] == server.url(f"/orders?token={MASK}&page=2")
    assert task["parameters"]["headers"] == {"Authorization": MASK, "Accept": "json"}
    assert len(task["log"]["lines"]) == 2
    assert all(f"token={MASK}" in line and "-> 500" in line for line in task["log"]["lines"])
    assert "HTTP 500" in text


def test_workflow_trigger_whose_child_fails(cli, workspace):
    child = {
        "name": "child",
        "description": "a child that fails",
        "parameters": {},
        "workflow": {
            "id": "child",
            "name": "child",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {
                "read": {
                    "action": "file_operation",
                    "parameters": {"operation": "read", "path": "absent.json"},
                }
            },
        },
    }
    (workspace / "templates").mkdir()
    (workspace / "templates" / "child.json").write_text(json.dumps(child))
    code, parent = run(
        cli,
        workspace,
        {"kick": {"action": "workflow_trigger", "parameters": {"template": "child"}}},
    )
    assert code == 1
    account, text = debug(cli, parent)
    task = only_task(account, "kick")
    child_id = f"{parent}.kick"
    assert task["child_instance"] == child_id
    assert task["error"]["kind"] == "child" and child_id in task["error"]["message"]
    assert task["attempts"][0]["details"] == {"child_instance": child_id}
    assert commands(task)[0] == f"workflow_cli debug {child_id}"
    assert f"child instance: {child_id}" in text
    child_account, child_text = debug(cli, child_id)
    assert child_account["parent"] == {"instance": parent, "task": "kick"}
    assert only_task(child_account, "read")["error"]["kind"] == "not_found"
    assert f"child of {parent} (task kick)" in child_text


def test_approval_gate_rejected(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {"gate": {"action": "approval_gate", "parameters": {"approvers": ["ann", "bob"]}}},
    )
    assert code == 3
    waiting, text = debug(cli, instance)
    gate = only_task(waiting, "gate")
    assert gate["state"] == "waiting"
    assert gate["waiting_for"]["approvers"] == ["ann", "bob"]
    assert commands(gate) == [  # deciding first; skipping a gate only as a last resort
        f"workflow_cli approve {instance} gate --as ann",
        f"workflow_cli reject {instance} gate --as ann",
        f"workflow_cli reassign {instance} gate --to NAME --as ann",
        f"workflow_cli skip {instance} --task gate --force",
    ]
    assert f"workflow_cli resume {instance}" in commands(waiting)
    assert cli("reject", instance, "gate", "--as", "bob", "--comment", "no").exit_code == 0
    assert cli("resume", instance).exit_code == 1
    account, text = debug(cli, instance)
    gate = only_task(account, "gate")
    assert gate["error"]["message"] == "rejected by bob: no"
    assert [a["outcome"] for a in gate["attempts"]] == ["waiting", "decision", "failed"]
    assert gate["attempts"][1]["note"].startswith("rejected by bob at level 0: no (sha256:")
    assert gate["attempts"][2]["kind"] == "rejected"
    assert gate["attempts"][2]["details"]["by"] == "bob"
    assert "rejected by bob: no" in text


def test_a_cancelled_gate_shows_its_wait_then_the_cancel(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {"gate": {"action": "approval_gate", "parameters": {"approvers": ["ann"]}}},
    )
    assert code == 3
    assert cli("cancel", instance).exit_code == 0
    account, _ = debug(cli, instance, "gate")
    gate = only_task(account, "gate")
    assert gate["state"] == "cancelled"
    assert [(a["attempt"], a["outcome"]) for a in gate["attempts"]] == [
        (None, "waiting"),
        (None, "cancelled"),
    ]
    assert gate["attempts"][0]["waiting_for"]["approvers"] == ["ann"]


def test_condition_check_that_fails_to_evaluate(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {
            "total": check("10"),
            "ratio": check(
                "steps.total.output / params.count",
                dependencies=["total"],
                conditions="steps.total.output > 5",
            ),
        },
        params={"count": 0},
    )
    assert code == 1
    account, text = debug(cli, instance)
    task = only_task(account, "ratio")
    assert task["error"]["kind"] == "expression"
    assert "ZeroDivisionError" in task["error"]["message"]
    assert task["check"]["expression"] == "steps.total.output / params.count"
    assert task["check"]["values"] == {
        "params.count": 0,
        "steps.total": {"state": "completed", "output": 10},
    }
    assert "ZeroDivisionError" in task["check"]["error"]
    assert task["conditions"][0]["result"] is True
    assert "steps.total.output / params.count  ->  error: ZeroDivisionError" in text


# -- stuck instances, named tasks, bad input ------------------------------------------


def test_parameters_that_do_not_render_are_shown_as_written(cli, workspace):
    code, instance = run(
        cli,
        workspace,
        {
            "bad": {
                "action": "file_operation",
                "parameters": {"operation": "read", "path": "{{ params.n.nothing }}"},
            }
        },
        params={"n": 1},
    )
    assert code == 1
    account, text = debug(cli, instance)
    task = only_task(account, "bad")
    assert task["parameters_rendered"] is False
    assert "nothing" in task["parameters_error"]
    assert task["parameters"]["path"] == "{{ params.n.nothing }}"
    assert task["attempts"][0]["started_at"] is None  # it failed before it could start
    assert "(as written; rendering fails)" in text and "(did not start)" in text


def test_a_run_whose_runner_died_is_stuck(cli, workspace):
    path = write_definition(workspace, {"a": check(), "b": check(dependencies=["a"])})
    instance = cli("create", str(path)).stdout.strip()
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True)
    journal = open_journal(Workspace(workspace), instance, clock)
    journal.append(
        [
            {"type": "run_started", "pid": int(dead.stdout), "recovered": False},
            {"type": "task_started", "task": "a", "attempt": 1},
        ]
    )
    journal.close()
    account, text = debug(cli, instance)
    assert account["runner_gone"] is True
    task = only_task(account, "a")
    assert task["attempts"][0]["outcome"] == "interrupted"
    assert account["next"][0]["command"] == f"workflow_cli resume {instance}"
    assert "its runner is gone" in text


def test_a_named_task_and_a_finished_instance(cli, workspace):
    code, instance = run(cli, workspace, {"a": check("1 + 1"), "b": check(dependencies=["a"])})
    assert code == 0
    account, text = debug(cli, instance)
    assert account["tasks"] == [] and "no task failed" in text
    account, _ = debug(cli, instance, "a")
    task = only_task(account, "a")
    assert task["state"] == "completed" and task["check"]["value"] == 2
    assert task["next"] == []
    assert [(a["attempt"], a["outcome"]) for a in task["attempts"]] == [(1, "completed")]


def test_unknown_task_or_instance_is_exit_2_naming_it(cli, workspace):
    code, instance = run(cli, workspace, {"a": check()})
    assert code == 0
    result = cli("debug", instance, "zzz")
    assert result.exit_code == 2
    assert f"instance {instance} has no task 'zzz'" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("debug", "no-such-instance")
    assert result.exit_code == 2 and "no instance 'no-such-instance'" in result.stderr


def test_the_newest_valid_checkpoint_is_suggested(cli, workspace):
    from workflow_cli.store.checkpoints import list_checkpoints, write_checkpoint

    code, instance = run(cli, workspace, {"bad": check("1 / 0")})
    assert code == 1
    ws = Workspace(workspace)
    state = load_state(open_journal(ws, instance, clock))
    write_checkpoint(ws, state, kind="manual", label="before", now=clock())
    newest = write_checkpoint(ws, state, kind="manual", label="latest", now=clock())
    account, _ = debug(cli, instance)
    assert account["checkpoint"]["id"] == newest["id"]
    rollback = f"workflow_cli rollback {instance} --checkpoint {newest['id']}"
    assert rollback in commands(only_task(account, "bad"))
    # A damaged checkpoint is never suggested.
    damaged = next(info for info in list_checkpoints(ws, instance) if info.id == newest["id"])
    damaged.path.write_text(damaged.path.read_text().replace("latest", "tampered"))
    account, _ = debug(cli, instance)
    assert account["checkpoint"]["id"] != newest["id"]
    assert account["checkpoint"]["label"] != "latest"


# -- masking -----------------------------------------------------------------------------


def test_mask_secrets_hides_credentials_and_keeps_the_rest():
    value = {
        "password": "pw-1",
        "API_KEY": "k",
        "db": {"user": "ann", "passwd": 1234, "token_url": None},
        "headers": {"Authorization": "Basic abc", "X-Api-Key": "xyz", "Accept": "json"},
        "url": "https://h/x?access_token=s3cr3t&q=1",
        "list": [{"client_secret": "cs"}, "Bearer eyJhbGciOi.payload.sig"],
        "note": "login with password: hunter22, then token=abcdef",
        "count": 3,
        "author": "bob",
    }
    masked = mask_secrets(value)
    assert masked == {
        "password": MASK,
        "API_KEY": MASK,
        "db": {"user": "ann", "passwd": MASK, "token_url": None},
        "headers": {"Authorization": MASK, "X-Api-Key": MASK, "Accept": "json"},
        "url": f"https://h/x?access_token={MASK}&q=1",
        "list": [{"client_secret": MASK}, f"Bearer {MASK}"],
        "note": f"login with password: {MASK}, then token={MASK}",
        "count": 3,
        "author": "bob",
    }
    assert secret_values(value) == {"pw-1", "k", "1234", "Basic abc", "xyz", "cs"}
    assert mask_text("echo pw-1 and pw-12", {"pw-12", "pw-1"}) == f"echo {MASK} and {MASK}"
    assert mask_text("n=1", {"1"}) == "n=1"  # too short to be a secret worth masking


def test_a_retried_task_shows_the_reset_between_its_attempts(cli, workspace):
    read = {"action": "file_operation", "parameters": {"operation": "read", "path": "in.txt"}}
    code, instance = run(cli, workspace, {"read": read})
    assert code == 1
    (workspace / "in.txt").write_text("here now")
    retried = cli("retry", instance, "--task", "read")
    assert retried.exit_code == 0, retried
    assert cli("resume", instance).exit_code == 0
    account, text = debug(cli, instance, "read")
    task = only_task(account, "read")
    assert [(a["attempt"], a["outcome"]) for a in task["attempts"]] == [
        (1, "failed"),
        (None, "reset"),
        (1, "completed"),
    ]
    assert "for retry" in task["attempts"][1]["note"]
    assert "reset  (for retry by " in text
