"""``logs``: a task's log attempt by attempt, every task's with prefixes, --failed,
--attempt, --follow against a live run; and messages that name the command."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import start_runner, write_definition

PY = sys.executable


def _agent(workspace: Path, name: str, body: str) -> None:
    script = workspace / f"{name}.py"
    script.write_text("import json, os, sys, time, pathlib\n" + textwrap.dedent(body))
    path = workspace / "agents.yaml"
    existing = json.loads(path.read_text()) if path.exists() else {"agents": {}}
    existing["agents"][name] = {"command": [PY, str(script)]}
    path.write_text(json.dumps(existing))


def _task(agent: str, **more: object) -> dict[str, object]:
    return {"action": "agent_task", "agent_id": agent, **more}


def test_logs_by_attempt_failed_only_and_every_task(cli, workspace):
    _agent(
        workspace,
        "flaky",
        """
        counter = pathlib.Path("flaky.count")
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        print(f"line of attempt {n}", file=sys.stderr)
        if n == 1:
            sys.exit(3)
        print("{}")
        """,
    )
    _agent(workspace, "other", 'print("other says hello", file=sys.stderr)\nprint("{}")\n')
    path = write_definition(
        workspace,
        {
            "flaky": _task("flaky", retry_count=2, retry_delay=0.01),
            "other": _task("other", dependencies=["flaky"]),
        },
    )
    instance = cli("run", str(path), "--json").json()["id"]

    one = cli("logs", instance, "flaky")
    assert one.exit_code == 0
    assert one.stdout.splitlines() == [
        "--- attempt 1 (retried) ---",
        "line of attempt 1",
        "--- attempt 2 (completed) ---",
        "line of attempt 2",
    ]
    assert cli("logs", instance, "flaky", "--attempt", "2").stdout.splitlines() == [
        "--- attempt 2 (completed) ---",
        "line of attempt 2",
    ]
    assert cli("logs", instance, "--failed").stdout.splitlines() == [
        "flaky | --- attempt 1 (retried) ---",
        "flaky | line of attempt 1",
    ]
    every = cli("logs", instance).stdout.splitlines()
    assert every[-2:] == ["other | --- attempt 1 (completed) ---", "other | other says hello"]
    assert every[0] == "flaky | --- attempt 1 (retried) ---"  # in the order they started
    as_json = cli("logs", instance, "other", "--json").json()
    assert as_json[0]["lines"] == ["other says hello"] and as_json[0]["outcome"] == "completed"
    assert "no matching log lines" in cli("logs", instance, "other", "--failed").stderr

    unknown = cli("logs", instance, "flakey")
    assert unknown.exit_code == 2 and "did you mean 'flaky'" in unknown.stderr
    assert cli("logs", instance, "--follow", "--json").exit_code == 2


def test_a_failed_run_names_logs_and_debug(cli, workspace):
    _agent(workspace, "broken", 'print("Traceback: it broke", file=sys.stderr)\nsys.exit(2)\n')
    path = write_definition(workspace, {"b": _task("broken")})
    result = cli("run", str(path))
    assert result.exit_code == 1
    instance = result.stdout.split()[1]  # "created ID"
    assert f"(see: workflow_cli logs {instance} b)" in result.stdout
    assert result.stdout.rstrip().endswith(f"what went wrong: workflow_cli debug {instance}")
    assert "Traceback: it broke" in cli("logs", instance, "b").stdout


def _read_until(process: subprocess.Popen[str], wanted: str, timeout: float) -> str:
    """What `process` printed until a line holding `wanted` (bounded by `timeout`)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()  # read raw: a buffered reader would hide what select sees
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} within {timeout}s; saw {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"output ended before {wanted!r}; saw {seen!r}"
            seen += chunk
    return seen.decode()


def test_follow_prints_lines_of_a_live_run_as_they_come(workspace):
    _agent(
        workspace,
        "slow",
        """
        print("first line", file=sys.stderr, flush=True)
        for _ in range(600):
            if os.path.exists("release"):
                break
            time.sleep(0.1)
        print("second line", file=sys.stderr, flush=True)
        print("{}")
        """,
    )
    instance, runner = start_runner(workspace, write_definition(workspace, {"s": _task("slow")}))
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    follower = None
    try:
        deadline = time.monotonic() + 60
        log = workspace / "instances" / instance / "logs" / "s.log"
        while not (log.exists() and "first line" in log.read_text()):
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
        follower = subprocess.Popen(
            [PY, "-m", "workflow_cli", "logs", instance, "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        early = _read_until(follower, "first line", 60)
        assert "second line" not in early  # printed while the task still runs
        (workspace / "release").write_text("")
        rest = _read_until(follower, "second line", 60)
        assert "s | second line" in rest
        assert follower.wait(timeout=60) == 0
        assert follower.stderr is not None
        errors = follower.stderr.read()
        assert "no run of" in errors  # it ended with the run
        assert runner.wait(timeout=60) == 0
    finally:
        for process in (runner, follower):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
