"""``workflow_cli serve``: a real uvicorn on 127.0.0.1 (a free port), real HTTP calls,
tokens and roles, Server-Sent Events following runs, runners the server starts, and
``tokens`` itself."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from gated import WAIT_LIMIT, release, write_gated_template, write_review_template

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROLES = {"viewer1": "viewer", "ops": "operator", "team_lead": "approver", "root": "admin"}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    tokens: dict[str, str]

    def call(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """One request; its status and its JSON body."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=WAIT_LIMIT) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def events(
        self,
        instance: str,
        token: str,
        *,
        query: str = "",
        last_event_id: int | None = None,
        on_message: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The SSE messages of an instance's events (each with its fields, data parsed),
        read until the server ends the stream."""
        headers = {"Authorization": f"Bearer {self.tokens[token]}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        url = f"{self.url}/api/workflows/{instance}/events{query}"
        request = urllib.request.Request(url, headers=headers)
        messages: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        with urllib.request.urlopen(request, timeout=WAIT_LIMIT) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    continue
                if line:
                    field, _, value = line.partition(": ")
                    current[field] = json.loads(value) if field == "data" else value
                    continue
                if current:
                    messages.append(current)
                    if on_message is not None:
                        on_message(current)
                    current = {}
        return messages


def add_token(cli: Callable[..., Result], name: str, role: str) -> str:
    made = cli("tokens", "add", name, "--role", role, "--json")
    assert made.exit_code == 0, made
    return str(made.json()["token"])


def start_server(workspace: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`workflow_cli serve --port 0` as a process; it and its URL once it listens."""
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    process = subprocess.Popen(
        [sys.executable, "-m", "workflow_cli", "serve", "--port", "0", *args],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        first = lines.get(timeout=WAIT_LIMIT)
    except queue.Empty:
        process.kill()
        raise AssertionError("the server did not say where it listens") from None
    assert " on http://127.0.0.1:" in first, (first, process.stderr)
    return process, first.split(" on ", 1)[1].split(" ", 1)[0]


def stop_server(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(WAIT_LIMIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(WAIT_LIMIT)


@pytest.fixture
def server(workspace: Path, cli: Callable[..., Result]) -> Iterator[Server]:
    tokens = {name: add_token(cli, name, role) for name, role in ROLES.items()}
    process, url = start_server(workspace)
    try:
        yield Server(url, process, tokens)
    finally:
        stop_server(process)


def journal(workspace: Path, instance: str) -> list[dict[str, Any]]:
    path = workspace / "instances" / instance / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# -- tokens --------------------------------------------------------------------------------


def test_tokens_are_shown_once_and_kept_hashed(workspace: Path, cli: Callable[..., Result]) -> None:
    made = cli("tokens", "add", "ci", "--role", "operator")
    assert made.exit_code == 0
    token = made.stdout.strip()
    assert token.startswith("wfc_") and len(token) > 40
    assert "shown only now" in made.stderr
    stored = workspace / "server" / "tokens.json"
    assert token not in stored.read_text()
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (workspace / "server").stat().st_mode & 0o777 == 0o700
    listed = cli("tokens", "list", "--json")
    assert [(t["name"], t["role"]) for t in listed.json()] == [("ci", "operator")]
    assert token not in listed.stdout
    again = cli("tokens", "add", "ci", "--role", "viewer")
    assert again.exit_code == 2 and "a token named 'ci' exists" in again.stderr
    bad_role = cli("tokens", "add", "x", "--role", "king")
    assert bad_role.exit_code == 2 and "unknown role 'king'" in bad_role.stderr
    bad_name = cli("tokens", "add", "../x", "--role", "viewer")
    assert bad_name.exit_code == 2 and "is not a token name" in bad_name.stderr
    assert cli("tokens", "revoke", "ci").exit_code == 0
    assert cli("tokens", "list", "--json").json() == []
    gone = cli("tokens", "revoke", "ci")
    assert gone.exit_code == 2 and "no token named 'ci'" in gone.stderr


def test_another_host_only_with_tokens(
    workspace: Path,
    cli: Callable[..., Result],
    cli_process: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    refused = cli_process("serve", "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2
    assert "serving on 0.0.0.0 (not loopback) needs tokens" in refused.stderr
    # On loopback it serves without tokens, and refuses every request until there are.
    process, url = start_server(workspace)
    try:
        status, body = Server(url, process, {}).call("GET", "/api/workflows")
        assert status == 401 and body["kind"] == "Unauthorized"
    finally:
        stop_server(process)
    assert process.stderr is not None
    assert "no tokens yet" in process.stderr.read()


# -- over HTTP -------------------------------------------------------------------------------


def test_roles(server: Server, workspace: Path, cli: Callable[..., Result]) -> None:
    status, body = server.call("GET", "/api/workflows")
    assert status == 401 and body["error"].startswith("a token is needed")
    assert server.call("GET", "/api/workflows", token="wfc_not-a-token")[0] == 401
    created = {"template": "sequential_pipeline", "params": {}}
    for token in ("viewer1", "team_lead"):
        status, body = server.call("POST", "/api/workflows", token, created)
        assert status == 403, body
        assert f"token '{token}' ({ROLES[token]}) may not operate" == body["error"]
    status, body = server.call("POST", "/api/workflows", "ops", created)
    assert status == 201
    instance = body["id"]
    status, body = server.call("POST", f"/api/workflows/{instance}/approve", "ops", {})
    assert status == 403 and "may not decide" in body["error"]
    for token in ROLES:
        status, body = server.call("GET", "/api/workflows", token)
        assert status == 200 and [row["id"] for row in body] == [instance]
    assert server.call("GET", "/api/templates", "viewer1")[0] == 200
    assert server.call("POST", "/api/workflows", "root", created)[0] == 201
    # A revoked token is refused from the next request on.
    assert cli("tokens", "revoke", "viewer1").exit_code == 0
    assert server.call("GET", "/api/workflows", "viewer1")[0] == 401
    # The OpenAPI document needs no token and names every route.
    with urllib.request.urlopen(server.url + "/api/openapi.json", timeout=WAIT_LIMIT) as page:
        paths = json.loads(page.read())["paths"]
    for path in (
        "/api/workflows",
        "/api/workflows/{instance}/start",
        "/api/workflows/{instance}/status",
        "/api/workflows/{instance}/events",
        "/api/workflows/{instance}/approve",
        "/api/templates",
        "/api/health",
        "/api/approvals",
        "/api/agents",
        "/api/agents/{name}/inbox",
        "/api/agents/{name}/deliver",
    ):
        assert path in paths
    access = [
        json.loads(line)
        for line in (workspace / "server" / "access.jsonl").read_text().splitlines()
    ]
    assert {"token": "ops", "method": "POST", "path": "/api/workflows", "status": 201} in [
        {k: a[k] for k in ("token", "method", "path", "status")} for a in access
    ]
    assert access[0]["token"] is None and access[0]["status"] == 401


def test_create_start_status_and_events(
    server: Server, workspace: Path, cli: Callable[..., Result]
) -> None:
    status, body = server.call(
        "POST", "/api/workflows", "ops", {"template": "sequential_pipeline", "params": {}}
    )
    assert status == 201
    instance = body["id"]
    status, body = server.call("POST", f"/api/workflows/{instance}/start", "ops")
    assert status == 202, body
    assert body["id"] == instance and body["pid"] > 0 and not body["resume"]
    runner = body["pid"]
    messages = server.events(instance, "viewer1")
    kinds = [m["data"].get("type") for m in messages[:-1]]
    assert kinds[0] == "instance_created" and kinds[-1] == "run_ended"
    assert kinds.count("task_completed") == 3
    assert [int(m["id"]) for m in messages[:-1]] == list(range(1, len(kinds) + 1))
    assert messages[-1] == {"event": "end", "data": {"reason": "ended"}}
    status, view = server.call("GET", f"/api/workflows/{instance}/status", "viewer1")
    assert status == 200 and view["state"] == "completed"
    assert view == cli("status", instance, "--json").json()
    recorded = journal(workspace, instance)
    assert recorded[0]["requester"] == "ops"
    assert [(e["by"], e["resume"]) for e in recorded if e["type"] == "run_requested"] == [
        ("ops", False)
    ]

    # The runner the server started ends, and the server reaps it.
    def runner_done() -> bool:
        runners = server.call("GET", "/api/health", "viewer1")[1]["runners"]
        return {"id": instance, "pid": runner, "exit_code": 0} in runners

    wait_until(runner_done, "the server to see its runner end")
    # An instance that has ended: its events, then the end of the stream at once.
    again = server.events(instance, "viewer1", last_event_id=len(kinds) - 1)
    assert [m["data"].get("type") for m in again] == ["run_ended", None]
    assert again[-1]["data"] == {"reason": "not_running"}
    status, listed = server.call("GET", "/api/workflows?state=completed&limit=5", "viewer1")
    assert [row["id"] for row in listed] == [instance]


def test_events_follow_a_live_run(server: Server, workspace: Path) -> None:
    write_gated_template(workspace)
    instance = server.call("POST", "/api/workflows", "ops", {"template": "gated"})[1]["id"]
    assert server.call("POST", f"/api/workflows/{instance}/start", "ops")[0] == 202

    def on_message(message: dict[str, Any]) -> None:
        if message["data"].get("type") == "task_started":
            release(workspace)  # the run goes on only once the stream has shown it going

    messages = server.events(instance, "viewer1", on_message=on_message)
    kinds = [m["data"].get("type") for m in messages]
    assert kinds.index("task_started") < kinds.index("task_completed")
    assert kinds[-2:] == ["run_ended", None]
    assert messages[-1]["data"] == {"reason": "ended"}
    assert server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["state"] == (
        "completed"
    )


def test_an_approval_is_made_as_the_tokens_name(server: Server, workspace: Path) -> None:
    status, body = server.call(
        "POST", "/api/workflows", "ops", {"template": "approval_chain", "params": {"amount": 900}}
    )
    instance = body["id"]
    status, body = server.call("POST", f"/api/workflows/{instance}/start", "ops")
    assert status == 202
    wait_until(lambda: server.call("GET", "/api/approvals", "viewer1")[1] != [], "the gate to wait")
    status, waiting = server.call("GET", "/api/approvals", "viewer1")
    assert [(w["instance"], w["task"], w["approvers"]) for w in waiting] == [
        (instance, "level1_approval", ["team_lead"])
    ]
    # An admin's token is named root, who is not an approver of this gate.
    status, body = server.call("POST", f"/api/workflows/{instance}/approve", "root", {})
    assert status == 400
    assert body["error"] == "'root' may not decide 'level1_approval' (approvers: team_lead)"
    status, body = server.call(
        "POST", f"/api/workflows/{instance}/approve", "team_lead", {"comment": "fine"}
    )
    assert status == 200, body
    assert (body["task"], body["decision"], body["by"]) == (
        "level1_approval",
        "approved",
        "team_lead",
    )
    decisions = [e for e in journal(workspace, instance) if e["type"] == "approval_recorded"]
    assert [(d["by"], d["comment"]) for d in decisions] == [("team_lead", "fine")]
    inbox = server.call("GET", "/api/approvals", "viewer1")[1]
    assert [(d["decision"], d["by"]) for d in inbox[0]["decisions"]] == [("approved", "team_lead")]
    wait_until(
        lambda: (
            server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["state"]
            == "waiting"
        ),
        "the first run to end",
    )
    status, body = server.call("POST", f"/api/workflows/{instance}/resume", "ops")
    assert status == 202 and body["resume"] is True
    server.events(instance, "viewer1")
    status, body = server.call("POST", f"/api/workflows/{instance}/reject", "team_lead", {})
    assert status == 400 and "may not decide 'level2_approval'" in body["error"]


def test_errors_carry_the_clis_messages(
    server: Server, workspace: Path, cli: Callable[..., Result]
) -> None:
    status, body = server.call("GET", "/api/workflows/nothing-here/status", "viewer1")
    assert status == 404
    assert cli("status", "nothing-here").stderr == f"error: {body['error']}\n"
    assert body["kind"] == "NotFoundError" and body["exit_code"] == 2
    bad = {"template": "approval_chain", "params": {"amout": 1}}
    status, body = server.call("POST", "/api/workflows", "ops", bad)
    assert status == 400 and body["kind"] == "ParameterError"
    assert body["error"].startswith("parameter 'amout': unknown for template 'approval_chain'")
    for template in ("../templates/x.json", str(workspace / "x.yaml")):
        status, body = server.call("POST", "/api/workflows", "ops", {"template": template})
        assert status == 404 and "unknown template" in body["error"]
    status, body = server.call("POST", "/api/workflows", "ops", {"params": {}})
    assert status == 400 and body["error"].startswith("invalid request: body.template")
    status, body = server.call("GET", "/api/workflows?state=sleeping", "viewer1")
    assert status == 400 and body["error"].startswith("unknown state 'sleeping'")
    created = cli("run", "sequential_pipeline", "--json")
    instance = created.json()["id"]
    status, body = server.call("POST", f"/api/workflows/{instance}/start", "ops")
    assert status == 409 and body["kind"] == "StateError"
    assert cli("start", instance).stderr == f"error: {body['error']}\n"
    status, body = server.call("POST", f"/api/workflows/{instance}/cancel", "ops", {})
    assert status == 409 and body["error"].endswith("there is nothing to cancel")
    assert [e["type"] for e in journal(workspace, instance) if e["type"] == "run_requested"] == []
    # A damaged journal: refused as the CLI refuses it, with its message.
    folder = workspace / "instances" / instance
    (folder / "state.json").unlink()
    data = bytearray((folder / "events.jsonl").read_bytes())
    data[data.index(b"\n") + 5] ^= 0x20
    (folder / "events.jsonl").write_bytes(bytes(data))
    status, body = server.call("GET", f"/api/workflows/{instance}/status", "viewer1")
    assert status == 500 and body["kind"] == "JournalCorruptError" and body["exit_code"] == 5
    by_cli = cli("status", instance)
    assert by_cli.exit_code == 5 and by_cli.stderr.startswith(f"error: {body['error']}\n")


def test_each_error_kind_has_its_status() -> None:
    from workflow_cli.errors import (
        CheckpointCorruptError,
        DefinitionError,
        DiskFullError,
        ExpressionError,
        JournalCorruptError,
        LockHeldError,
        NotFoundError,
        OutputRejectedError,
        ParameterError,
        StateError,
        UsageError,
    )
    from workflow_cli.server.errors import error_body, http_status

    statuses = {
        NotFoundError("x"): 404,
        OutputRejectedError("x"): 422,
        StateError("x"): 409,
        LockHeldError("x"): 409,
        JournalCorruptError("x"): 500,
        CheckpointCorruptError("x"): 500,
        DiskFullError("f", 10): 507,
        UsageError("x"): 400,
        ParameterError("p", "x"): 400,
        ExpressionError("x"): 400,
        DefinitionError("d.json", []): 400,
    }
    assert {type(e).__name__: http_status(e) for e in statuses} == {
        type(e).__name__: s for e, s in statuses.items()
    }
    body = error_body(DiskFullError("f", 10))
    assert body["exit_code"] == 6 and body["error"].startswith("no space left to write f")


def test_stop_resume_and_cancel(server: Server, workspace: Path) -> None:
    write_gated_template(workspace)
    instance = server.call("POST", "/api/workflows", "ops", {"template": "gated"})[1]["id"]
    assert server.call("POST", f"/api/workflows/{instance}/start", "ops")[0] == 202
    status, body = server.call("POST", f"/api/workflows/{instance}/start", "ops")
    assert status == 409 and "a runner is executing it already" in body["error"]
    wait_until(
        lambda: (
            server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["tasks"]["hold"][
                "state"
            ]
            == "running"
        ),
        "hold to run",
    )
    status, body = server.call(
        "POST", f"/api/workflows/{instance}/stop", "ops", {"grace": 0, "wait": WAIT_LIMIT}
    )
    assert status == 200 and body["state"] == "paused" and body["runner_ended"], body
    assert server.call("POST", f"/api/workflows/{instance}/resume", "ops")[0] == 202
    status, body = server.call(
        "POST", f"/api/workflows/{instance}/cancel", "ops", {"wait": WAIT_LIMIT}
    )
    assert status == 200 and body["state"] == "cancelled", body
    kinds = [(e["type"], e.get("by")) for e in journal(workspace, instance)]
    assert ("stop_requested", "ops") in kinds and ("cancel_requested", "ops") in kinds
    assert [k for k in kinds if k[0] == "run_requested"] == [("run_requested", "ops")] * 2
    status, body = server.call("POST", f"/api/workflows/{instance}/resume", "ops")
    assert status == 409 and "cancelled" in body["error"]


def test_the_server_fires_due_schedules_itself(workspace: Path, cli: Callable[..., Result]) -> None:
    """With --tick-interval, no cron is needed: a per-second schedule makes an instance
    that runs to its end, and /api/health shows the last tick."""
    (workspace / "templates").mkdir(exist_ok=True)
    quick = {
        "name": "quick",
        "workflow": {
            "id": "quick",
            "name": "quick",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {"a": {"action": "condition_check", "parameters": {"expression": "1"}}},
        },
    }
    (workspace / "templates" / "quick.json").write_text(json.dumps(quick))
    schedule = {"name": "every-second", "template": "quick", "cron": "* * * * * *"}
    (workspace / "workflow_cli.yaml").write_text(json.dumps({"schedules": [schedule]}))
    token = add_token(cli, "watcher", "viewer")
    process, url = start_server(workspace, "--tick-interval", "0.5")
    try:
        server = Server(url, process, {"watcher": token})
        wait_until(
            lambda: any(
                row["state"] == "completed"
                for row in server.call("GET", "/api/workflows", "watcher")[1]
            ),
            "a scheduled instance to complete",
        )
        status, health = server.call("GET", "/api/health", "watcher")
        assert status == 200 and health["tick"]["exit_code"] == 0, health["tick"]
    finally:
        stop_server(process)


# -- agents ----------------------------------------------------------------------------------


def without_ages(value: Any) -> Any:
    """`value` without its ``age_seconds`` (they grow between two looks)."""
    if isinstance(value, dict):
        return {k: without_ages(v) for k, v in value.items() if k != "age_seconds"}
    if isinstance(value, list):
        return [without_ages(v) for v in value]
    return value


def waiting_review(server: Server) -> str:
    """A `review` instance started through the API, once it waits for its reviewer."""
    status, body = server.call("POST", "/api/workflows", "ops", {"template": "review"})
    assert status == 201, body
    instance = str(body["id"])
    assert server.call("POST", f"/api/workflows/{instance}/start", "ops")[0] == 202
    wait_until(
        lambda: (
            server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["state"]
            == "waiting"
        ),
        "the run to wait for the reviewer",
    )
    return instance


def test_agents_and_inboxes_are_the_clis(
    server: Server, workspace: Path, cli: Callable[..., Result]
) -> None:
    write_review_template(workspace)
    instance = waiting_review(server)
    status, agents = server.call("GET", "/api/agents", "viewer1")
    assert status == 200
    assert without_ages(agents) == without_ages(cli("agents", "--json").json())
    [reviewer] = [a for a in agents if a["name"] == "reviewer"]
    assert (reviewer["kind"], reviewer["source"]) == ("mailbox", "agents.yaml")
    assert [(w["instance"], w["task"], w["attempt"]) for w in reviewer["waiting"]] == [
        (instance, "review", 1)
    ]
    status, inbox = server.call("GET", "/api/agents/reviewer/inbox", "viewer1")
    assert status == 200
    assert without_ages(inbox) == without_ages(cli("inbox", "reviewer", "--json").json())
    [item] = inbox
    assert item["parameters"] == {"report": "q3.txt", "pages": 12}
    assert (item["instance"], item["task"], item["task_state"]) == (instance, "review", "waiting")
    status, body = server.call("GET", "/api/agents/ghost/inbox", "viewer1")
    assert status == 404 and body["error"].startswith("unknown agent 'ghost'")
    assert server.call("GET", "/api/agents")[0] == 401


def test_a_delivery_through_the_api_lets_the_instance_go_on(
    server: Server, workspace: Path, cli: Callable[..., Result]
) -> None:
    write_review_template(workspace)
    instance = waiting_review(server)
    path = "/api/agents/reviewer/deliver"
    good = {"instance": instance, "task": "review", "output": {"approved": True}}
    assert server.call("POST", path, None, good)[0] == 401
    for token in ("viewer1", "team_lead"):
        status, body = server.call("POST", path, token, good)
        assert (
            status == 403 and f"token '{token}' ({ROLES[token]}) may not operate" == (body["error"])
        )
    # The CLI's errors, with its messages.
    bad_output = {"instance": instance, "task": "review", "output": {"approved": "yes"}}
    status, body = server.call("POST", path, "ops", bad_output)
    by_cli = cli(
        "deliver", instance, "review", "--as", "reviewer", "--output", '{"approved": "yes"}'
    )
    assert status == 422 and body["kind"] == "OutputRejectedError"
    assert by_cli.exit_code == 2 and by_cli.stderr.startswith(f"error: {body['error']}\n")
    assert "/approved: 'yes' is not of type 'boolean'" in body["error"]
    refused = {
        "/api/agents/ghost/deliver": (good, 404, "unknown agent 'ghost'"),
        "/api/agents/echo/deliver": (good, 409, "assigned to agent 'reviewer', not 'echo'"),
        path: ({**good, "task": "nope"}, 404, "has no task 'nope'"),
    }
    for where, (body_sent, code, message) in refused.items():
        status, body = server.call("POST", where, "ops", body_sent)
        assert status == code and message in body["error"], (where, body)
    status, body = server.call("POST", path, "ops", {**good, "instance": "no-such-instance"})
    assert status == 404, body
    status, body = server.call("POST", path, "ops", {**good, "error": "and a failure"})
    assert status == 400 and body["error"] == 'give "output" or "error" (one of them)'
    before = journal(workspace, instance)
    assert not [e for e in before if e["type"] == "agent_delivered"]  # nothing recorded yet
    # The delivery, made as the token's name; with resume, the instance goes on at once.
    status, body = server.call("POST", path, "ops", {**good, "resume": True})
    assert status == 200, body
    assert (body["id"], body["task"], body["attempt"], body["agent"], body["by"]) == (
        instance,
        "review",
        1,
        "reviewer",
        "ops",
    )
    assert body["delivered"] == "output" and body["resumed"]["pid"] > 0
    [delivered] = [e for e in journal(workspace, instance) if e["type"] == "agent_delivered"]
    assert (delivered["agent"], delivered["by"], delivered["via"]) == ("reviewer", "ops", "api")
    assert delivered["output"] == {"approved": True}
    server.events(instance, "viewer1")  # follows the resumed run to its end
    status, view = server.call("GET", f"/api/workflows/{instance}/status", "viewer1")
    assert view["state"] == "completed"
    assert view["tasks"]["after"]["output"] is True
    status, body = server.call("POST", path, "ops", good)
    assert status == 409 and "is completed; nothing waits" in body["error"]
    assert server.call("GET", "/api/agents/reviewer/inbox", "viewer1")[1] == []
