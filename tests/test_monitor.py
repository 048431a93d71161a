"""``monitor``: the live dashboard in a real terminal (tmux), plain lines in a pipe, JSON
lines, and the core that follows a journal (`workflow_cli.monitor.follow`)."""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import start_runner, write_definition

from workflow_cli.monitor.follow import Follower, follow, tail_events
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.workspace import Workspace

PY = sys.executable
TMUX = shutil.which("tmux") or "/usr/bin/tmux"

# An agent that holds its task until the file it is given exists (bounded: it gives up
# with exit code 9 after 30 s), so a test decides when work ends instead of sleeping.
HOLD_AGENT = """\
import json, pathlib, sys, time
params = json.load(sys.stdin)
deadline = time.monotonic() + 30
while not pathlib.Path(params["file"]).exists():
    if time.monotonic() > deadline:
        sys.exit(9)
    time.sleep(0.01)
print(json.dumps({"held": params["file"]}))
"""


def clock() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def write_hold_agent(workspace: Path) -> None:
    (workspace / "hold.py").write_text(HOLD_AGENT)
    agents = {"agents": {"hold": {"command": [PY, str(workspace / "hold.py")]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))  # JSON is YAML


def held_workflow(workspace: Path) -> Path:
    """Two tasks held until the file "go" appears, and one after both."""
    write_hold_agent(workspace)
    hold = {"action": "agent_task", "agent_id": "hold", "parameters": {"file": "go"}}
    return write_definition(
        workspace,
        {
            "hold1": hold,
            "hold2": hold,
            "after": {
                "action": "condition_check",
                "parameters": {"expression": "steps.hold1.output.held == 'go'"},
                "dependencies": ["hold1", "hold2"],
            },
        },
    )


def journal_text(workspace: Path, instance: str) -> str:
    path = workspace / "instances" / instance / "events.jsonl"
    return path.read_text() if path.exists() else ""


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if predicate():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def finished_instance(cli: Any, workspace: Path, tasks: dict[str, Any]) -> tuple[int, str]:
    path = write_definition(workspace, tasks)
    result = cli("run", str(path), "--json")
    return result.exit_code, result.json()["id"]


def check(expression: str = "1", **more: Any) -> dict[str, Any]:
    return {"action": "condition_check", "parameters": {"expression": expression}, **more}


# -- the dashboard in a real terminal -------------------------------------------------


@pytest.mark.skipif(not Path(TMUX).exists(), reason="tmux is not installed")
def test_dashboard_in_tmux_follows_a_live_run_to_its_end(workspace):
    instance, runner = start_runner(workspace, held_workflow(workspace))
    socket = f"wfmon-{uuid.uuid4().hex[:8]}"
    tmux = [TMUX, "-L", socket, "-f", "/dev/null"]
    monitor = [PY, "-m", "workflow_cli", "--home", str(workspace), "monitor", instance]
    # The shell keeps the pane open after monitor exits, so its last frame stays on screen.
    command = f"{shlex.join([*monitor, '--interval', '0.1'])}; echo monitor-exit=$?; sleep 60"

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "mon"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    try:
        subprocess.run(
            [*tmux, "new-session", "-d", "-x", "120", "-y", "40", "-s", "mon", command],
            check=True,
            timeout=10,
            cwd=workspace,
        )
        wait_for(
            lambda: "0/3 tasks completed, 2 running" in screen(),
            "the dashboard with two tasks running",
        )
        live = screen()
        lines = live.splitlines()
        assert instance in lines[0] and "running" in lines[0]
        assert "━" in live  # the progress bar
        rows = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1]}
        assert rows["hold1"][:2] == ["running", "1"]
        assert rows["hold2"][:2] == ["running", "1"]
        assert rows["after"][0] == "pending"
        assert "latest events" in live and "hold1: started (attempt 1)" in live
        assert "resources" in live

        (workspace / "go").write_text("released")
        wait_for(lambda: "monitor-exit=" in screen(), "monitor to end with the run")
        final = screen()
        assert "monitor-exit=0" in final
        assert f"{instance}  wf  completed" in final
        assert "3/3 tasks completed" in final
        for task in ("hold1", "hold2", "after"):
            assert any(line.split()[:2] == [task, "completed"] for line in final.splitlines())
        assert "run ended completed" in final
        out, err = runner.communicate(timeout=30)
        assert runner.returncode == 0, (out, err)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=10)
        (workspace / "go").write_text("released")  # never leave the agents waiting
        runner.kill()
        runner.wait(timeout=30)


# -- plain lines and JSON lines --------------------------------------------------------


def _spawn_monitor(workspace: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    return subprocess.Popen(
        [PY, "-m", "workflow_cli", "monitor", *args],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(workspace.parent / "monitor-stderr.txt").open("w"),
        text=True,
    )


def _rest(process: subprocess.Popen[str], workspace: Path) -> tuple[str, str]:
    """What the process prints until it ends (bounded), and its stderr. Read through the
    same buffered stream as `_first_line`, so nothing it buffered is lost."""
    assert process.stdout is not None
    process.wait(timeout=60)
    return process.stdout.read(), (workspace.parent / "monitor-stderr.txt").read_text()


def _first_line(process: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout), "monitor printed nothing"
    return process.stdout.readline()


def test_plain_lines_when_output_is_not_a_terminal(workspace):
    instance, runner = start_runner(workspace, held_workflow(workspace))
    monitor = _spawn_monitor(workspace, instance, "--interval", "0.05")
    try:
        wait_for(lambda: journal_text(workspace, instance).count('"task_started"') == 2, "starts")
        first = _first_line(monitor)
        assert first.startswith(f"{instance}: ")
        assert "tasks completed" in first
        (workspace / "go").write_text("released")
        out, err = _rest(monitor, workspace)
    finally:
        (workspace / "go").write_text("released")
        monitor.kill()
        runner.kill()
        runner.wait(timeout=30)
    assert monitor.returncode == 0, err
    lines = out.splitlines()
    assert "\x1b" not in out  # no terminal codes in a pipe
    for task in ("hold1", "hold2", "after"):
        assert any(f" {task}: completed in " in line for line in lines), (
            task,
            out,
        )
    assert any(line.endswith("run ended completed") for line in lines)
    assert lines[-1].startswith(f"{instance}: completed, 3/3 tasks completed")
    # Every change line is "HH:MM:SS what happened".
    for line in lines[:-1]:
        assert line[2] == ":" and line[5] == ":" and line[8] == " ", line


def test_json_streams_every_event_as_a_json_line(workspace):
    instance, runner = start_runner(workspace, held_workflow(workspace))
    monitor = _spawn_monitor(workspace, instance, "--json", "--interval", "0.05")
    try:
        first = json.loads(_first_line(monitor))
        assert first["type"] == "instance_created" and first["seq"] == 1
        (workspace / "go").write_text("released")
        out, err = _rest(monitor, workspace)
    finally:
        (workspace / "go").write_text("released")
        monitor.kill()
        runner.kill()
        runner.wait(timeout=30)
    assert monitor.returncode == 0, err
    events = [first] + [json.loads(line) for line in out.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "run_ended" and events[-1]["state"] == "completed"
    assert all("crc" not in e for e in events)
    journal = [json.loads(line) for line in journal_text(workspace, instance).splitlines()]
    assert len(events) == len(journal)


def test_monitor_of_a_finished_instance_shows_it_once(cli, workspace):
    code, done = finished_instance(cli, workspace, {"a": check()})
    assert code == 0
    result = cli("monitor", done)
    assert result.exit_code == 0, result
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith(f"{done}: completed, 1/1 tasks completed")
    code, failed = finished_instance(cli, workspace, {"bad": check("1 / 0")})
    assert code == 1
    result = cli("monitor", failed)
    assert result.exit_code == 1
    assert f"{failed}: failed, 0/1 tasks completed, 1 failed" in result.stdout
    code, waiting = finished_instance(
        cli, workspace, {"gate": {"action": "approval_gate", "parameters": {"approvers": ["ann"]}}}
    )
    assert code == 3
    assert cli("monitor", waiting).exit_code == 3
    lines = cli("monitor", done, "--json").stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines][-1] == "run_ended"


def test_duration_zero_shows_one_frame_of_a_created_instance(cli, workspace):
    path = write_definition(workspace, {"a": check()})
    instance = cli("create", str(path)).stdout.strip()
    result = cli("monitor", instance, "--duration", "0")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"{instance}: created, 0/1 tasks completed")
    assert "stopped watching (--duration)" in result.stdout


def test_unknown_instance_is_exit_2_without_a_traceback(cli):
    for args in (["monitor", "nope"], ["monitor", "nope", "--json"]):
        result = cli(*args)
        assert result.exit_code == 2
        assert "no instance 'nope'" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_dead_runner_ends_the_monitor(cli, workspace):
    path = write_definition(workspace, {"a": check()})
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
    result = cli("monitor", instance, "--interval", "0.05", "--duration", "20")
    assert result.exit_code == 0
    assert "the runner is gone (it died); recover with: workflow_cli resume" in result.stdout


def test_unknown_event_types_are_shown_with_their_fields(cli, workspace):
    path = write_definition(workspace, {"a": check()})
    instance = cli("create", str(path)).stdout.strip()
    journal = open_journal(Workspace(workspace), instance, clock)
    journal.append([{"type": "from_the_future", "answer": 42, "task": "a"}])
    journal.close()
    cli("start", instance)
    result = cli("events", instance)
    assert "from_the_future: answer=42 task=a" in result.stdout
    assert cli("monitor", instance).exit_code == 0


# -- the dashboard's frame --------------------------------------------------------------


def _frame(state: dict[str, Any], latest: list[dict[str, Any]], height: int = 40) -> str:
    from rich.console import Console

    from workflow_cli.cli.monitor import DashboardView, Vitals

    console = Console(width=120, height=height, record=True, force_terminal=True)
    app = SimpleNamespace(workspace=None, clock=clock)
    vitals = Vitals(app, state["id"])  # type: ignore[arg-type]
    vitals.health = {"score": 61.5, "level": "warning"}
    vitals.sample = {
        "time": "2026-01-01T10:00:00+00:00",
        "process": {"cpu": 0.05, "rss": 50 * 1_048_576},
        "machine": {"cpu": 0.25, "memory": 0.5, "disk": 0.75},
    }
    follower = SimpleNamespace(state=state, latest=latest)
    view = DashboardView(follower, vitals, console)  # type: ignore[arg-type]
    console.print(view.render(clock(), None))
    return console.export_text()


def test_a_10000_task_frame_fits_the_terminal_and_lists_what_matters():
    tasks = {
        f"t{i:05d}": {
            "state": "completed",
            "attempts": 1,
            "duration": 0.01,
            "finished_at": f"2026-01-01T10:{i // 600:02d}:{i % 60:02d}",
        }
        for i in range(10_000)
    }
    tasks["t05000"] = {"state": "running", "attempts": 2, "started_at": None}
    tasks["t05001"] = {"state": "failed", "attempts": 3, "error": {"message": "boom"}}
    tasks["t09999"] = {"state": "pending", "attempts": 0}
    state = {"id": "big", "template": "wide", "state": "running", "tasks": tasks}
    latest = [
        {"seq": 1, "time": "2026-01-01T10:00:00.000+00:00", "type": "odd_event", "x": 1},
        {"seq": 2, "time": "2026-01-01T10:00:01.000+00:00", "type": "run_started"},
    ]
    text = _frame(state, latest)
    lines = text.splitlines()
    assert len(lines) <= 40
    assert lines[0].startswith("big  wide  running  health 61.5 (warning)")
    assert "9997/10000 tasks completed, 1 running, 1 failed" in text
    rows = [line.split()[0] for line in lines if line.startswith("t0")]
    assert rows[:3] == ["t05000", "t05001", "t09999"]  # running, failed, pending first
    assert "more tasks not shown" in text
    assert "runner cpu 5%  rss 50 MB · machine cpu 25%  memory 50%  disk 75%" in text
    assert "odd_event: x=1" in text and "run started" in text


def test_a_small_frame_lists_every_task_in_order():
    tasks = {name: {"state": "pending", "attempts": 0} for name in ("first", "second", "third")}
    tasks["second"] = {"state": "skipped", "attempts": 0, "reason": "condition is false: no"}
    state = {"id": "small", "template": None, "state": "created", "tasks": tasks}
    text = _frame(state, [], height=20)
    rows = [line.split()[0] for line in text.splitlines() if line.split()[:1]]
    assert rows[rows.index("task") + 1 : rows.index("task") + 4] == ["first", "second", "third"]
    assert "condition is false: no" in text
    assert "more tasks not shown" not in text


def test_a_frame_shows_how_far_a_for_each_task_is():
    items = {"total": 10, "completed": 6, "failed": 1, "skipped": 0, "values": [], "records": []}
    tasks = {"each": {"state": "running", "attempts": 1, "items": items}}
    state = {"id": "fan", "template": None, "state": "running", "tasks": tasks}
    assert "7/10 items (1 failed)" in _frame(state, [], height=20)


# -- following a journal ---------------------------------------------------------------


class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps; each sleep
    may also do something (append events, as a runner would meanwhile)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.actions: list[Any] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.actions:
            self.actions.pop(0)()


def _created(cli: Any, workspace: Path, tasks: dict[str, Any]) -> str:
    return str(cli("create", str(write_definition(workspace, tasks))).stdout.strip())


def test_follow_yields_new_events_until_the_run_ends(cli, workspace):
    instance = _created(cli, workspace, {"a": check(), "b": check()})
    ws = Workspace(workspace)
    writer = open_journal(ws, instance, clock)
    writer.read_new()
    follower = Follower(ws, instance, clock, history=3)
    fake = FakeTime()

    def append(*records: dict[str, Any]) -> Any:
        return lambda: writer.append(list(records))

    fake.actions = [
        append({"type": "run_started", "pid": os.getpid(), "recovered": False}),
        lambda: None,  # a quiet interval
        append({"type": "task_started", "task": "a", "attempt": 1}),
        append(
            {"type": "task_completed", "task": "a", "attempt": 1, "duration": 0.1, "output": 1},
            {"type": "task_skipped", "task": "b", "reason": "no"},
            {"type": "run_ended", "state": "completed", "reason": None},
        ),
        append({"type": "after_the_end"}),
    ]
    updates = list(follow(follower, interval=0.5, monotonic=fake.monotonic, sleep=fake.sleep))
    kinds = [[e["type"] for e in u.events] for u in updates]
    assert kinds == [
        [],
        ["run_started"],
        [],
        ["task_started"],
        ["task_completed", "task_skipped", "run_ended"],
    ]
    assert [u.end for u in updates] == [None, None, None, None, "ended"]
    assert fake.sleeps == [0.5] * 4
    assert follower.state["state"] == "completed"
    assert follower.state["tasks"]["a"]["output"] == 1
    assert [e["type"] for e in follower.latest] == ["task_completed", "task_skipped", "run_ended"]
    writer.close()
    follower.close()


def test_follow_ends_at_the_duration_and_clamps_the_interval(cli, workspace):
    instance = _created(cli, workspace, {"a": check()})
    follower = Follower(Workspace(workspace), instance, clock)
    fake = FakeTime()
    updates = list(
        follow(follower, interval=100.0, duration=25.0, monotonic=fake.monotonic, sleep=fake.sleep)
    )
    assert [u.end for u in updates] == [None, None, None, "duration"]
    assert fake.sleeps == [10.0, 10.0, 5.0]  # the interval is clamped to 10 s
    assert [u.end for u in follow(follower, interval=0.0, duration=0.0)] == ["duration"]
    fake = FakeTime()
    list(follow(follower, interval=0.0, duration=0.1, monotonic=fake.monotonic, sleep=fake.sleep))
    assert min(fake.sleeps) > 0  # never a busy loop
    follower.close()


def test_follow_of_an_instance_with_no_run_going_ends_at_once(cli, workspace):
    code, instance = finished_instance(cli, workspace, {"a": check()})
    assert code == 0
    follower = Follower(Workspace(workspace), instance, clock)
    assert [u.end for u in follow(follower, interval=1.0)] == ["not_running"]
    follower.close()


def test_follow_notices_a_runner_that_died(cli, workspace):
    instance = _created(cli, workspace, {"a": check()})
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True)
    ws = Workspace(workspace)
    writer = open_journal(ws, instance, clock)
    writer.append([{"type": "run_started", "pid": int(dead.stdout), "recovered": False}])
    writer.close()
    follower = Follower(ws, instance, clock)
    fake = FakeTime()
    updates = list(follow(follower, interval=0.4, monotonic=fake.monotonic, sleep=fake.sleep))
    assert updates[-1].end == "runner_gone"
    assert len(updates) <= 5  # noticed within about a second of silence
    # A live runner (this process's pid, holding nothing) is not mistaken for a dead one.
    writer = open_journal(ws, instance, clock)
    writer.append([{"type": "run_started", "pid": os.getpid(), "recovered": True}])
    writer.close()
    follower = Follower(ws, instance, clock)
    fake = FakeTime()
    updates = list(
        follow(follower, interval=0.4, duration=5, monotonic=fake.monotonic, sleep=fake.sleep)
    )
    assert updates[-1].end == "duration"


def test_follower_from_the_start_and_the_cache_agree(cli, workspace):
    code, instance = finished_instance(cli, workspace, {"a": check(), "b": check()})
    assert code == 0
    ws = Workspace(workspace)
    whole = Follower(ws, instance, clock, from_start=True, history=2)
    cached = Follower(ws, instance, clock, history=2)
    assert [e["seq"] for e in whole.initial] == list(range(1, len(whole.initial) + 1))
    assert (
        whole.state["tasks"]
        == cached.state["tasks"]
        == load_state(open_journal(ws, instance, clock))["tasks"]
    )
    assert list(whole.latest) == list(cached.latest) == whole.initial[-2:]


def test_tail_events_reads_a_long_journal_from_its_end(cli, workspace):
    instance = _created(cli, workspace, {"a": check()})
    ws = Workspace(workspace)
    journal = open_journal(ws, instance, clock)
    journal.read_new()
    padding = "x" * 300
    journal.append([{"type": "filler", "n": n, "pad": padding} for n in range(1, 1001)])
    journal.close()
    path = journal.path
    assert path.stat().st_size > 4 * 64 * 1024  # more than one window
    assert [e["n"] for e in tail_events(path, 3)] == [998, 999, 1000]
    assert [e["seq"] for e in tail_events(path, 1000)] == list(range(2, 1002))
    assert len(tail_events(path, 5000)) == 1001  # the whole journal, no more
    assert tail_events(path, 0) == []
    with open(path, "ab") as handle:
        handle.write(b'{"seq":1002,"type":"torn')  # a crash mid-write
    assert [e["n"] for e in tail_events(path, 2)] == [999, 1000]
