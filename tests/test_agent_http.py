"""HTTP agents (``url:`` in agents.yaml) against a real server on 127.0.0.1, through the
real CLI: the task's rendered parameters POSTed as JSON, the JSON answer its output;
failures, retries and the host's circuit breaker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.workspace import Workspace


class Server:
    """A local HTTP server that records what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _handler_for(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            server.requests.append(
                {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8"),
                }
            )
            if self.path == "/score":
                given = json.loads(body)
                answer = {"score": len(given["words"]) * 10, "echo": given}
                self.reply(200, json.dumps(answer).encode(), "application/json")
            elif self.path == "/broken":
                self.reply(500, b'{"error": "down"}', "application/json")
            elif self.path == "/text":
                self.reply(200, b"not json at all", "text/plain")
            elif self.path == "/slow":
                server.release.wait(10)
                self.reply(200, b"{}", "application/json")
            else:
                self.reply(404, b"{}", "application/json")

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


def _agents(root: Path, **agents: dict[str, Any]) -> None:
    (root / "agents.yaml").write_text(json.dumps({"agents": agents}), encoding="utf-8")


def _state(root: Path, instance_id: str) -> Any:
    return load_state(open_journal(Workspace(root), instance_id, utc_now))


def test_http_agent_posts_rendered_parameters_and_takes_json_answer(cli, workspace, server):
    _agents(
        workspace,
        scorer={
            "url": server.url("/score"),
            "headers": {"Authorization": "Bearer sekrit-token-1234"},
            "timeout_seconds": 10,
        },
    )
    path = write_definition(
        workspace,
        {
            "first": {"action": "condition_check", "parameters": {"expression": "'a b c'"}},
            "score": {
                "action": "agent_task",
                "agent_id": "scorer",
                "dependencies": ["first"],
                "parameters": {"words": "{{ steps.first.output.split() }}", "lang": "en"},
            },
        },
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    instance_id = result.json()["id"]
    assert "notice" not in result.stderr  # declared: no mailbox notice
    [request] = server.requests
    sent = json.loads(request["body"])
    assert sent == {"words": ["a", "b", "c"], "lang": "en"}
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["authorization"] == "Bearer sekrit-token-1234"
    assert request["headers"]["x-workflow-task"] == "score"
    assert request["headers"]["x-workflow-instance"] == instance_id
    task = _state(workspace, instance_id)["tasks"]["score"]
    assert task["output"] == {"score": 30, "echo": sent}
    log = (workspace / "instances" / instance_id / "logs" / "score.log").read_text()
    assert f"POST {server.url('/score')} -> 200" in log
    assert "sekrit-token-1234" not in log  # the secret header is masked in the log


def test_http_agent_server_errors_open_the_hosts_circuit(cli, workspace, server):
    _agents(
        workspace,
        flaky={
            "url": server.url("/broken"),
            "circuit_breaker": {"failures": 2, "cool_down_seconds": 3600},
        },
    )
    path = write_definition(
        workspace,
        {
            "call": {
                "action": "agent_task",
                "agent_id": "flaky",
                "parameters": {"n": 1},
                "retry_count": 3,
                "retry_delay": 0,
            }
        },
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 1, result
    task = _state(workspace, result.json()["id"])["tasks"]["call"]
    assert task["attempts"] == 4
    assert task["error"]["kind"] == "circuit_open"
    assert len(server.requests) == 2  # the open circuit failed attempts 3 and 4 at once
    breakers = json.loads((workspace / "monitoring" / "breakers.json").read_text())
    assert [b["state"] for b in breakers.values()] == ["open"]


def test_http_agent_answer_that_is_not_json_fails_without_retry(cli, workspace, server):
    _agents(workspace, texty={"url": server.url("/text")})
    path = write_definition(
        workspace,
        {"t": {"action": "agent_task", "agent_id": "texty", "retry_count": 2, "retry_delay": 0}},
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 1, result
    task = _state(workspace, result.json()["id"])["tasks"]["t"]
    assert (task["attempts"], task["error"]["kind"]) == (1, "bad_output")
    assert "not JSON" in task["error"]["message"]


def test_http_agent_timeout(cli, workspace, server):
    _agents(workspace, slow={"url": server.url("/slow"), "timeout_seconds": 0.3})
    path = write_definition(workspace, {"t": {"action": "agent_task", "agent_id": "slow"}})
    result = cli("run", str(path), "--json")
    assert result.exit_code == 1, result
    task = _state(workspace, result.json()["id"])["tasks"]["t"]
    assert task["error"]["kind"] == "timeout"


def test_bad_http_agent_declaration_is_reported(cli, workspace):
    _agents(workspace, bad={"url": "ftp://example.com/x"}, worse={"url": "http://h", "headers": 3})
    path = write_definition(workspace, {"t": {"action": "agent_task", "agent_id": "bad"}})
    result = cli("validate", str(path))
    assert result.exit_code == 2, result
    assert "/agents/bad/url: must be an http:// or https:// URL" in result.stderr
    assert "/agents/worse/headers" in result.stderr


def test_http_agent_header_from_a_declared_secret(cli, workspace, server, monkeypatch):
    monkeypatch.setenv("SCORER_TOKEN", "tok-9f8e7d6c5b")
    (workspace / "workflow_cli.yaml").write_text("secrets:\n  scorer_token: {env: SCORER_TOKEN}\n")
    _agents(
        workspace,
        scorer={
            "url": server.url("/score"),
            "headers": {"Authorization": "Bearer {{ secrets.scorer_token }}"},
        },
    )
    path = write_definition(
        workspace,
        {"score": {"action": "agent_task", "agent_id": "scorer", "parameters": {"words": []}}},
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    [request] = server.requests
    assert request["headers"]["authorization"] == "Bearer tok-9f8e7d6c5b"
    folder = workspace / "instances" / result.json()["id"]
    for written in folder.rglob("*"):
        if written.is_file():
            assert b"tok-9f8e7d6c5b" not in written.read_bytes(), written


def test_http_agent_on_this_machine_is_reached_without_the_proxy(
    cli, workspace, server, monkeypatch
):
    # A proxy that refuses every connection: a request sent through it would fail.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://192.0.2.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    _agents(workspace, scorer={"url": server.url("/score"), "timeout_seconds": 5})
    path = write_definition(
        workspace,
        {"s": {"action": "agent_task", "agent_id": "scorer", "parameters": {"words": ["x"]}}},
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    assert len(server.requests) == 1
