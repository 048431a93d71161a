"""A full disk is a clear error with its own exit code, and nothing is lost: the journal
is cut back to its last whole record, the instance is left paused (not running with no
runner), and once there is room again `resume` completes the run.

The workspace lives on a small tmpfs mounted for the test (root only; skipped with the
reason otherwise)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflow_cli.errors import ExitCode
from workflow_cli.store.files import STALE_TEMP_SECONDS, write_atomic
from workflow_cli.store.journal import decode_line

WAIT_LIMIT = 60.0
AGENT = """\
import json, os, sys, time
params = json.load(sys.stdin)
open(os.path.join(os.environ["WORKFLOW_HOME"], "started-" + os.environ["WORKFLOW_TASK"]), "w")
deadline = time.monotonic() + 60
while params.get("block") and not os.path.exists("release") and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"n": params.get("n"), "pad": "x" * params.get("pad", 0)}))
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def cli(home: Path, *args: str, wait: bool = True) -> Any:
    command = [sys.executable, "-m", "workflow_cli", "--home", str(home), *args]
    env = {**os.environ, "WORKFLOW_HOME": str(home)}
    if not wait:
        return subprocess.Popen(command, env=env, cwd=home, text=True, stderr=subprocess.PIPE)
    return subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=120)


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_disk_that_fills_mid_run_pauses_the_instance_and_resume_completes(
    small_disk: Path,
) -> None:
    home = small_disk
    (home / "agent.py").write_text(AGENT)
    (home / "agents.yaml").write_text(
        json.dumps({"agents": {"work": {"command": [sys.executable, str(home / "agent.py")]}}})
    )
    tasks = {
        "a": {
            "action": "agent_task",
            "agent_id": "work",
            "parameters": {"block": True, "n": 1, "pad": 65536},
        },
        "b": {
            "action": "agent_task",
            "agent_id": "work",
            "parameters": {"n": 2},
            "dependencies": ["a"],
        },
    }
    definition = {
        "id": "wf",
        "name": "wf",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": tasks,
    }
    (home / "wf.json").write_text(json.dumps(definition))
    created = cli(home, "create", "wf.json", "--json")
    assert created.returncode == 0, created.stderr
    instance = json.loads(created.stdout)["id"]
    runner = cli(home, "start", instance, wait=False)
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while not (home / "started-a").exists():
            assert time.monotonic() < deadline and runner.poll() is None, "a never started"
            time.sleep(0.01)
        filler = fill(home)
        (home / "release").touch()  # an empty file needs no room
        _, stderr = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        runner.kill()
    assert runner.returncode == ExitCode.DISK_FULL, stderr
    assert "no space left" in stderr and "events.jsonl" in stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    journal = home / "instances" / instance / "events.jsonl"
    data = journal.read_bytes()
    assert b"\0" not in data and data.endswith(b"\n")  # cut back to its last whole record
    events = [decode_line(line, "journal") for line in data.splitlines(keepends=True)]
    assert events[-1]["type"] == "run_ended" and events[-1]["state"] == "paused"
    assert "no space left" in events[-1]["reason"]

    filler.unlink()
    status = cli(home, "status", instance, "--json")
    assert json.loads(status.stdout)["state"] == "paused"
    resumed = cli(home, "resume", instance)
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(cli(home, "status", instance, "--json").stdout)
    assert final["state"] == "completed"
    assert final["tasks"]["b"]["output"] == {"n": 2, "pad": ""}


def test_no_room_to_start_is_a_clear_error_and_changes_nothing(small_disk: Path) -> None:
    home = small_disk
    tasks = {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}
    definition = {
        "id": "wf",
        "name": "wf",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": tasks,
    }
    (home / "wf.json").write_text(json.dumps(definition))
    instance = json.loads(cli(home, "create", "wf.json", "--json").stdout)["id"]
    filler = fill(home)
    journal = home / "instances" / instance / "events.jsonl"
    before = journal.read_bytes()
    started = cli(home, "start", instance)
    assert started.returncode == ExitCode.DISK_FULL, started.stderr
    assert "no space left" in started.stderr and "Traceback" not in started.stderr
    assert journal.read_bytes() == before
    filler.unlink()
    assert cli(home, "start", instance).returncode == 0


def test_temp_files_a_crash_left_are_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "metrics.prom"
    stale = tmp_path / ".metrics.prom.abc123.tmp"
    fresh = tmp_path / ".metrics.prom.def456.tmp"
    stale.write_text("half")
    fresh.write_text("another writer, right now")
    old = time.time() - STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))
    write_atomic(target, b"whole\n")
    assert target.read_text() == "whole\n"
    assert not stale.exists()
    assert fresh.exists()  # too young to be a crash's: another writer may own it
