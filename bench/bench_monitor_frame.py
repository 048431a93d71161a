"""Benchmark: how long ``workflow_cli monitor`` takes to show its first frame.

Run from the project root:

    .venv/bin/python bench/bench_monitor_frame.py              # median of 7 runs per figure
    .venv/bin/python bench/bench_monitor_frame.py --runs 15 --json-out bench/monitor.json
    .venv/bin/python bench/bench_monitor_frame.py --keep       # keep the temporary workspace

It builds one temporary workspace with the real store functions (`create_instance`, the
journal's `append`, `save_state_cache`; nothing is faked or mocked):

- 1,000 small instances (5 tasks each, in assorted states: completed, failed, running,
  created), so the workspace is large;
- one instance of 10,000 tasks mid-run: 6,000 completed, 4 running, the rest pending,
  its runner recorded as this benchmark's own (live) process.

Each figure is the wall time of a whole ``workflow_cli monitor ID --duration 0`` process
(start-up, imports, reading the instance, health and resources, drawing one frame,
exit), median of the runs:

- ``terminal``: stdout is a pseudo-terminal of 120x40, so the Rich dashboard is drawn
  (its output is read and thrown away, as a terminal would show it);
- ``pipe``: stdout is a pipe, so it prints its plain first line.

Target: under 0.5 s for each. ``workflow_cli --help`` is measured too, as the floor any
command pays to start.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import Results  # noqa: E402

from workflow_cli.store.instances import (  # noqa: E402
    create_instance,
    load_state,
    open_journal,
    save_state_cache,
)
from workflow_cli.store.journal import Event  # noqa: E402
from workflow_cli.store.workspace import Workspace  # noqa: E402

CLI = str(Path(sys.executable).parent / "workflow_cli")
TARGET_S = 0.5
SMALL_INSTANCES = 1_000
BIG_TASKS = 10_000
BIG_COMPLETED = 6_000
BIG_RUNNING = 4


class Clock:
    """A clock that moves a millisecond a call, so journal times differ."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(hours=1)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def definition(name: str, count: int) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for n in range(count):
        task: dict[str, Any] = {"action": "condition_check", "parameters": {"expression": "1"}}
        if n and count <= 10:
            task["dependencies"] = [f"t{n - 1:05d}"]
        tasks[f"t{n:05d}"] = task
    return {"id": name, "name": name, "version": "1", "schema_version": "2.0.0", "tasks": tasks}


def write_instance(
    ws: Workspace, instance_id: str, count: int, events: list[Event], clock: Clock
) -> None:
    """An instance with `count` tasks whose journal holds `events` after its creation."""
    body = definition("bench", count)
    created: Event = {
        "type": "instance_created",
        "instance": instance_id,
        "template": "bench",
        "workflow": "bench",
        "params": {},
        "parent": None,
        "tasks": list(body["tasks"]),
    }
    create_instance(ws, instance_id, body, created, clock)
    if events:
        journal = open_journal(ws, instance_id, clock)
        state = load_state(journal)
        journal.append(events, durable=False)
        journal.sync()
        state = load_state(journal)
        save_state_cache(journal, state)
        journal.close()


def done(task: str) -> list[Event]:
    return [
        {"type": "task_started", "task": task, "attempt": 1},
        {"type": "task_completed", "task": task, "attempt": 1, "duration": 0.001, "output": 1},
    ]


def build_workspace(root: Path) -> tuple[Workspace, str, str]:
    """The workspace, the id of the 10,000-task instance and of one small instance."""
    ws = Workspace.at(root)
    clock = Clock()
    pid = os.getpid()  # alive for as long as the benchmark runs: a "running" runner
    began = time.perf_counter()
    for n in range(SMALL_INSTANCES):
        kind = n % 4
        events: list[Event] = []
        if kind in (0, 1, 2):
            events.append({"type": "run_started", "pid": pid, "recovered": False})
            events += done("t00000") + done("t00001")
        if kind == 0:
            events += [e for t in ("t00002", "t00003", "t00004") for e in done(t)]
            events.append({"type": "run_ended", "state": "completed", "reason": None})
        elif kind == 1:
            events.append({"type": "task_started", "task": "t00002", "attempt": 1})
            error = {"message": "agent 'x' exited with code 1", "kind": "exit_code", "exit_code": 1}
            events.append(
                {
                    "type": "task_failed",
                    "task": "t00002",
                    "attempt": 1,
                    "duration": 0.2,
                    "error": error,
                }
            )
            events.append(
                {"type": "run_ended", "state": "failed", "reason": "task 't00002' failed"}
            )
        elif kind == 2:
            events.append({"type": "task_started", "task": "t00002", "attempt": 1})
        write_instance(ws, f"small-{n:04d}-bench", 5, events, clock)
    print(f"  {SMALL_INSTANCES} small instances written in {time.perf_counter() - began:.1f}s")
    began = time.perf_counter()
    events = [{"type": "run_started", "pid": pid, "recovered": False}]
    for n in range(BIG_COMPLETED):
        events += done(f"t{n:05d}")
    for n in range(BIG_COMPLETED, BIG_COMPLETED + BIG_RUNNING):
        events.append({"type": "task_started", "task": f"t{n:05d}", "attempt": 1})
    write_instance(ws, "big-10000", BIG_TASKS, events, clock)
    print(f"  the 10,000-task instance written in {time.perf_counter() - began:.1f}s")
    return ws, "big-10000", "small-0002-bench"  # a running one among the 1,000


def time_in_terminal(args: list[str], env: dict[str, str]) -> float:
    """Wall time of a process whose stdout, stdin and stderr are a 120x40 pseudo-terminal;
    everything it draws is read (as a terminal would) and thrown away."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    began = time.perf_counter()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    drawn = bytearray()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=60)
    elapsed = time.perf_counter() - began
    os.close(master)
    if process.returncode != 0 or b"tasks done" not in drawn:
        raise RuntimeError(f"{args} failed ({process.returncode}): {bytes(drawn[-500:])!r}")
    return elapsed


def time_in_pipe(args: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - began
    if result.returncode != 0 or ("tasks done" not in result.stdout and "--help" not in args):
        raise RuntimeError(f"{args} failed ({result.returncode}): {result.stderr[-500:]}")
    return elapsed


def median_of(runs: int, measure: Any, *args: Any) -> tuple[float, list[float]]:
    measure(*args)  # a warm-up run: the OS's file cache, Python's .pyc files
    samples = [measure(*args) for _ in range(runs)]
    return statistics.median(samples), samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (median)")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    options = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    print(f"building the workspace in {root}")
    try:
        ws, big, small = build_workspace(root)
        env = {**os.environ, "WORKFLOW_HOME": str(ws.root), "TERM": "xterm-256color"}
        env.pop("WORKFLOW_CLI_TRACEBACK", None)
        plan = [
            ("help_s", "workflow_cli --help (start-up floor)", time_in_pipe, [CLI, "--help"], None),
            (
                "big_terminal_s",
                "monitor, 10,000-task instance, terminal 120x40",
                time_in_terminal,
                [CLI, "monitor", big, "--duration", "0"],
                TARGET_S,
            ),
            (
                "big_pipe_s",
                "monitor, 10,000-task instance, pipe",
                time_in_pipe,
                [CLI, "monitor", big, "--duration", "0"],
                TARGET_S,
            ),
            (
                "workspace1000_terminal_s",
                "monitor, one of 1,000 instances, terminal 120x40",
                time_in_terminal,
                [CLI, "monitor", small, "--duration", "0"],
                TARGET_S,
            ),
            (
                "workspace1000_pipe_s",
                "monitor, one of 1,000 instances, pipe",
                time_in_pipe,
                [CLI, "monitor", small, "--duration", "0"],
                TARGET_S,
            ),
            (
                "workspace1000_prefix_terminal_s",
                "monitor by a unique id prefix among 1,000, terminal",
                time_in_terminal,
                [CLI, "monitor", small.removesuffix("-bench"), "--duration", "0"],
                TARGET_S,
            ),
        ]
        res = Results()
        for key, label, measure, args, target in plan:
            value, samples = median_of(options.runs, measure, args, env)
            res.add(key, label, value, "s", target, samples)
        summary = res.report(options.json_out, runs=options.runs)
        return 1 if summary["missed"] else 0
    finally:
        if options.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
