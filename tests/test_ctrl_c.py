"""Ctrl-C: the runner answers at once with what it waits for; a second one interrupts;
an attempt cut short by a stop uses up no retry; Ctrl-C in ``monitor`` ends only the
watching. Real runner processes, real signals, and a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import start_runner, write_definition

PY = sys.executable
WAIT_LIMIT = 60.0

# Attempt 1 holds until ./release exists (writing its pid first); with FAIL_SECOND set,
# attempt 2 fails; any other attempt succeeds.
AGENT = """\
import json, os, sys, time
task, attempt = os.environ["WORKFLOW_TASK"], int(os.environ["WORKFLOW_ATTEMPT"])
os.makedirs("pids", exist_ok=True)
scratch = os.path.join("pids", ".%d" % os.getpid())
with open(scratch, "w") as handle:
    handle.write(str(os.getpid()))
os.replace(scratch, os.path.join("pids", f"{task}.{attempt}"))  # whole
if attempt == 1:
    for _ in range(1200):
        if os.path.exists("release"):
            break
        time.sleep(0.05)
elif attempt == 2 and os.path.exists("fail_second"):
    print("second attempt fails", file=sys.stderr)
    sys.exit(1)
print("{}")
"""


def _setup(workspace: Path, tasks: dict[str, dict[str, object]]) -> Path:
    (workspace / "agent.py").write_text(AGENT)
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"hold": {"command": [PY, str(workspace / "agent.py")]}}})
    )
    return write_definition(workspace, tasks)


def _hold(*deps: str, **more: object) -> dict[str, object]:
    return {"action": "agent_task", "agent_id": "hold", "dependencies": list(deps), **more}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _stdout_line(runner: subprocess.Popen[str], wanted: str) -> str:
    """Lines of the runner's output up to the one holding `wanted` (bounded)."""
    import select

    assert runner.stdout is not None
    fd, seen = runner.stdout.fileno(), b""
    deadline = time.monotonic() + WAIT_LIMIT
    while wanted.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r}; saw {seen!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"output ended before {wanted!r}; saw {seen!r}"
            seen += chunk
    return seen.decode()


def test_ctrl_c_says_at_once_what_it_waits_for_and_twice_interrupts(workspace, cli):
    path = _setup(workspace, {"build_a": _hold(), "build_b": _hold(), "ship": _hold("build_a")})
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "build_a.1").exists(), "build_a to start")
        wait_until(lambda: (workspace / "pids" / "build_b.1").exists(), "build_b to start")
        runner.send_signal(signal.SIGINT)
        said = _stdout_line(runner, "Ctrl-C again")
        assert "stopping: waiting for build_a, build_b — Ctrl-C again to interrupt them" in said
        assert runner.poll() is None  # both still run: the message came before they ended
        runner.send_signal(signal.SIGINT)
        out, _ = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130
    assert "build_a: interrupted; it runs again on resume (no retry used up)" in out
    assert f"go on with: workflow_cli resume {instance}" in out


def test_an_attempt_cut_short_by_a_stop_uses_up_no_retry(workspace, cli):
    path = _setup(workspace, {"t": _hold(retry_count=1, retry_delay=0.01)})
    (workspace / "fail_second").write_text("")
    instance, runner = start_runner(workspace, path)
    try:
        wait_until(lambda: (workspace / "pids" / "t.1").exists(), "t to start")
        runner.send_signal(signal.SIGINT)
        _stdout_line(runner, "Ctrl-C again")
        runner.send_signal(signal.SIGINT)
        runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130
    assert cli("status", instance, "--json").json()["tasks"]["t"]["state"] == "pending"
    # Attempt 2 fails; its one retry is still there, as attempt 1 was cut short.
    resumed = cli("resume", instance, "--json")
    assert resumed.exit_code == 0, resumed
    task = cli("status", instance, "--json").json()["tasks"]["t"]
    assert task["state"] == "completed" and task["attempts"] == 3 and task["interrupted"] == 1


def test_ctrl_c_in_monitor_stops_watching_and_the_run_goes_on(workspace, cli):
    path = _setup(workspace, {"a": _hold()})
    instance, runner = start_runner(workspace, path)
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    try:
        wait_until(lambda: (workspace / "pids" / "a.1").exists(), "a to start")
        watcher = subprocess.Popen(
            [PY, "-m", "workflow_cli", "monitor", instance],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _stdout_line(watcher, ": running, ")
        watcher.send_signal(signal.SIGINT)
        _, errors = watcher.communicate(timeout=WAIT_LIMIT)
        assert watcher.returncode == 0, errors
        assert "stopped watching; the run goes on" in errors
        assert "Traceback" not in errors
        for command in (["events", instance, "--follow"], ["logs", instance, "--follow"]):
            follower = subprocess.Popen(
                [PY, "-m", "workflow_cli", *command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            _stdout_line(follower, "attempt 1")  # it follows the live run
            follower.send_signal(signal.SIGINT)
            _, errors = follower.communicate(timeout=WAIT_LIMIT)
            assert follower.returncode == 0, (command, errors)
            assert "stopped following; the run goes on" in errors, command
        assert runner.poll() is None  # the run goes on
        (workspace / "release").write_text("")
        assert runner.wait(timeout=WAIT_LIMIT) == 0
    finally:
        if runner.poll() is None:
            runner.kill()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_ctrl_c_in_a_real_terminal(workspace, cli, tmp_path):
    path = _setup(workspace, {"build_a": _hold(), "build_b": _hold(), "ship": _hold("build_b")})
    instance = cli("create", str(path)).stdout.strip()
    socket = f"wfc-{os.getpid()}"
    tmux = ["tmux", "-L", socket]
    script = tmp_path / "run.sh"
    script.write_text(
        f"trap : INT\ncd {workspace}\nexport WORKFLOW_HOME={workspace}\n"
        f"{PY} -m workflow_cli start {instance}\necho EXIT=$?\nsleep 120\n"
    )
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", f"sh {script}"],
        check=True,
        timeout=WAIT_LIMIT,
    )

    def screen() -> str:
        shown = subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True, timeout=30
        )
        return shown.stdout

    try:
        wait_until(lambda: (workspace / "pids" / "build_b.1").exists(), "both tasks to start")
        wait_until(lambda: (workspace / "pids" / "build_a.1").exists(), "both tasks to start")
        subprocess.run([*tmux, "send-keys", "-t", "t", "C-c"], check=True, timeout=30)
        wait_until(lambda: "Ctrl-C again" in screen(), "the stop message")
        text = screen()
        assert "stopping: waiting for build_a, build_b — Ctrl-C again to interrupt them" in text
        assert "EXIT=" not in text  # said while the tasks still run
        (workspace / "release").write_text("")
        wait_until(lambda: "EXIT=" in screen(), "the run to end")
        assert "EXIT=130" in screen()
        assert f"workflow_cli resume {instance}" in screen()
    finally:
        subprocess.run([*tmux, "kill-server"], timeout=30, check=False)
