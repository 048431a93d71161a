"""Event hooks through the real CLI: webhooks to a real HTTP server on 127.0.0.1 (one that
answers, one that fails first, one that is down, one that holds its answer), command
hooks, secrets masked in what hooks are sent, and every delivery journaled."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.store.state import fold

PY = sys.executable
SECRET = "hook-Secret-5d1e0c77"


class Hooked:
    """A local webhook receiver: keeps what it is sent; answers with the statuses queued
    for a path (then 200); holds answers to /slow until `release` is set."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: dict[str, list[int]] = {}
        self.release = threading.Event()
        self.lock = threading.Lock()
        hooked = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/slow":
                    hooked.release.wait(60)
                with hooked.lock:
                    hooked.received.append(
                        {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                    )
                    queued = hooked.statuses.get(self.path) or [200]
                    status = queued.pop(0) if len(queued) > 1 else queued[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self, path: str) -> list[str]:
        with self.lock:
            return [r["body"]["event"] for r in self.received if r["path"] == path]


@pytest.fixture
def hooked() -> Iterator[Hooked]:
    receiver = Hooked()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()


def _down_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port taken, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def _agent(workspace: Path, name: str, body: str) -> None:
    (workspace / f"{name}.py").write_text(
        "import json, sys\nparams = json.load(sys.stdin)\n" + body
    )
    path = workspace / "agents.yaml"
    existing = json.loads(path.read_text()) if path.exists() else {"agents": {}}
    existing["agents"][name] = {"command": [PY, str(workspace / f"{name}.py")]}
    path.write_text(json.dumps(existing))


def _events(workspace: Path, instance: str) -> list[dict[str, Any]]:
    path = workspace / "instances" / instance / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


FAILING = {
    "action": "agent_task",
    "agent_id": "fails",
    "parameters": {},
    "retry_count": 1,
    "retry_delay": 0.01,
}


def test_webhooks_get_the_events_of_a_run(cli, workspace, hooked):
    _agent(workspace, "fails", "print('no luck', file=sys.stderr)\nsys.exit(3)\n")
    hooks = [
        {
            "name": "all",
            "events": ["workflow.started", "workflow.failed", "task.failed", "task.retrying"],
            "url": hooked.url + "/all",
            "headers": {"X-Team": "data"},
        },
        {"name": "done", "events": "workflow.completed", "url": hooked.url + "/done"},
    ]
    path = write_definition(workspace, {"bad": FAILING}, hooks=hooks)
    result = cli("run", str(path), "--json")
    assert result.exit_code == 1, result
    instance = result.json()["id"]
    assert hooked.events("/all") == [
        "workflow.started",
        "task.retrying",
        "task.failed",
        "workflow.failed",
    ]
    assert hooked.events("/done") == []
    failed = next(r for r in hooked.received if r["body"]["event"] == "task.failed")
    body = failed["body"]
    assert body["instance"] == instance and body["task"] == "bad"
    assert body["task_state"] == "failed" and body["state"] == "running"
    assert "exited with code 3" in body["details"]["error"]["message"]
    assert body["links"]["status"] == f"workflow_cli status {instance}"
    assert body["links"]["api"] == f"/api/workflows/{instance}/status"
    assert failed["headers"]["X-Team"] == "data"
    assert failed["headers"]["X-Workflow-Event"] == "task.failed"
    ended = next(r for r in hooked.received if r["body"]["event"] == "workflow.failed")
    assert ended["body"]["state"] == "failed"

    shown = cli("hooks", instance, "--json")
    assert shown.exit_code == 0, shown
    report = shown.json()
    assert report["delivered"] == 4 and report["failed"] == 0
    assert {d["event"] for d in report["deliveries"]} == set(hooked.events("/all"))
    assert all(d["status"] == 200 and d["attempts"] == 1 for d in report["deliveries"])
    assert fold(_events(workspace, instance))["hooks"] == {"delivered": 4}
    text = cli("hooks", instance).stdout
    assert "all  task.failed (bad)  delivered after 1 try, status 200" in text
    assert "hook all (task.failed for bad) delivered" in cli("events", instance).stdout


def test_a_hook_that_is_down_never_breaks_the_run(cli, workspace, hooked):
    hooked.statuses["/flaky"] = [503, 200]
    hooks = [
        {
            "name": "down",
            "events": "workflow.completed",
            "url": _down_url(),
            "retry_delay": 0.01,
            "retry_count": 2,
        },
        {
            "name": "flaky",
            "events": "workflow.completed",
            "url": hooked.url + "/flaky",
            "retry_delay": 0.01,
        },
        {
            "name": "gone",
            "events": "workflow.completed",
            "command": ["no-such-program-xyz"],
            "retry_count": 0,
        },
    ]
    check = {"action": "condition_check", "parameters": {"expression": "1"}}
    path = write_definition(workspace, {"a": check}, hooks=hooks)
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    instance = result.json()["id"]
    assert cli("status", instance, "--json").json()["state"] == "completed"
    deliveries = {d["hook"]: d for d in cli("hooks", instance, "--json").json()["deliveries"]}
    down = deliveries["down"]
    assert down["type"] == "hook_failed" and down["attempts"] == 3
    assert "cannot reach" in down["error"] and "Connection refused" in down["error"]
    flaky = deliveries["flaky"]
    assert flaky["type"] == "hook_delivered" and flaky["attempts"] == 2 and flaky["status"] == 200
    assert hooked.events("/flaky") == ["workflow.completed", "workflow.completed"]
    gone = deliveries["gone"]
    assert gone["type"] == "hook_failed" and "cannot run no-such-program-xyz" in gone["error"]
    text = cli("hooks", instance)
    assert text.exit_code == 0
    assert "down  workflow.completed  FAILED after 3 tries: cannot reach" in text.stdout


def test_a_slow_hook_does_not_hold_the_run(workspace, hooked):
    """The run ends (its journal says so) while its hook is still unanswered; the hook is
    delivered afterwards, and recorded."""
    hooks = [{"name": "slow", "events": "workflow.started", "url": hooked.url + "/slow"}]
    check = {"action": "condition_check", "parameters": {"expression": "1"}}
    path = write_definition(
        workspace, {"a": check, "b": {**check, "dependencies": ["a"]}}, hooks=hooks
    )
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    cli = [PY, "-m", "workflow_cli"]
    created = subprocess.run(
        [*cli, "create", str(path)], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    instance = created.stdout.strip()
    runner = subprocess.Popen(
        [*cli, "start", instance, "--json"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        ended = False
        while not ended and time.monotonic() < deadline:
            ended = any(e["type"] == "run_ended" for e in _events(workspace, instance))
            time.sleep(0.05)
        assert ended, "the run did not end while its hook was held"
        assert hooked.events("/slow") == []  # still held: nothing was answered yet
        assert runner.poll() is None  # the process waits for the delivery, the run did not
    finally:
        hooked.release.set()
        out, _ = runner.communicate(timeout=60)
    assert json.loads(out)["state"] == "completed"
    types = [e["type"] for e in _events(workspace, instance)]
    assert types.index("run_ended") < types.index("hook_delivered")


def test_a_command_hook_gets_the_body_on_stdin(cli, workspace):
    script = workspace / "on_hook.py"
    script.write_text(
        "import json, os, sys\n"
        "body = json.load(sys.stdin)\n"
        "body['env'] = {k: os.environ[k] for k in ('WORKFLOW_HOOK_EVENT', 'WORKFLOW_INSTANCE')}\n"
        "open('hook-' + body['event'] + '.json', 'w').write(json.dumps(body))\n"
    )
    gate = {"action": "approval_gate", "parameters": {"approvers": ["ann"]}}
    hooks = [
        {"events": ["approval.required", "workflow.completed"], "command": f"{PY} {script}"},
    ]
    path = write_definition(workspace, {"gate": gate}, hooks=hooks)
    result = cli("run", str(path), "--json")
    assert result.exit_code == 3, result
    instance = result.json()["id"]
    required = json.loads((workspace / "hook-approval.required.json").read_text())
    assert required["task"] == "gate" and required["details"]["waiting_for"]["approvers"] == ["ann"]
    assert required["env"] == {
        "WORKFLOW_HOOK_EVENT": "approval.required",
        "WORKFLOW_INSTANCE": instance,
    }
    assert cli("approve", instance, "gate", "--as", "ann").exit_code == 0
    assert cli("resume", instance, "--json").exit_code == 0
    completed = json.loads((workspace / "hook-workflow.completed.json").read_text())
    assert completed["state"] == "completed"
    report = cli("hooks", instance, "--json").json()
    assert [d["hook"] for d in report["deliveries"]] == ["definition[0]", "definition[0]"]
    assert report["hooks"][0]["kind"] == "command"


def test_secrets_are_masked_in_hook_bodies_and_records(cli, workspace, hooked, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", SECRET)
    (workspace / "leaks.py").write_text(
        "def run(params):\n    raise ValueError('cannot use ' + params['value'])\n"
    )
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"leaks": {"callable": "leaks:run"}}})
    )
    hooks = [
        {
            "events": "task.failed",
            "url": hooked.url + "/secret?key={{ secrets.TOKEN }}",
            "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
        },
        {
            "events": "task.failed",
            "url": _down_url() + "?key={{ secrets.TOKEN }}",
            "retry_count": 0,
        },
    ]
    task = {
        "action": "agent_task",
        "agent_id": "leaks",
        "parameters": {"value": "{{ secrets.TOKEN }}"},
    }
    path = write_definition(
        workspace, {"leak": task}, hooks=hooks, secrets={"TOKEN": {"env": "HOOK_TOKEN"}}
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 1, result
    instance = result.json()["id"]
    (sent,) = hooked.received
    assert sent["headers"]["Authorization"] == f"Bearer {SECRET}"  # rendered for the call
    assert sent["path"] == f"/secret?key={SECRET}"
    body = json.dumps(sent["body"])
    assert SECRET not in body
    assert sent["body"]["details"]["error"]["message"] == "ValueError: cannot use ***"
    report = cli("hooks", instance, "--json")
    assert SECRET not in report.stdout
    for file in (workspace / "instances" / instance).rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def test_workspace_hooks_apply_to_every_instance(cli, workspace, hooked):
    (workspace / "workflow_cli.yaml").write_text(
        json.dumps({"hooks": [{"name": "ops", "events": "workflow.completed", "url": hooked.url}]})
    )
    check = {"action": "condition_check", "parameters": {"expression": "1"}}
    path = write_definition(workspace, {"a": check})
    for _ in range(2):
        assert cli("run", str(path), "--json").exit_code == 0
    assert hooked.events("/") == ["workflow.completed", "workflow.completed"]

    (workspace / "workflow_cli.yaml").write_text(
        json.dumps({"hooks": [{"events": "workflow.done", "url": "ftp://x"}]})
    )
    bad = cli("run", str(path))
    assert bad.exit_code == 2 and "created" not in bad.stdout
    assert "workflow_cli.yaml: hooks: /hooks/0/events" in bad.stderr
    assert "/hooks/0/url" in bad.stderr and "Traceback" not in bad.stderr
    assert len(list((workspace / "instances").iterdir())) == 2  # nothing written

    (workspace / "workflow_cli.yaml").write_text("hooks:\n  - on: workflow.completed\n")
    yaml_on = cli("create", str(path))
    assert yaml_on.exit_code == 2 and "YAML reads 'on:' as true" in yaml_on.stderr


def test_bad_hooks_in_a_definition_are_reported(cli, workspace):
    check = {"action": "condition_check", "parameters": {"expression": "1"}}
    hooks = [
        {"events": "workflow.completed", "url": "http://x", "command": ["true"]},
        {"events": "workflow.completed"},
        {"events": "task.failed", "url": "http://x/{{ steps.a.output }}"},
        {"events": "task.failed", "url": "http://x", "retry_count": -1},
    ]
    path = write_definition(workspace, {"a": check}, hooks=hooks)
    result = cli("validate", str(path))
    assert result.exit_code == 2
    for text in (
        "/hooks/0: a hook has either a command or a url",
        "/hooks/1: a hook has either a command or a url",
        "/hooks/2/url: hooks see params, secrets and instance, not steps",
        "/hooks/3/retry_count",
    ):
        assert text in result.stderr + result.stdout, result


def test_a_cancel_with_no_runner_delivers_its_hooks(cli, workspace, hooked):
    gate = {"action": "approval_gate", "parameters": {"approvers": ["ann"]}}
    hooks = [{"events": ["workflow.cancelled", "approval.required"], "url": hooked.url + "/c"}]
    path = write_definition(workspace, {"gate": gate}, hooks=hooks)
    result = cli("run", str(path), "--json")
    assert result.exit_code == 3, result
    instance = result.json()["id"]
    assert hooked.events("/c") == ["approval.required"]
    assert cli("resume", instance, "--json").exit_code == 3  # still waiting: the same wait
    assert hooked.events("/c") == ["approval.required"]
    cancelled = cli("cancel", instance, "--as", "bob")
    assert cancelled.exit_code == 0, cancelled
    assert hooked.events("/c") == ["approval.required", "workflow.cancelled"]
    body = hooked.received[-1]["body"]
    assert body["state"] == "cancelled" and body["reason"] == "cancelled by bob"
    report = cli("hooks", instance, "--json").json()
    assert [d["event"] for d in report["deliveries"]] == ["approval.required", "workflow.cancelled"]


def test_which_journal_events_make_hook_events():
    from workflow_cli.engine.hooks import hook_events
    from workflow_cli.store.state import empty_state

    state = empty_state()
    state["runs"] = 1
    assert hook_events({"type": "run_started", "pid": 1, "recovered": False}, state) == [
        "workflow.started"
    ]
    state["runs"] = 2  # a resume is not a start
    assert hook_events({"type": "run_started", "pid": 1, "recovered": False}, state) == []
    assert hook_events({"type": "run_ended", "state": "paused", "reason": None}, state) == []
    assert hook_events({"type": "run_ended", "state": "cancelled", "reason": None}, state) == [
        "workflow.cancelled"
    ]
    waiting = {"type": "task_waiting", "task": "t", "waiting_for": {"child_instance": "c"}}
    assert hook_events(waiting, state) == []  # a child run is not an approval
    deadline = {"type": "timer_fired", "kind": "approval_deadline", "target": "t"}
    assert hook_events(deadline, state) == ["approval.overdue"]
    reminder = {"type": "timer_fired", "kind": "approval_reminder", "target": "t"}
    assert hook_events(reminder, state) == []
    mailbox = {"type": "task_waiting", "task": "t", "waiting_for": {"kind": "mailbox"}}
    assert hook_events(mailbox, state) == ["agent.assigned"]
    assert hook_events({"type": "task_completed", "task": "t"}, state) == []


def test_a_scheduled_instance_delivers_its_hooks_from_its_background_runner(
    cli, workspace, hooked, monkeypatch
):
    (workspace / "templates").mkdir()
    template = {
        "name": "quick",
        "parameters": {},
        "workflow": {
            "id": "quick",
            "name": "quick",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {"a": {"action": "condition_check", "parameters": {"expression": "1"}}},
        },
    }
    (workspace / "templates" / "quick.json").write_text(json.dumps(template))
    config = {
        "schedules": [{"name": "m", "template": "quick", "cron": "* * * * *"}],
        "hooks": [{"events": ["workflow.started", "workflow.completed"], "url": hooked.url}],
    }
    (workspace / "workflow_cli.yaml").write_text(json.dumps(config))
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "2026-03-01T10:00:30Z")
    assert cli("tick").exit_code == 0
    monkeypatch.setenv("WORKFLOW_CLI_NOW", "2026-03-01T10:01:01Z")
    (firing,) = cli("tick", "--json").json()["firings"]
    instance = firing["instance"]
    deadline = time.monotonic() + 60
    delivered: list[dict[str, Any]] = []
    while len(delivered) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        delivered = cli("hooks", instance, "--json").json()["deliveries"]
    assert [d["event"] for d in delivered] == ["workflow.started", "workflow.completed"]
    assert [r["body"]["instance"] for r in hooked.received] == [instance, instance]


def test_overdue_approvals_and_mailbox_assignments_have_hooks(cli, workspace, monkeypatch):
    """approval.overdue from a deadline that a tick fires with no runner alive (the tick
    delivers it), and agent.assigned when a mailbox agent gets its assignment."""
    now = workspace / "now.txt"
    now.write_text("2026-03-02T09:00:00+00:00")
    monkeypatch.setenv("WORKFLOW_CLI_NOW", f"@{now}")
    (workspace / "agents.yaml").write_text("agents:\n  reviewer:\n    mailbox: true\n")
    script = workspace / "on_hook.py"
    script.write_text(
        "import json, sys\n"
        "body = json.load(sys.stdin)\n"
        "open('hook-' + body['event'] + '.json', 'w').write(json.dumps(body))\n"
    )
    gate = {"action": "approval_gate", "parameters": {"approvers": ["ann"], "timeout_seconds": 60}}
    review = {"action": "agent_task", "agent_id": "reviewer", "parameters": {"doc": "q3"}}
    hooks = [{"events": ["approval.overdue", "agent.assigned"], "command": [PY, str(script)]}]
    path = write_definition(workspace, {"gate": gate, "review": review}, hooks=hooks)
    result = cli("run", str(path), "--json")
    assert result.exit_code == 3, result
    instance = result.json()["id"]
    assigned = json.loads((workspace / "hook-agent.assigned.json").read_text())
    assert (
        assigned["task"] == "review" and assigned["details"]["waiting_for"]["agent"] == "reviewer"
    )
    assert not (workspace / "hook-approval.overdue.json").exists()
    now.write_text("2026-03-02T09:01:01+00:00")
    assert cli("tick", "--json").exit_code == 0
    overdue = json.loads((workspace / "hook-approval.overdue.json").read_text())
    assert overdue["instance"] == instance and overdue["task"] == "gate"
    deliveries = cli("hooks", instance, "--json").json()["deliveries"]
    assert [(d["event"], d["task"]) for d in deliveries] == [
        ("agent.assigned", "review"),
        ("approval.overdue", "gate"),
    ]
