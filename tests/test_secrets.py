"""Secrets never land in a file or an output: passed every way, then looked for in every
file of the workspace and in what every command shows. Agents still get the real values
(they prove it with a digest), and run data is readable by its owner only."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import Result

ENV_TOKEN = "env-Secret-7f3a9c1e"
FILE_TOKEN = "file-Secret-42b8d0aa"
PARAM_TOKEN = "param-Secret-9e1c77d4"
NAMED_TOKEN = "named-Secret-c0ffee12"
ALL = (ENV_TOKEN, FILE_TOKEN, PARAM_TOKEN, NAMED_TOKEN)

# A command agent that gets secrets in its parameters, proves it (by digest), and tries to
# leak them: in its output, in stderr, and in the error it fails with when asked to.
AGENT = """\
import hashlib, json, sys
params = json.load(sys.stdin)
print("stderr sees", json.dumps(params), file=sys.stderr)
if params.get("fail"):
    print("failing with", params["value"], file=sys.stderr)
    sys.exit(4)
digest = hashlib.sha256(params["value"].encode()).hexdigest()
print(json.dumps({"echo": params["value"], "digest": digest}))
"""


class Echo(BaseHTTPRequestHandler):
    """Answers with what it was sent: headers and the query, as JSON."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def agent_task(value: str, **more: Any) -> dict[str, Any]:
    return {"action": "agent_task", "agent_id": "leaky", "parameters": {"value": value, **more}}


@pytest.fixture
def secret_workspace(workspace: Path, echo_server: str) -> Path:
    (workspace / "leaky.py").write_text(AGENT)
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"leaky": {"command": [sys.executable, "leaky.py"]}}})
    )
    (workspace / "token.txt").write_text(FILE_TOKEN + "\n")
    (workspace / "workflow_cli.yaml").write_text(
        json.dumps({"secrets": {"FROM_FILE": {"file": "token.txt"}}})
    )
    tasks = {
        "env": agent_task("{{ secrets.FROM_ENV }}"),
        "file": agent_task("{{ secrets.FROM_FILE }}"),
        "param": agent_task("{{ params.password }}"),
        "named": agent_task("{{ params.api_token }}"),
        "http": {
            "action": "api_call",
            "parameters": {
                "url": echo_server + "/echo?token={{ secrets.FROM_ENV }}&plain=1",
                "method": "GET",
                "headers": {
                    "Authorization": "Bearer {{ secrets.FROM_FILE }}",
                    "X-Note": "{{ params.password }}",
                },
            },
        },
        "gate": {
            "action": "approval_gate",
            "parameters": {"approvers": ["ann"], "message": "ok with {{ params.api_token }}?"},
            "dependencies": ["env", "file", "param", "named", "http"],
        },
        "broken": {**agent_task("{{ secrets.FROM_ENV }}", fail=True), "dependencies": ["gate"]},
    }
    template = {
        "name": "leaky",
        "parameters": {
            "password": {"type": "string", "secret": True},
            "api_token": {"type": "string"},
        },
        "workflow": {
            "id": "leaky",
            "name": "leaky",
            "version": "1",
            "schema_version": "2.0.0",
            "secrets": {"FROM_ENV": {"env": "LEAKY_TOKEN"}},
            "tasks": tasks,
        },
    }
    (workspace / "templates").mkdir()
    (workspace / "templates" / "leaky.json").write_text(json.dumps(template))
    return workspace


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKFLOW_HOME": str(home), "LEAKY_TOKEN": ENV_TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "workflow_cli", *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_secret_passed_every_way_is_in_no_file_and_no_output(
    secret_workspace: Path, cli: Callable[..., Result]
) -> None:
    home = secret_workspace
    outputs: list[str] = []

    def run(*args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = run_cli(home, *args)
        outputs.extend((done.stdout, done.stderr))
        if code is not None:
            assert done.returncode == code, done
        return done

    created = run(
        "create",
        "leaky",
        "-p",
        f"password={PARAM_TOKEN}",
        "-p",
        f"api_token={NAMED_TOKEN}",
        "--json",
    )
    instance = json.loads(created.stdout)["id"]
    run("start", instance, code=3)
    run("approve", instance, "--as", "ann")
    run("resume", instance, code=1)  # 'broken' fails, saying the secret on its way out
    status = json.loads(run("status", instance, "--json").stdout)
    tasks = status["tasks"]
    for name, value in (
        ("env", ENV_TOKEN),
        ("file", FILE_TOKEN),
        ("param", PARAM_TOKEN),
        ("named", NAMED_TOKEN),
    ):
        assert tasks[name]["state"] == "completed"
        assert tasks[name]["output"]["digest"] == hashlib.sha256(value.encode()).hexdigest()
        assert tasks[name]["output"]["echo"] == "***"  # the agent echoed it: masked
    echoed = tasks["http"]["output"]["json"]
    assert "token=***" in echoed["path"]
    assert echoed["headers"]["Authorization"] == "Bearer ***"
    assert tasks["broken"]["state"] == "failed"
    for args in (
        ["status", instance],
        ["events", instance],
        ["events", instance, "--json"],
        ["monitor", instance, "--duration", "0"],
        ["monitor", instance, "--json", "--duration", "0"],
        ["debug", instance],
        ["debug", instance, "--json"],
        ["debug", instance, "broken"],
        ["health", instance, "--explain"],
        ["list", "--json"],
        ["checkpoints", instance, "--json"],
        ["report", instance, "--html", "report.html"],
    ):
        run(*args, code=None)
    leaks = []
    for path in home.rglob("*"):
        if path.is_file() and path.name not in ("token.txt",):
            data = path.read_bytes()
            leaks += [f"{path.relative_to(home)}: {s}" for s in ALL if s.encode() in data]
    leaks += [f"output: {s}" for text in outputs for s in ALL if s in text]
    assert leaks == []
    log = (home / "instances" / instance / "logs" / "broken.log").read_text()
    assert "failing with ***" in log  # the agent's stderr went through the mask


def test_run_data_is_readable_by_its_owner_only(
    secret_workspace: Path, cli: Callable[..., Result]
) -> None:
    home = secret_workspace
    done = run_cli(home, "run", "leaky", "-p", f"password={PARAM_TOKEN}", "-p", "api_token=x")
    assert done.returncode == 3, done
    for folder in ("instances", "checkpoints", "monitoring"):
        for path in [home / folder, *(home / folder).rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            wanted = 0o700 if path.is_dir() else 0o600
            assert mode & 0o077 == 0, f"{path.relative_to(home)} is {oct(mode)}, not {oct(wanted)}"
    key = home / ".workflow_cli" / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_an_undeclared_secret_is_a_validation_error(cli: Callable[..., Result], workspace: Path):
    definition = {
        "id": "wf",
        "name": "wf",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": {
            "a": {"action": "condition_check", "parameters": {"expression": "secrets.NOPE == 'x'"}}
        },
    }
    (workspace / "wf.json").write_text(json.dumps(definition))
    result = cli("validate", "wf.json", "--json")
    assert result.exit_code == 2
    (problem,) = result.json()["problems"]
    assert "secret 'NOPE', which is not declared" in problem["message"]


def test_a_missing_environment_secret_stops_the_run_before_anything_runs(
    secret_workspace: Path,
) -> None:
    home = secret_workspace
    env = {k: v for k, v in os.environ.items() if k != "LEAKY_TOKEN"}
    env["WORKFLOW_HOME"] = str(home)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflow_cli",
            "run",
            "leaky",
            "-p",
            "password=x",
            "-p",
            "api_token=y",
        ],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done
    assert "the environment variable LEAKY_TOKEN is not set" in done.stderr
    assert "Traceback" not in done.stderr
