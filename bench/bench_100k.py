"""Scale to 100,000 tasks: 100 chains of 1,000 tasks against 100 chains of 100, each
created and run in a fresh process (the built-in ``echo`` agent, 4 workers), then
``workflow_cli status`` and ``monitor`` of the large instance timed as processes (and
``status`` a few times while its run goes on).

The definition is handed to ``create_from_template`` in memory: as a file, 100,000
tasks are more than the loader's bound on the values in one document (200,000), which
is there for files a person writes (a workflow that large comes from a program).

    .venv/bin/python bench/bench_100k.py [--length 1000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Results, peak_rss_mb, time_command

WIDTH = 100
CLI = Path(sys.executable).with_name("workflow_cli")


def compact_chains(width: int, length: int) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for c in range(width):
        for i in range(length):
            task: dict[str, Any] = {"action": "agent_task", "agent_id": "echo"}
            if i:
                task["dependencies"] = [f"c{c}_{i - 1}"]
            tasks[f"c{c}_{i}"] = task
    return tasks


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(home: Path, length: int) -> None:
    import bench_engine as engine

    from workflow_cli.definition.templates import Template
    from workflow_cli.engine.lifecycle import create_from_template

    ws = engine.new_workspace(home, "ws", agents=False)
    started = time.perf_counter()
    document = engine.definition("scale", compact_chains(WIDTH, length))
    template = Template("scale", "", {}, document, "scale (in memory)")
    instance = create_from_template(ws, template, {}, engine.utc_now)
    created = time.perf_counter() - started
    print(json.dumps({"instance": instance, "home": str(ws.root)}), flush=True)
    cpu_before = cpu_seconds()
    wall = engine.run(ws, instance, 4)
    cpu = cpu_seconds() - cpu_before
    peak = peak_rss_mb()
    print(json.dumps({"instance": instance, "home": str(ws.root), "create_s": created,
                      "run_s": wall, "run_cpu_s": cpu, "peak_rss_mb": peak}))  # fmt: skip


def measure(tmp: Path, length: int, status_samples: int = 0) -> dict[str, Any]:
    """Create and run in a child process; with `status_samples`, time that many
    ``status`` commands of the instance while it runs (5 s apart, from 10 s in), as
    ``status_while_running`` (wall and CPU of each)."""
    home = tmp / f"len{length}"
    home.mkdir()
    cmd = [sys.executable, __file__, "--child", str(home), "--length", str(length)]
    child_process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child_process.stdout is not None
    created = json.loads(child_process.stdout.readline() or "{}")
    samples: list[tuple[float, float]] = []
    time.sleep(5)
    while created and len(samples) < status_samples:
        time.sleep(5)
        if child_process.poll() is not None:
            break
        cpu: list[float] = []
        walls = time_command(
            [str(CLI), "--home", created["home"], "status", created["instance"]], 1, cpu=cpu
        )
        samples.append((walls[0], cpu[0]))
    out, err = child_process.communicate()
    if child_process.returncode != 0:
        raise SystemExit(f"child failed:\n{err}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["status_while_running"] = samples
    return result


def time_cli(home: str, *args: str) -> tuple[float, float]:
    """Median wall and CPU time (user + system) of 5 runs of ``workflow_cli ARGS`` as a
    process."""
    cli = [str(CLI), "--home", home]
    cpu: list[float] = []
    walls = time_command([*cli, *args], 5, cpu=cpu)
    return sorted(walls)[2], sorted(cpu)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.length)
        return
    res = Results()
    tmp = Path(tempfile.mkdtemp(prefix="bench100k-"))
    try:
        small = measure(tmp, args.length // 10)
        large = measure(tmp, args.length, status_samples=3)
        n = WIDTH * args.length
        res.add("scale_small_run_s", f"{n // 10:,} tasks: run", small["run_s"], "s")
        res.add("scale_large_run_s", f"{n:,} tasks: run", large["run_s"], "s")
        res.add("scale_large_create_s", f"{n:,} tasks: create", large["create_s"], "s")
        ratio = large["run_s"] / small["run_s"]
        res.add("scale_ratio", f"run {n:,} / run {n // 10:,}", ratio, "x", 11)
        cpu_ratio = large["run_cpu_s"] / small["run_cpu_s"]
        res.add("scale_cpu_ratio", f"run CPU {n:,} / run CPU {n // 10:,}", cpu_ratio, "x",
                note=f"CPU {small['run_cpu_s']:.1f} s / {large['run_cpu_s']:.1f} s")  # fmt: skip
        res.add("scale_large_peak_rss_mb", f"{n:,} tasks: peak RSS", large["peak_rss_mb"],
                "MB", 300)  # fmt: skip
        home, instance = large["home"], large["instance"]
        wall, cpu = time_cli(home, "status", instance)
        res.add("scale_large_status_s", f"{n:,} tasks: status", wall, "s", 0.3,
                note=f"CPU {cpu:.3f} s")  # fmt: skip
        running = large["status_while_running"]
        if running:
            walls = sorted(w for w, _ in running)
            cpus = sorted(c for _, c in running)
            res.add("scale_large_status_running_s", f"{n:,} tasks: status while it runs",
                    walls[len(walls) // 2], "s",
                    note=f"CPU {cpus[len(cpus) // 2]:.3f} s, {len(running)} samples")  # fmt: skip
        wall, cpu = time_cli(home, "status", instance, "--json")
        res.add("scale_large_status_json_s", f"{n:,} tasks: status --json", wall, "s",
                note=f"CPU {cpu:.3f} s")  # fmt: skip
        wall, cpu = time_cli(home, "monitor", instance, "--duration", "0")
        res.add("scale_large_monitor_s", f"{n:,} tasks: monitor (one frame, piped)", wall,
                "s", note=f"CPU {cpu:.3f} s")  # fmt: skip
        wall, cpu = time_cli(home, "status", "--help")
        res.add("cli_help_floor_s", "status --help (start-up floor)", wall, "s",
                note=f"CPU {cpu:.3f} s")  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
