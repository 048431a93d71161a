"""Recovery under real crashes: a crash-point sweep, a soak of random kills, torn and
damaged journals, and many commands at once on one instance.

The runner is a real subprocess. ``WORKFLOW_CLI_KILL_AFTER_APPEND=N`` makes it send
itself SIGKILL right after its N-th journal append — exactly ``kill -9`` at a chosen
point. Agents are Python callables that append one line to ``effects/TASK`` per run, so
the tests count how often each task's side effect really happened.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.store.journal import Journal

AGENT = """\
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def run(params):
    path = os.path.join(HERE, "effects", params["task"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"x\\n")
    finally:
        os.close(fd)
    return {"task": params["task"], "after": params["after"]}
"""
TIMEOUT = 120


@pytest.fixture(autouse=True)
def agent(workspace: Path) -> None:
    (workspace / "effects_agent.py").write_text(AGENT)
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"effect": {"callable": "effects_agent:run"}}})
    )
    (workspace / "effects").mkdir()


def dag(names: list[str], deps: dict[str, list[str]]) -> dict[str, Any]:
    return {
        name: {
            "action": "agent_task",
            "agent_id": "effect",
            "dependencies": deps[name],
            "parameters": {
                "task": name,
                "after": [f"{{{{ steps.{d}.output.task }}}}" for d in deps[name]],
            },
        }
        for name in names
    }


def twenty_tasks() -> dict[str, Any]:
    """A chain, two fan-outs with their joins, and a tail: 20 tasks."""
    names = [f"t{i:02d}" for i in range(20)]
    deps: dict[str, list[str]] = {"t00": []}
    for i in range(1, 6):
        deps[names[i]] = ["t00"]
    deps["t06"] = names[1:6]
    for i in range(7, 13):
        deps[names[i]] = ["t06"]
    deps["t13"] = names[7:13]
    for i in range(14, 20):
        deps[names[i]] = [names[i - 1]]
    return dag(names, deps)


def random_dag(count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    names = [f"n{i:03d}" for i in range(count)]
    deps = {
        name: sorted(rng.sample(names[max(0, i - 20) : i], min(i, rng.randint(0, 3))))
        for i, name in enumerate(names)
    }
    return dag(names, deps)


def cli_run(workspace: Path, *args: str, kill_after: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    env.pop("WORKFLOW_CLI_KILL_AFTER_APPEND", None)
    if kill_after:
        env["WORKFLOW_CLI_KILL_AFTER_APPEND"] = str(kill_after)
    return subprocess.run(
        [sys.executable, "-m", "workflow_cli", *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def journal_events(workspace: Path, instance: str) -> list[dict[str, Any]]:
    """Every event, read with checks: seq numbers must be contiguous from 1."""
    events = Journal(workspace / "instances" / instance / "events.jsonl", utc_now).read_new()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


def effects(workspace: Path) -> dict[str, int]:
    return {p.name: len(p.read_text().splitlines()) for p in (workspace / "effects").iterdir()}


def final_view(cli: Callable[..., Result], instance: str) -> dict[str, Any]:
    status = cli("status", instance, "--json").json()
    tasks = {t: (v["state"], v["output"]) for t, v in status["tasks"].items()}
    return {"state": status["state"], "tasks": tasks}


def every_file_parses(workspace: Path, instance: str) -> None:
    folder = workspace / "instances" / instance
    for name in ("definition.json", "state.json"):
        json.loads((folder / name).read_text())
    for path in (workspace / "checkpoints" / instance).glob("*.json"):
        json.loads(path.read_text())
    from workflow_cli.store.checkpoints import list_checkpoints
    from workflow_cli.store.workspace import Workspace

    assert all(c.valid for c in list_checkpoints(Workspace(workspace), instance))


def create(cli: Callable[..., Result], workspace: Path, tasks: dict[str, Any], **extra: Any) -> str:
    created = cli("create", str(write_definition(workspace, tasks, **extra)), "--json")
    assert created.exit_code == 0, created
    return str(created.json()["id"])


def test_crash_point_sweep(workspace: Path, cli: Callable[..., Result]) -> None:
    """Kill after the N-th journal append for every N; resume must end where an
    uncrashed run ends."""
    tasks = twenty_tasks()
    reference = create(cli, workspace, tasks, checkpoint_interval=5)
    clean = cli_run(workspace, "start", reference)
    assert clean.returncode == 0, clean.stderr
    expected = final_view(cli, reference)
    assert expected["state"] == "completed"
    for n in range(1, 200):  # until the kill comes after the run's last append
        shutil.rmtree(workspace / "effects")
        (workspace / "effects").mkdir()
        instance = create(cli, workspace, tasks, checkpoint_interval=5)
        crashed = cli_run(workspace, "start", instance, kill_after=n)
        if crashed.returncode == 0:
            break  # fewer appends than N: the run ended uncrashed
        assert crashed.returncode == -9, (n, crashed.stderr)
        before = journal_events(workspace, instance)
        done_before = {e["task"] for e in before if e["type"] == "task_completed"}
        effects_before = effects(workspace)
        if before[-1]["type"] == "run_ended":  # killed after its very last append
            assert final_view(cli, instance) == expected
            break
        resumed = cli_run(workspace, "resume", instance)
        assert resumed.returncode == 0, (n, resumed.stderr)
        assert final_view(cli, instance)["tasks"] == expected["tasks"], n
        every_file_parses(workspace, instance)
        counts = effects(workspace)
        assert set(counts) == set(tasks), n
        for task in done_before:
            assert counts[task] == effects_before[task], (n, task)  # never ran again
    else:
        pytest.fail("the run still crashed after 200 appends")
    assert n > 10, "the sweep covered too few points"
    assert journal_events(workspace, instance)[-1]["type"] == "run_ended"


def test_soak_of_random_kills(workspace: Path, cli: Callable[..., Result]) -> None:
    """A 200-task DAG killed at 50 random moments and resumed each time."""
    tasks = random_dag(200, seed=7)
    instance = create(cli, workspace, tasks)
    rng = random.Random(11)
    kills = 0
    command = "start"
    for _ in range(400):
        if kills >= 50:
            break
        before = journal_events(workspace, instance)
        done_before = {e["task"] for e in before if e["type"] == "task_completed"}
        effects_before = effects(workspace)
        result = cli_run(workspace, command, instance, kill_after=rng.randint(1, 3))
        command = "resume"
        counts = effects(workspace)
        for task in done_before:
            assert counts[task] == effects_before[task], task
        if result.returncode == 0:
            break
        assert result.returncode == -9, result.stderr
        kills += 1
    assert kills >= 50
    last = cli_run(workspace, "resume", instance)
    assert last.returncode in (0, 2), last.stderr  # 2: it had already completed
    assert cli("status", instance, "--json").json()["state"] == "completed"
    events = journal_events(workspace, instance)
    completions: dict[str, int] = {}
    starts: dict[str, int] = {}
    for event in events:
        if event["type"] == "task_completed":
            completions[event["task"]] = completions.get(event["task"], 0) + 1
        if event["type"] == "task_started":
            starts[event["task"]] = starts.get(event["task"], 0) + 1
    counts = effects(workspace)
    for task in tasks:
        assert completions[task] == 1, task
        # applied once per completion, plus at most the attempts a kill cut short
        assert completions[task] <= counts[task] <= starts[task], task


def _paused_instance(workspace: Path, cli: Callable[..., Result]) -> str:
    instance = create(cli, workspace, twenty_tasks())
    crashed = cli_run(workspace, "start", instance, kill_after=6)
    assert crashed.returncode == -9, crashed.stderr
    return instance


def test_resume_works_with_the_journal_cut_at_every_byte_of_its_last_record(
    workspace: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    instance = _paused_instance(workspace, cli)
    folder = workspace / "instances" / instance
    saved = tmp_path / "saved"
    shutil.copytree(folder, saved)
    data = (saved / "events.jsonl").read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last_start, len(data)):
        shutil.rmtree(folder)
        shutil.copytree(saved, folder)
        (folder / "events.jsonl").write_bytes(data[:cut])
        (folder / "state.json").unlink()
        resumed = cli("resume", instance)
        assert resumed.exit_code == 0, (cut, resumed)
        assert cli("status", instance, "--json").json()["state"] == "completed"
        journal_events(workspace, instance)


def test_a_flipped_byte_in_the_middle_is_refused_and_nothing_changes(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    instance = _paused_instance(workspace, cli)
    folder = workspace / "instances" / instance
    data = (folder / "events.jsonl").read_bytes()
    lines = data.splitlines(keepends=True)
    start = sum(len(line) for line in lines[:2])
    for position in range(start, start + len(lines[2]) - 1):
        damaged = bytearray(data)
        damaged[position] ^= 0x20
        (folder / "events.jsonl").write_bytes(bytes(damaged))
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        resumed = cli("resume", instance)
        assert resumed.exit_code == 5, (position, resumed)
        assert "damaged" in resumed.stderr and "Traceback" not in resumed.stderr
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == files


def test_twenty_commands_at_once_lose_and_duplicate_nothing(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    tasks = {
        "a": {**twenty_tasks()["t00"], "milestone": True},
        "gate": {
            "action": "approval_gate",
            "parameters": {"approvers": ["ana"], "message": "go?"},
            "dependencies": ["a"],
        },
    }
    instance = create(cli, workspace, tasks)
    assert cli("start", instance).exit_code == 3
    before = journal_events(workspace, instance)
    commands = (
        [["status", instance, "--json"]] * 4
        + [["approve", instance, "gate", "--as", "ana", "--json"]] * 4
        + [["stop", instance, "--json"]] * 4
        + [["checkpoint", instance, "--json"]] * 4
        + [["rollback", instance, "--checkpoint", "1", "--yes", "--json"]] * 4
    )
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "workflow_cli", *args],
            cwd=workspace,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    for args, process in zip(commands, processes, strict=True):
        out, err = process.communicate(timeout=TIMEOUT)
        results.append((args[0], process.returncode, out, err))
    for name, code, _, err in results:
        assert code in (0, 2, 4), (name, code, err)
        assert "Traceback" not in err and "internal error" not in err, err
        if code == 4:
            assert "busy" in err, err
    events = journal_events(workspace, instance)[len(before) :]
    ok = {
        name: sum(1 for n, code, _, _ in results if n == name and code == 0)
        for name in ("approve", "checkpoint", "rollback", "stop")
    }
    kinds = [e["type"] for e in events]
    # One decision each; an approve that comes after a rollback to before the gate waited
    # finds nothing waiting (the processes may run in any order on a busy machine).
    assert kinds.count("approval_recorded") == ok["approve"]
    for name, code, _, err in results:
        if name == "approve" and code == 2:
            assert "one decision each" in err or "not waiting" in err, err
    made = [e for e in events if e["type"] == "checkpoint_created" and e["kind"] == "manual"]
    assert len(made) == ok["checkpoint"] == 4
    assert len({e["checkpoint"] for e in events if e["type"] == "checkpoint_created"}) == len(
        [e for e in events if e["type"] == "checkpoint_created"]
    )
    assert kinds.count("rolled_back") == ok["rollback"]
    stops = [json.loads(out) for n, code, out, _ in results if n == "stop" and code == 0]
    by_hand = [s for s in stops if s["message"] != "already paused"]
    assert not any(s["requested"] for s in stops)  # no runner: nobody to ask
    assert kinds.count("stop_requested") == 0
    ended = [e for e in events if e["type"] == "run_ended"]
    assert len(ended) == len(by_hand) and all(e["reason"].startswith("stopped") for e in ended)
    statuses = [json.loads(out) for n, code, out, _ in results if n == "status"]
    assert all(s["id"] == instance for s in statuses)
