"""Dask executor benchmark: 1,000 independent tasks of 50 ms, thread executor vs a local
Dask cluster, in-process like ``workflow_cli start``.

Each task is an ``agent_task`` running a workspace callable that sleeps 50 ms: the sleep
is the workload being scheduled (it stands for I/O-bound work). Both executors get the
same number of slots: ``--max-workers 4`` for the threads, and a ``LocalCluster`` of two
worker processes with two threads each (``local-dask``) for Dask, so the difference is
what the Dask path costs per task (a task spec sent to the scheduler, a claim, the
reply, the future let go of after the journal write).

    .venv/bin/python bench/bench_dask.py [--tasks 1000] [--seconds 0.05] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Results

from workflow_cli.definition.templates import fill_values, read_template
from workflow_cli.engine.executor import open_executor
from workflow_cli.engine.lifecycle import EngineServices, create_from_template
from workflow_cli.engine.runner import NullReporter, Runner, RunOptions
from workflow_cli.store.workspace import Workspace

AGENT = "import time\n\ndef sleep(params):\n    time.sleep(params['seconds'])\n    return 1\n"
AGENTS_YAML = "agents:\n  sleep:\n    callable: bench_dask_agents:sleep\n"


def utc_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def workload(tasks: int, seconds: float) -> dict[str, Any]:
    return {
        "id": "dask_bench",
        "name": "dask bench",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": {
            f"t{i:05}": {
                "action": "agent_task",
                "agent_id": "sleep",
                "parameters": {"seconds": seconds},
            }
            for i in range(tasks)
        },
    }


def run_once(parent: Path, name: str, executor: str, tasks: int, seconds: float) -> float:
    root = parent / name
    root.mkdir()
    (root / "bench_dask_agents.py").write_text(AGENT)
    (root / "agents.yaml").write_text(AGENTS_YAML)
    ws = Workspace.at(root)
    path = root / "wf.json"
    path.write_text(json.dumps(workload(tasks, seconds)))
    template = read_template(path)
    instance = create_from_template(ws, template, fill_values(template, {}), utc_now)
    options = RunOptions(max_workers=4)
    pool = open_executor(ws, executor)  # a local cluster starts here, before the clock
    runner = Runner(
        ws,
        instance,
        clock=utc_now,
        reporter=NullReporter(),
        options=options,
        services=EngineServices(ws, utc_now, options),
        executor=pool,
    )
    started = time.perf_counter()
    outcome = runner.run()
    elapsed = time.perf_counter() - started
    pool.shutdown()
    if outcome.state != "completed":
        raise SystemExit(f"{name}: the run ended {outcome.state}: {outcome.reason}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    results = Results()
    floor = args.tasks * args.seconds / 4  # four slots, no overhead at all
    with tempfile.TemporaryDirectory() as tmp:
        for executor in ("threads", "local-dask"):
            walls = sorted(
                run_once(Path(tmp), f"{executor}-{n}", executor, args.tasks, args.seconds)
                for n in range(args.runs)
            )
            wall = walls[len(walls) // 2]
            key = executor.replace("-", "_")
            results.add(f"{key}_wall_s", f"{executor}: wall", wall, "s", samples=walls)
            results.add(f"{key}_tasks_per_s", f"{executor}: throughput", args.tasks / wall, "/s")
            overhead = (wall - floor) / args.tasks * 1000
            results.add(f"{key}_overhead_ms", f"{executor}: over the floor", overhead, "ms/task")
    print(f"floor (4 slots, no overhead): {floor:.2f} s")


if __name__ == "__main__":
    main()
