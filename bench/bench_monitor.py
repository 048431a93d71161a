"""Monitoring benchmark for workflow_cli: `status` and `health` on big workspaces, and what
resource sampling costs.

Run from the project root:

    .venv/bin/python bench/bench_monitor.py              # median of 5 runs per figure
    .venv/bin/python bench/bench_monitor.py --runs 9     # more runs per figure
    .venv/bin/python bench/bench_monitor.py --sample-seconds 30   # longer sampling window
    .venv/bin/python bench/bench_monitor.py --json-out bench/monitor-latest.json

The fixture is one workspace holding 1,000 instances of 4 templates (5 tasks each; most
completed, some failed after retries, some waiting for an approval, some "running" with
a runner that died) plus one instance of 10,000 completed tasks. It is written with the
real store functions (`create_instance`, `Journal.append`, `save_state_cache`): the
journals, state caches and definitions are exactly what runs leave, only the runs are
not executed (their events carry made-up but consistent times).

The commands are timed as whole processes of the installed ``.venv/bin/workflow_cli``
(start-up included), output to a pipe. ``health`` is timed cold once (no health record
yet: every instance is scored and its record written) and then warm (records up to date:
only the running instances are scored again), which is what a person or a dashboard
refreshing it sees.

Sampling cost is the CPU time of the sampler's own thread (``time.thread_time`` around
each sample) over the wall time, with the process tree of a runner with 4 child
processes, at the default interval and at the smallest one.

See bench/README.md ("Monitoring benchmark") for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import Results, time_command  # noqa: E402

from workflow_cli.engine import lifecycle  # noqa: E402
from workflow_cli.monitor.health import (  # noqa: E402
    build_record,
    gather_inputs,
    instance_health,
)
from workflow_cli.monitor.resources import (  # noqa: E402
    DEFAULT_SAMPLE_INTERVAL,
    MIN_SAMPLE_INTERVAL,
    ResourceSampler,
)
from workflow_cli.monitor.session import monitored_run  # noqa: E402
from workflow_cli.store.instances import (  # noqa: E402
    create_instance,
    load_state,
    open_journal,
    save_state_cache,
)
from workflow_cli.store.journal import Event  # noqa: E402
from workflow_cli.store.workspace import Workspace  # noqa: E402

CLI = str(Path(sys.executable).parent / "workflow_cli")
TEMPLATES = ("etl", "report", "approval", "sync")
TARGET_S = 0.5


class StepClock:
    """A clock that moves on by `step` seconds each time it is read."""

    def __init__(self, start: datetime, step: float) -> None:
        self.now = start
        self.step = timedelta(seconds=step)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def definition(template: str, tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": template,
        "name": template,
        "version": "1",
        "schema_version": "2.0.0",
        **extra,
        "tasks": tasks,
    }


def echo(deps: list[str]) -> dict[str, Any]:
    return {"action": "agent_task", "agent_id": "echo", "parameters": {}, "dependencies": deps}


def write_instance(
    ws: Workspace,
    instance_id: str,
    template: str,
    doc: dict[str, Any],
    batches: list[list[Event]],
    clock: StepClock,
) -> None:
    created: Event = {
        "type": "instance_created",
        "instance": instance_id,
        "template": template,
        "workflow": doc["id"],
        "params": {},
        "parent": None,
        "tasks": list(doc["tasks"]),
    }
    create_instance(ws, instance_id, doc, created, clock)
    journal = open_journal(ws, instance_id, clock)
    for batch in batches:
        journal.append(batch, durable=False)
    journal.sync()
    state = load_state(journal, use_cache=False)
    save_state_cache(journal, state)
    journal.close()


def small_instance(ws: Workspace, index: int, clock: StepClock) -> str:
    template = TEMPLATES[index % len(TEMPLATES)]
    names = [f"t{j}" for j in range(5)]
    tasks = {name: echo([names[j - 1]] if j else []) for j, name in enumerate(names)}
    extra: dict[str, Any] = {}
    if template == "report":
        extra["expected_duration"] = 4.0
        tasks["t2"]["expected_duration"] = 0.5
    if template == "approval":
        tasks["t4"] = {
            "action": "approval_gate",
            "parameters": {"approvers": ["alice"]},
            "dependencies": ["t3"],
        }
    doc = definition(template, tasks, **extra)
    instance_id = f"{template}-{index:04d}"
    kind = (
        "dead"
        if index % 250 == 7
        else "waiting"
        if template == "approval" and index % 20 == 2
        else "failed"
        if index % 25 == 3
        else "completed"
    )
    batches: list[list[Event]] = [[{"type": "run_started", "pid": 999_999_999}]]
    for j, name in enumerate(names):
        duration = 0.2 + (index % 7) * 0.05
        if kind == "dead" and j == 3:
            batches.append([{"type": "task_started", "task": name, "attempt": 1}])
            return _finish(ws, instance_id, template, doc, batches, clock)
        if kind == "failed" and j == 2:
            for attempt in (1, 2):
                batches.append([{"type": "task_started", "task": name, "attempt": attempt}])
                error = {"message": "exit 1", "kind": "exit"}
                batches.append(
                    [
                        {
                            "type": "task_retrying" if attempt == 1 else "task_failed",
                            "task": name,
                            "attempt": attempt,
                            "duration": duration,
                            "error": error,
                            **({"delay": 1.0} if attempt == 1 else {}),
                        }
                    ]
                )
            batches.append([{"type": "run_ended", "state": "failed", "reason": "t2 failed"}])
            return _finish(ws, instance_id, template, doc, batches, clock)
        if kind == "waiting" and name == "t4":
            waiting_for = {"approvers": ["alice"], "gate": name}
            batches.append([{"type": "task_waiting", "task": name, "waiting_for": waiting_for}])
            batches.append(
                [{"type": "run_ended", "state": "waiting", "reason": "waiting for approval"}]
            )
            return _finish(ws, instance_id, template, doc, batches, clock)
        batches.append([{"type": "task_started", "task": name, "attempt": 1}])
        batches.append(
            [
                {
                    "type": "task_completed",
                    "task": name,
                    "attempt": 1,
                    "duration": duration,
                    "output": {"i": j},
                }
            ]
        )
    batches.append([{"type": "run_ended", "state": "completed", "reason": None}])
    return _finish(ws, instance_id, template, doc, batches, clock)


def _finish(
    ws: Workspace,
    instance_id: str,
    template: str,
    doc: dict[str, Any],
    batches: list[list[Event]],
    clock: StepClock,
) -> str:
    write_instance(ws, instance_id, template, doc, batches, clock)
    return instance_id


def big_instance(ws: Workspace, clock: StepClock, n: int = 10_000) -> str:
    names = [f"c{i % 100}_{i // 100}" for i in range(n)]
    tasks = {
        name: echo([f"c{i % 100}_{i // 100 - 1}"] if i >= 100 else [])
        for i, name in enumerate(names)
    }
    doc = definition("big", tasks)
    batches: list[list[Event]] = [[{"type": "run_started", "pid": 999_999_999}]]
    for start in range(0, n, 500):
        chunk = names[start : start + 500]
        batches.append([{"type": "task_started", "task": t, "attempt": 1} for t in chunk])
        batches.append(
            [
                {
                    "type": "task_completed",
                    "task": t,
                    "attempt": 1,
                    "duration": 0.001,
                    "output": {"task": t},
                }
                for t in chunk
            ]
        )
    batches.append([{"type": "run_ended", "state": "completed", "reason": None}])
    write_instance(ws, "big-10k", "big", doc, batches, clock)
    return "big-10k"


def build_fixture(root: Path, count: int) -> tuple[Workspace, list[str], str]:
    root.mkdir(parents=True)
    ws = Workspace.at(root)
    clock = StepClock(datetime.now(UTC) - timedelta(days=30), 0.05)
    ids = [small_instance(ws, i, clock) for i in range(count)]
    return ws, ids, big_instance(ws, clock)


# -- measuring -------------------------------------------------------------------------


def bench_commands(ws: Workspace, small: str, big: str, res: Results, runs: int) -> None:
    home = ["--home", str(ws.root)]
    print("1. commands on 1,000 instances + one of 10,000 tasks (whole processes)", flush=True)
    walls = time_command([CLI, *home, "health"], 1)
    res.add("health_cold_s", "health, cold (scores and writes 1,001 records)", walls[0], "s")
    for key, label, args in (
        ("status_10k_s", "status ID (10,000 tasks)", ["status", big]),
        ("status_10k_json_s", "status ID --json (10,000 tasks)", ["status", big, "--json"]),
        ("status_small_s", "status ID (5 tasks, in the 1,000)", ["status", small]),
        ("health_s", "health (1,001 instances)", ["health"]),
        ("health_json_s", "health --json (1,001 instances)", ["health", "--json"]),
        (
            "health_10k_explain_s",
            "health ID --explain (10,000 tasks)",
            ["health", big, "--explain"],
        ),
        ("health_10k_json_s", "health ID --json (10,000 tasks)", ["health", big, "--json"]),
        ("health_small_explain_s", "health ID --explain (5 tasks)", ["health", small, "--explain"]),
        ("alerts_json_s", "alerts --json", ["alerts", "--json"]),
    ):
        walls = time_command([CLI, *home, *args], runs)
        target = None if key == "alerts_json_s" else TARGET_S
        res.add(key, label, statistics.median(walls), "s", target, samples=walls)
    walls = time_command([CLI, *home, "list", "--json"], max(3, runs // 2))
    res.add(
        "list_json_s",
        "list --json (1,001 instances; not monitoring)",
        statistics.median(walls),
        "s",
        None,
        walls,
    )


def bench_refresh(ws: Workspace, big: str, res: Results, runs: int) -> None:
    """What scoring costs: a full rescore of the 10,000-task instance (what `health ID`
    does when its record is out of date), and one refresh on the runner's thread."""
    print("2. health refresh on the runner's thread (in-process)", flush=True)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    state = load_state(open_journal(ws, big, clock))
    inputs = gather_inputs(ws, big, state)
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        build_record(state, inputs, now=clock(), runner_alive=True)
        walls.append(time.perf_counter() - started)
    rescores = []
    for _ in range(runs):
        started = time.perf_counter()
        instance_health(ws, big, clock)
        rescores.append(time.perf_counter() - started)
    res.add(
        "rescore_10k_ms",
        "instance_health of the 10,000-task instance (full rescore)",
        statistics.median(rescores) * 1000,
        "ms",
        None,
        [w * 1000 for w in rescores],
    )
    res.add(
        "refresh_10k_ms",
        "score one 10,000-task state (at most once a second)",
        statistics.median(walls) * 1000,
        "ms",
        None,
        [w * 1000 for w in walls],
    )


def sampler_cost(
    ws: Workspace, instance_id: str, interval: float, seconds: float
) -> dict[str, Any]:
    """Run a sampler on this process (with 4 idle children) for `seconds`."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )
        for _ in range(4)
    ]
    try:
        clock = lambda: datetime.now(UTC)  # noqa: E731
        sampler = ResourceSampler(ws, instance_id, clock=clock, interval=interval)
        done = threading.Event()
        started = time.perf_counter()
        sampler.start()
        done.wait(seconds)  # the window being measured: the sampler works meanwhile
        sampler.stop()
        wall = time.perf_counter() - started
    finally:
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(10)
    _, peaks = sampler.progress
    samples = int(peaks.get("samples", 0))
    processes = (sampler.last or {}).get("process", {}).get("processes")
    return {
        "interval": interval,
        "wall": wall,
        "cpu_seconds": sampler.cpu_seconds,
        "samples": samples,
        "core_fraction": sampler.cpu_seconds / wall,
        "ms_per_sample": sampler.cpu_seconds / max(samples, 1) * 1000,
        "processes": processes,
        "errors": sampler.errors,
    }


def bench_sampling(ws: Workspace, small: str, res: Results, seconds: float) -> None:
    print(f"3. sampling cost (sampler thread CPU over {seconds:g} s wall)", flush=True)
    for interval, key in ((DEFAULT_SAMPLE_INTERVAL, "default"), (MIN_SAMPLE_INTERVAL, "min")):
        cost = sampler_cost(ws, small, interval, seconds)
        if cost["errors"]:
            raise SystemExit(f"sampler errors: {cost['errors']}")
        res.add(
            f"sampler_{key}_core_pct",
            f"sampler at {interval:g} s: share of one core "
            f"({cost['samples']} samples, tree of {cost['processes']})",
            cost["core_fraction"] * 100,
            "%",
            1.0 if key == "default" else None,
        )
        res.add(
            f"sampler_{key}_ms_per_sample",
            f"sampler at {interval:g} s: CPU per sample",
            cost["ms_per_sample"],
            "ms",
        )


def bench_run_overhead(tmp: Path, res: Results, runs: int) -> None:
    """A 1,000-task chain run with and without monitored_run (sampler + refreshes)."""
    print("4. a 1,000-task run with and without monitoring (in-process)", flush=True)
    ws_root = tmp / "runs"
    ws_root.mkdir()
    ws = Workspace.at(ws_root)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    names = [f"t{i}" for i in range(1000)]
    doc = definition("chain", {n: echo([names[i - 1]] if i else []) for i, n in enumerate(names)})
    path = ws_root / "chain.json"
    path.write_text(json.dumps(doc))
    lifecycle.run(ws, lifecycle.create(ws, str(path), [], clock), clock=clock)  # warm-up
    plain, monitored = [], []
    for _ in range(runs):
        instance_id = lifecycle.create(ws, str(path), [], clock)
        started = time.perf_counter()
        lifecycle.run(ws, instance_id, clock=clock)
        plain.append(time.perf_counter() - started)
        instance_id = lifecycle.create(ws, str(path), [], clock)
        started = time.perf_counter()
        with monitored_run(ws, instance_id, clock, None, write_summary=False) as reporter:
            lifecycle.run(ws, instance_id, clock=clock, reporter=reporter)
        monitored.append(time.perf_counter() - started)
    res.add(
        "run1k_plain_s",
        "1,000-task chain, lifecycle.run",
        statistics.median(plain),
        "s",
        None,
        plain,
    )
    res.add(
        "run1k_monitored_s",
        "1,000-task chain, inside monitored_run",
        statistics.median(monitored),
        "s",
        None,
        monitored,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--instances", type=int, default=1000, help="small instances")
    parser.add_argument(
        "--sample-seconds", type=float, default=15.0, help="wall time of each sampling window"
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON summary here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument(
        "--only",
        action="append",
        choices=["commands", "refresh", "sampling", "runs"],
        help="run only these sections (repeatable; default all)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wfbench-monitor-"))
    started = time.perf_counter()
    try:
        print(
            f"workflow_cli monitoring benchmark: median of {args.runs}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, temp {tmp}",
            flush=True,
        )
        built = time.perf_counter()
        ws, ids, big = build_fixture(tmp / "ws", args.instances)
        print(
            f"  fixture: {len(ids)} instances + one of 10,000 tasks "
            f"in {time.perf_counter() - built:.1f} s",
            flush=True,
        )
        res = Results()
        only = set(args.only or ["commands", "refresh", "sampling", "runs"])
        if "commands" in only:
            bench_commands(ws, ids[0], big, res, args.runs)
        if "refresh" in only:
            bench_refresh(ws, big, res, args.runs)
        if "sampling" in only:
            bench_sampling(ws, ids[0], res, args.sample_seconds)
        if "runs" in only:
            bench_run_overhead(tmp, res, max(3, args.runs // 2))
        res.report(args.json_out, runs=args.runs, elapsed_s=round(time.perf_counter() - started, 1))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
