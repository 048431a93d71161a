"""Crash recovery with a real ``kill -9`` of the runner.

A command agent appends one line to ``effects/<task>.log`` each time it runs, so the
tests can count how often each task really ran. The runner is killed at several points
(after the N-th journal line, or while agents are in flight); ``resume`` must then finish
the instance with every task run at least once, and no task that the journal recorded
completed at the moment of the kill may run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.errors import ExitCode
from workflow_cli.store.instances import STATE_FILE, load_state, read_state_cache
from workflow_cli.store.journal import Journal, decode_line

AGENT = '''\
"""Test agent: optionally waits at a barrier, then records one effect and prints JSON."""
import json, os, sys, time

task = os.environ["WORKFLOW_TASK"]
params = json.load(sys.stdin)
hold = set(open("hold").read().split()) if os.path.exists("hold") else set()
if task in hold and not os.path.exists("release"):
    os.makedirs("inflight", exist_ok=True)
    with open(os.path.join("inflight", "." + task), "w") as marker:
        marker.write(str(os.getpid()))
    os.rename(os.path.join("inflight", "." + task), os.path.join("inflight", task))
    deadline = time.monotonic() + 10
    while not os.path.exists("release") and time.monotonic() < deadline:
        time.sleep(0.005)
time.sleep(float(os.environ.get("AGENT_SLEEP", "0")))
fd = os.open(os.path.join("effects", task + ".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
try:
    os.write(fd, (task + "\\n").encode())
finally:
    os.close(fd)
print(json.dumps({"task": task, "attempt": int(os.environ["WORKFLOW_ATTEMPT"]), "got": params}))
'''

CHAIN = ["a", "b", "c"]
FAN = [f"f{i}" for i in range(1, 7)]
TAIL = ["k", "l"]
ALL_TASKS = [*CHAIN, *FAN, "j", *TAIL]
# instance_created, run_started, task_started and task_completed per task, run_ended
FULL_RUN_LINES = 1 + 1 + 2 * len(ALL_TASKS) + 1
POLL = 0.005
WAIT_LIMIT = 20.0


def _task(deps: list[str], **parameters: Any) -> dict[str, Any]:
    return {
        "action": "agent_task",
        "agent_id": "counter",
        "dependencies": deps,
        "parameters": parameters,
    }


def workflow_tasks() -> dict[str, Any]:
    """A chain a → b → c, a fan-out c → f1..f6, a fan-in f* → j, then j → k → l."""
    tasks: dict[str, Any] = {"a": _task([], n=1)}
    tasks["b"] = _task(["a"], prev="{{ steps.a.output.task }}")
    tasks["c"] = _task(["b"], prev="{{ steps.b.output.got.prev }}")
    for name in FAN:
        tasks[name] = _task(["c"], part=name)
    tasks["j"] = _task(FAN, parts=[f"{{{{ steps.{f}.output.got.part }}}}" for f in FAN])
    tasks["k"] = _task(["j"], count="{{ steps.j.output.got.parts | length }}")
    tasks["l"] = _task(["k"], prev="{{ steps.k.output.task }}")
    assert list(tasks) == ALL_TASKS
    return tasks


class Bench:
    """A workspace with the counting agent and one created instance."""

    def __init__(self, root: Path, cli: Callable[..., Result]) -> None:
        self.root = root
        self.agent = root / "agent.py"
        self.agent.write_text(AGENT, encoding="utf-8")
        (root / "agents.yaml").write_text(
            json.dumps({"agents": {"counter": {"command": [sys.executable, str(self.agent)]}}}),
            encoding="utf-8",
        )
        (root / "effects").mkdir()
        definition = write_definition(root, workflow_tasks())
        created = cli("create", str(definition), "--json")
        assert created.exit_code == 0, created
        self.id: str = created.json()["id"]
        self.folder = root / "instances" / self.id
        self.journal = self.folder / "events.jsonl"
        self.cli = cli

    def env(self) -> dict[str, str]:
        return {**os.environ, "WORKFLOW_HOME": str(self.root), "AGENT_SLEEP": "0.02"}

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "workflow_cli", *args],
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workflow_cli", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def journal_lines(self) -> int:
        try:
            return int(self.journal.read_bytes().count(b"\n"))
        except FileNotFoundError:
            return 0

    def events(self) -> list[dict[str, Any]]:
        """Every complete event (checked line by line); a torn last line is left out."""
        return Journal(self.journal, utc_now).read_new()

    def completed(self) -> set[str]:
        return {e["task"] for e in self.events() if e["type"] == "task_completed"}

    def started(self) -> set[str]:
        return {e["task"] for e in self.events() if e["type"] == "task_started"}

    def effects(self) -> dict[str, int]:
        counts = {}
        for task in ALL_TASKS:
            path = self.root / "effects" / f"{task}.log"
            lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
            assert all(line == task for line in lines), (task, lines)
            counts[task] = len(lines)
        return counts

    def in_flight(self) -> set[str]:
        folder = self.root / "inflight"
        if not folder.is_dir():
            return set()
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")}

    def kill_orphan_agents(self) -> None:
        """Agents run in their own session, so they outlive a killed runner; end the ones
        that wait at the barrier (by the pids they wrote, checking each is our agent)."""
        folder = self.root / "inflight"
        if not folder.is_dir():
            return
        pids = []
        for task in self.in_flight():
            pid = int((folder / task).read_text())
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(self.agent).encode() in cmdline:
                os.kill(pid, signal.SIGKILL)
                pids.append(pid)
        wait_until(lambda: not any(_alive(pid) for pid in pids), "orphan agents to end")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Callable[[], bool], what: str, limit: float = WAIT_LIMIT) -> None:
    deadline = time.monotonic() + limit
    for _ in range(int(limit / POLL) + 1):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    raise AssertionError(f"timed out after {limit:g}s waiting for {what}")


@pytest.fixture
def bench(workspace: Path, cli: Callable[..., Result]) -> Iterator[Bench]:
    made = Bench(workspace, cli)
    yield made
    (workspace / "release").touch()  # let any agent still at the barrier go
    made.kill_orphan_agents()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL, process.returncode


def check_recovery(bench: Bench, done_at_kill: set[str], effects_at_kill: dict[str, int]) -> None:
    """After a kill: the instance shows a dead runner; resume finishes it; nothing that
    was recorded completed ran again; everything ran at least once."""
    status = bench.cli("status", bench.id, "--json")
    assert status.exit_code == 0, status
    assert status.json()["state"] == "running"

    resumed = bench.run("resume", bench.id)
    assert resumed.returncode == 0, resumed
    assert "Traceback" not in resumed.stderr

    final = bench.cli("status", bench.id, "--json").json()
    assert final["state"] == "completed"
    assert {t: s["state"] for t, s in final["tasks"].items()} == dict.fromkeys(
        ALL_TASKS, "completed"
    )
    assert final["tasks"]["j"]["output"]["got"]["parts"] == FAN
    assert final["tasks"]["k"]["output"]["got"]["count"] == len(FAN)
    assert final["tasks"]["c"]["output"]["got"]["prev"] == "a"

    # Every file parses; the journal's sequence numbers run 1, 2, 3, … with no gap.
    events = bench.events()
    lines = bench.journal.read_bytes().splitlines(keepends=True)
    assert [decode_line(line, bench.id) for line in lines] == events  # no torn tail left
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for path in bench.folder.rglob("*.json"):
        json.loads(path.read_text(encoding="utf-8"))
    cache = read_state_cache(bench.folder / STATE_FILE)
    assert cache is not None  # whole, its checksum holding
    cached, digest = cache
    journal = Journal(bench.journal, utc_now)
    full = load_state(journal, use_cache=False)
    assert cached == full and digest == journal.digest()
    runs = [e for e in events if e["type"] == "run_started"]
    assert [r["recovered"] for r in runs] == [False, True]
    assert events[-1]["type"] == "run_ended" and events[-1]["state"] == "completed"

    # The key property: a task recorded completed before the kill never ran again.
    effects = bench.effects()
    for task in done_at_kill:
        assert effects[task] == effects_at_kill[task] == 1, (task, effects_at_kill, effects)
    assert all(count >= 1 for count in effects.values()), effects
    completions = [e["task"] for e in events if e["type"] == "task_completed"]
    assert sorted(completions) == sorted(ALL_TASKS), completions
    # Tasks started but not completed before the kill ran again, as a new attempt.
    started_before = {
        e["task"] for e in events[: _kill_point(events)] if e["type"] == "task_started"
    }
    for task in started_before - done_at_kill:
        assert final["tasks"][task]["attempts"] >= 2, (task, final["tasks"][task])
    for task in done_at_kill:
        assert final["tasks"][task]["attempts"] == 1


def _kill_point(events: list[dict[str, Any]]) -> int:
    """The index of the second run_started: everything before it was written before the kill."""
    starts = [i for i, e in enumerate(events) if e["type"] == "run_started"]
    return starts[1]


@pytest.mark.parametrize("after_lines", [2, 3, 4, 7, 10, 14, 18, 22, 25])
def test_kill_after_nth_journal_line_then_resume(bench: Bench, after_lines: int) -> None:
    assert after_lines < FULL_RUN_LINES - 1
    runner = bench.start("start", bench.id)
    try:
        wait_until(
            lambda: bench.journal_lines() >= after_lines or runner.poll() is not None,
            f"journal line {after_lines}",
        )
    finally:
        kill(runner)
    assert bench.journal_lines() >= after_lines
    events = bench.events()
    assert all(e["type"] != "run_ended" for e in events), "the run ended before the kill"
    done_at_kill = bench.completed()
    effects_at_kill = bench.effects()
    check_recovery(bench, done_at_kill, effects_at_kill)


@pytest.mark.parametrize(
    ("hold", "wait_for_completed"),
    [
        (["a"], []),  # the very first task in flight
        (FAN, []),  # the fan-out in flight (four at once: the worker limit)
        (["f3"], [f for f in FAN if f != "f3"]),  # one straggler; its siblings completed
        (["k"], ["j"]),  # late in the chain
    ],
    ids=["first", "fan-out", "straggler", "late"],
)
def test_kill_while_agents_are_in_flight(
    bench: Bench, hold: list[str], wait_for_completed: list[str]
) -> None:
    (bench.root / "hold").write_text(" ".join(hold))
    runner = bench.start("start", bench.id, "--max-workers", "4")
    at_once = min(len(hold), 4)
    try:
        wait_until(
            lambda: len(bench.in_flight()) >= at_once or runner.poll() is not None,
            f"{at_once} of {hold} in flight",
        )
        # An agent may start before its task_started record is written; wait for it.
        wait_until(
            lambda: bench.started() >= bench.in_flight() or runner.poll() is not None,
            "the in-flight tasks' task_started records",
        )
        wait_until(
            lambda: bench.completed() >= set(wait_for_completed) or runner.poll() is not None,
            f"{wait_for_completed} completed",
        )
    finally:
        kill(runner)
    expected_in_flight = bench.in_flight()
    assert len(expected_in_flight) == at_once and expected_in_flight <= set(hold)
    done_at_kill = bench.completed()
    assert not done_at_kill & expected_in_flight
    assert done_at_kill >= set(wait_for_completed)
    bench.kill_orphan_agents()  # in flight at the kill: they must not finish later
    effects_at_kill = bench.effects()
    for task in expected_in_flight:
        assert effects_at_kill[task] == 0
    (bench.root / "release").touch()

    check_recovery(bench, done_at_kill, effects_at_kill)
    final = bench.cli("status", bench.id, "--json").json()
    for task in expected_in_flight:  # in flight at the kill: ran again, exactly once more
        assert final["tasks"][task]["attempts"] == 2
        assert bench.effects()[task] == 1


def test_second_start_while_a_runner_holds_the_instance_is_refused(bench: Bench) -> None:
    (bench.root / "hold").write_text("a")
    runner = bench.start("start", bench.id)
    try:
        wait_until(lambda: "a" in bench.in_flight() or runner.poll() is not None, "a in flight")
        assert runner.poll() is None
        before = bench.journal.read_bytes()
        for command in ("start", "resume"):
            second = bench.run(command, bench.id)
            assert second.returncode == int(ExitCode.BUSY), second
            assert "being run by another process" in second.stderr
            assert "Traceback" not in second.stderr
        assert bench.journal.read_bytes() == before
        (bench.root / "release").touch()
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            kill(runner)
    assert runner.returncode == 0, err
    assert bench.effects() == dict.fromkeys(ALL_TASKS, 1)
    assert bench.cli("status", bench.id, "--json").json()["state"] == "completed"
