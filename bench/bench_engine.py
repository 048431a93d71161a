"""Engine benchmark for workflow_cli: per-task overhead, scheduling, scale, start-up.

Run from the project root:

    .venv/bin/python bench/bench_engine.py            # default: median of 5 runs, ~1 min
    .venv/bin/python bench/bench_engine.py --quick    # median of 3, 10,000 tasks once, 25-35 s
    .venv/bin/python bench/bench_engine.py --runs 3 --json-out bench/latest.json
    .venv/bin/python bench/bench_engine.py --profile  # cProfile of the 1,000-task fan-out only
    .venv/bin/python bench/bench_engine.py --breakdown  # wall-clock split of the same run

Everything runs with the REAL engine: definitions are written to a temporary workspace,
validated and instantiated with `create_from_template`, and run by `Runner.run` with the
durable journal (fsync per batch) and the state cache, exactly as `workflow_cli start`
does, minus terminal output (a `NullReporter`). Nothing in the engine is mocked.

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness import Results, peak_rss_mb, time_command  # noqa: E402

from workflow_cli.definition.templates import fill_values, read_template  # noqa: E402
from workflow_cli.engine.lifecycle import EngineServices, create_from_template  # noqa: E402
from workflow_cli.engine.runner import NullReporter, Runner, RunOptions  # noqa: E402
from workflow_cli.store.instances import load_state, open_journal  # noqa: E402
from workflow_cli.store.workspace import Workspace  # noqa: E402

VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "workflow_cli")

# Workspace agents, written into the temporary workspace as bench_agents.py and declared
# in its agents.yaml (the built-in `echo` agent needs no declaration).
BENCH_AGENTS_PY = '''\
"""Agents for bench/bench_engine.py (written into its temporary workspace)."""
import time


def noop(parameters):
    """Trivial real work: return the input."""
    return dict(parameters)


def sleep(parameters):
    """Wait the requested time, then return the input and when the wait began and ended
    (time.time()). In the scheduling benchmark the wait IS the workload being scheduled
    (a stand-in for I/O-bound work of known length); what is measured is when the engine
    starts each task, not how fast it sleeps."""
    began = time.time()
    time.sleep(float(parameters["seconds"]))
    return {**parameters, "began": began, "ended": time.time()}
'''
AGENTS_YAML = """\
agents:
  noop: {callable: "bench_agents:noop"}
  sleep: {callable: "bench_agents:sleep"}
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


# -- building definitions --------------------------------------------------------------


def definition(name: str, tasks: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": name,
        "name": name,
        "version": "1.0.0",
        "schema_version": "2.0.0",
        "tasks": tasks,
    }


def agent_task(agent: str, params: dict[str, Any], deps: list[str]) -> dict[str, Any]:
    return {"action": "agent_task", "agent_id": agent, "parameters": params, "dependencies": deps}


def chain_tasks(n: int, agent: str = "echo") -> dict[str, Any]:
    """t0 -> t1 -> ... -> t{n-1}."""
    return {f"t{i}": agent_task(agent, {"i": i}, [f"t{i - 1}"] if i else []) for i in range(n)}


def fanout_tasks(n: int, agent: str = "echo") -> dict[str, Any]:
    """One root -> n-2 parallel tasks -> one sink that depends on all of them."""
    middle = [f"m{i}" for i in range(n - 2)]
    tasks = {"root": agent_task(agent, {"i": -1}, [])}
    for i, task_id in enumerate(middle):
        tasks[task_id] = agent_task(agent, {"i": i}, ["root"])
    tasks["sink"] = agent_task(agent, {"i": n}, middle)
    return tasks


def chains_tasks(width: int, length: int, agent: str = "echo") -> dict[str, Any]:
    """`width` independent chains of `length` tasks (c{chain}_{step})."""
    tasks = {}
    for step in range(length):
        for c in range(width):
            deps = [f"c{c}_{step - 1}"] if step else []
            tasks[f"c{c}_{step}"] = agent_task(agent, {"c": c, "s": step}, deps)
    return tasks


SLOW, FAST, LEVELS = 0.1, 0.02, 5


def uneven_durations() -> dict[str, list[float]]:
    """Two independent chains of LEVELS tasks; at each level the slow task alternates
    between the chains: A = slow, fast, slow, ...; B = fast, slow, fast, ..."""
    a = [SLOW if level % 2 == 0 else FAST for level in range(LEVELS)]
    b = [FAST if level % 2 == 0 else SLOW for level in range(LEVELS)]
    return {"a": a, "b": b}


def uneven_tasks(*, by_level: bool = False) -> dict[str, Any]:
    """The two chains as a workflow. With `by_level`, each task depends on every task of
    the level before it: the same work, run the way a level-by-level scheduler runs it."""
    chains = uneven_durations()
    tasks = {}
    for chain, durations in chains.items():
        for level, seconds in enumerate(durations):
            if not level:
                deps = []
            elif by_level:
                deps = [f"{other}{level - 1}" for other in chains]
            else:
                deps = [f"{chain}{level - 1}"]
            tasks[f"{chain}{level}"] = agent_task("sleep", {"seconds": seconds}, deps)
    return tasks


# -- workspaces, instances, runs -------------------------------------------------------


def new_workspace(parent: Path, name: str, *, agents: bool = True) -> Workspace:
    root = parent / name
    root.mkdir(parents=True)
    if agents:
        (root / "bench_agents.py").write_text(BENCH_AGENTS_PY, encoding="utf-8")
        (root / "agents.yaml").write_text(AGENTS_YAML, encoding="utf-8")
    return Workspace.at(root)


def create(ws: Workspace, name: str, tasks: dict[str, Any]) -> str:
    """Write the definition to a file, read it as a template, create an instance."""
    path = ws.root / f"{name}.json"
    path.write_text(json.dumps(definition(name, tasks)), encoding="utf-8")
    template = read_template(path)
    return create_from_template(ws, template, fill_values(template, {}), utc_now)


def run(ws: Workspace, instance_id: str, workers: int, profiler: Any = None) -> float:
    """Runner.run wall time in seconds; the instance must complete."""
    options = RunOptions(max_workers=workers)
    runner = Runner(
        ws,
        instance_id,
        clock=utc_now,
        reporter=NullReporter(),
        options=options,
        services=EngineServices(ws, utc_now, options),
    )
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    outcome = runner.run()
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
    if outcome.state != "completed":
        raise SystemExit(f"benchmark run of {instance_id} ended {outcome.state}: {outcome.reason}")
    return elapsed


def create_and_run(
    parent: Path, name: str, tasks: dict[str, Any], workers: int, *, agents: bool = True
) -> tuple[float, Workspace, str]:
    ws = new_workspace(parent, name, agents=agents)
    instance_id = create(ws, name, tasks)
    return run(ws, instance_id, workers), ws, instance_id


def median_run(
    parent: Path, label: str, tasks: dict[str, Any], workers: int, runs: int, **kw: Any
) -> list[float]:
    return [create_and_run(parent, f"{label}-{i}", tasks, workers, **kw)[0] for i in range(runs)]


def create_run_samples(
    parent: Path, label: str, tasks: dict[str, Any], workers: int, runs: int
) -> tuple[list[float], list[float]]:
    """Wall and CPU time (the process's, all threads) of writing the definition to a
    file, reading it as a template, creating an instance and running it: what a user
    waits for. Each run is a new definition file (its own id) in a new workspace."""
    walls, cpus = [], []
    for i in range(runs):
        ws = new_workspace(parent, f"{label}-{i}", agents=False)
        cpu, started = time.process_time(), time.perf_counter()
        run(ws, create(ws, f"{label}-{i}", tasks), workers)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def journal_times(ws: Workspace, instance_id: str) -> dict[str, tuple[float, float]]:
    """(started, finished) per task from the journal, in seconds since the first start."""
    events = [
        json.loads(line.rsplit(b',"crc":', 1)[0] + b"}")
        for line in open_journal(ws, instance_id, utc_now).path.read_bytes().splitlines()
    ]
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    for event in events:
        stamp = datetime.fromisoformat(event["time"]).timestamp()
        if event["type"] == "task_started":
            started[event["task"]] = stamp
        elif event["type"] == "task_completed":
            finished[event["task"]] = stamp
    t0 = min(started.values())
    return {t: (started[t] - t0, finished[t] - t0) for t in started}


# -- results ---------------------------------------------------------------------------


def med(samples: list[float]) -> float:
    return statistics.median(samples)


# -- 1. per-task overhead --------------------------------------------------------------


def floor_run(folder: Path, tasks: dict[str, Any], workers: int) -> float:
    """The floor a durable runner cannot go below: the same graph ordered by graphlib,
    each task (a function returning its input) run on a pool of `workers` threads, and
    its completion appended to a journal and made durable (``os.fdatasync``) before its
    dependents start: one sync per batch of completions taken together, as the engine
    does. Wall time in seconds."""
    import graphlib
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    graph = graphlib.TopologicalSorter(
        {name: task.get("dependencies", []) for name, task in tasks.items()}
    )
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "floor.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    started = time.perf_counter()
    try:
        graph.prepare()
        with ThreadPoolExecutor(workers) as pool:
            running: dict[Future[Any], str] = {}
            while graph.is_active():
                for name in graph.get_ready():
                    line = json.dumps({"type": "task_started", "task": name}) + "\n"
                    os.write(fd, line.encode())
                    running[pool.submit(dict, tasks[name].get("parameters", {}))] = name
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                lines = [
                    json.dumps({"type": "task_completed", "task": running[f], "output": f.result()})
                    for f in done
                ]
                os.write(fd, ("\n".join(lines) + "\n").encode())
                os.fdatasync(fd)
                for future in done:
                    graph.done(running.pop(future))
    finally:
        os.close(fd)
    return time.perf_counter() - started


def bench_floor(tmp: Path, res: Results, runs: int) -> None:
    """The engine against the floor (`floor_run`), measured alternately in the same
    minutes so that the machine's load falls on both alike."""
    print("0. the engine against the floor (graphlib + threads + fdatasync)", flush=True)
    for key, label, tasks, target in (
        ("chain200", "chain of 200", chain_tasks(200), 1.3),
        ("fanout1000_w4", "fan-out/in of 1,000", fanout_tasks(1000), None),
    ):
        engine, floor = [], []
        for i in range(runs):
            floor.append(floor_run(tmp / f"floor-{key}-{i}", tasks, 4))
            engine.append(create_and_run(tmp, f"vsfloor-{key}-{i}", tasks, 4, agents=False)[0])
        res.add(
            f"{key}_vs_floor",
            f"{label}: run / floor",
            med(engine) / med(floor),
            "x",
            target,
            note=f"run {med(engine) * 1e3:.0f} ms, floor {med(floor) * 1e3:.0f} ms",
        )


def bench_overhead(tmp: Path, res: Results, runs: int, quick: bool) -> None:
    print("1. per-task engine overhead (Runner.run wall time / tasks)", flush=True)
    n = 200
    # The built-in echo agent, in a workspace without agents.yaml (see the noop row below
    # for what declaring agents in agents.yaml costs).
    walls = median_run(tmp, "chain200", chain_tasks(n), 4, runs, agents=False)
    res.add(
        "chain200_ms_per_task",
        "chain of 200, echo agent, 4 workers",
        med(walls) / n * 1e3,
        "ms/task",
        0.6,
        samples=[w / n * 1e3 for w in walls],
    )
    n = 1000
    for workers in (4,) if quick else (4, 8):
        walls = median_run(tmp, f"fan1000w{workers}", fanout_tasks(n), workers, runs, agents=False)
        res.add(
            f"fanout1000_w{workers}_ms_per_task",
            f"fan-out/in of 1,000, echo agent, {workers} workers",
            med(walls) / n * 1e3,
            "ms/task",
            0.3,
            samples=[w / n * 1e3 for w in walls],
        )
    for key, label, tasks, target in (
        ("chain200", "chain of 200", chain_tasks(200), 0.5),
        ("fanout1000_w4", "fan-out/in of 1,000", fanout_tasks(1000), 0.2),
    ):
        n = len(tasks)
        walls, cpus = create_run_samples(tmp, f"{key}-cr", tasks, 4, runs)
        res.add(
            f"{key}_create_run_ms_per_task",
            f"{label}: create + run, 4 workers",
            med(walls) / n * 1e3,
            "ms/task",
            target,
            samples=[w / n * 1e3 for w in walls],
            note=f"CPU {med(cpus) / n * 1e3:.3f} ms/task",
        )
    if not quick:
        # The same fan-out with an agent declared in the workspace's agents.yaml (a
        # Python callable, `bench_agents:noop`) instead of the built-in echo.
        walls = median_run(tmp, "fan1000noop", fanout_tasks(n, "noop"), 4, runs)
        res.add(
            "fanout1000_w4_workspace_callable_ms_per_task",
            "fan-out/in of 1,000, agents.yaml callable, 4 wkrs",
            med(walls) / n * 1e3,
            "ms/task",
            None,
            samples=[w / n * 1e3 for w in walls],
            note="info: same as above, agent declared in agents.yaml",
        )


# -- 2. event-driven vs level-by-level -------------------------------------------------


def bench_scheduling(tmp: Path, res: Results, runs: int) -> None:
    print("2. event-driven scheduling on uneven durations (sleep agent)", flush=True)
    durations = uneven_durations()
    critical = max(sum(d) for d in durations.values())
    walls = []
    level_walls = []
    spans = []
    gaps = []
    for i in range(runs):
        # The same engine and agents, alternately: with a barrier between levels, then
        # event-driven.
        level_walls.append(create_and_run(tmp, f"levels-{i}", uneven_tasks(by_level=True), 4)[0])
        wall, ws, instance_id = create_and_run(tmp, f"uneven-{i}", uneven_tasks(), 4)
        walls.append(wall)
        times = journal_times(ws, instance_id)
        spans.append(max(end for _, end in times.values()))
        # Dispatch latency, from the agents' own clocks: how long after a task's
        # dependency ended did the task begin (the engine's hop: record, fsync, submit).
        outputs = {
            t: s["output"]
            for t, s in load_state(open_journal(ws, instance_id, utc_now))["tasks"].items()
        }
        for chain, chain_durations in durations.items():
            for level in range(1, len(chain_durations)):
                gaps.append(
                    outputs[f"{chain}{level}"]["began"] - outputs[f"{chain}{level - 1}"]["ended"]
                )
    res.add("uneven_critical_path_s", "critical path (longest chain)", critical, "s")
    by_level = med(level_walls)
    res.add(
        "uneven_level_by_level_s",
        "level by level (a barrier between levels): run",
        by_level,
        "s",
        samples=level_walls,
        note=f"measured; = {by_level / critical:.2f} x critical path",
    )
    res.add("uneven_makespan_s", "makespan (Runner.run wall time)", med(walls), "s", samples=walls)
    res.add(
        "uneven_vs_level_by_level",
        "event-driven makespan / level-by-level run",
        med(walls) / by_level,
        "x",
        None,
        samples=[w / b for w, b in zip(walls, level_walls, strict=True)],
    )
    res.add(
        "uneven_makespan_ratio",
        "makespan / critical path",
        med(walls) / critical,
        "x",
        1.05,
        samples=[w / critical for w in walls],
    )
    res.add(
        "uneven_journal_span_ratio",
        "journal span (1st start..last done) / crit. path",
        med(spans) / critical,
        "x",
        None,
        samples=[s / critical for s in spans],
        note="info: makespan without run start/end bookkeeping",
    )
    res.add(
        "uneven_dispatch_latency_ms",
        "dependency ended -> dependent began (median hop)",
        med(gaps) * 1e3,
        "ms",
        None,
        samples=[g * 1e3 for g in gaps],
        note=f"info: agents' own clocks; max {max(gaps) * 1e3:.1f} ms",
    )


# -- 3. scale: 10,000 tasks ------------------------------------------------------------


def child_scale(args: argparse.Namespace) -> None:
    """In a fresh process: create and run `width` chains of `length`; print JSON."""
    home = Path(args.home)
    base_rss = peak_rss_mb()
    ws = new_workspace(home, "ws", agents=False)
    tasks = chains_tasks(args.width, args.length)
    started = time.perf_counter()
    instance_id = create(ws, "scale", tasks)
    created = time.perf_counter() - started
    del tasks
    create_rss = peak_rss_mb()
    wall = run(ws, instance_id, args.workers)
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "instance": instance_id,
                "home": str(ws.root),
                "tasks": args.width * args.length,
                "create_s": created,
                "run_s": wall,
                "rss_after_imports_mb": base_rss,
                "rss_after_create_mb": create_rss,
                "peak_rss_mb": peak,
            }
        )
    )


def scale_once(tmp: Path, name: str, width: int, length: int, workers: int) -> dict[str, Any]:
    home = tmp / name
    home.mkdir()
    cmd = [
        sys.executable,
        __file__,
        "--child-scale",
        "--home",
        str(home),
        "--width",
        str(width),
        "--length",
        str(length),
        "--workers",
        str(workers),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scale child failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench_scale(tmp: Path, res: Results, runs: int, small_runs: int) -> tuple[Path, str]:
    print("3. scale: 100 chains x 100 = 10,000 tasks vs 100 chains x 10 = 1,000", flush=True)
    # The 1,000-task runs are cheap, so they get the full run count even when the
    # 10,000-task ones are limited (the ratio's denominator is the noisier one).
    small = [scale_once(tmp, f"scale1k-{i}", 100, 10, 4) for i in range(small_runs)]
    big = [scale_once(tmp, f"scale10k-{i}", 100, 100, 4) for i in range(runs)]
    small_wall = med([r["run_s"] for r in small])
    big_wall = med([r["run_s"] for r in big])
    res.add(
        "scale10k_run_s",
        "10,000 tasks: Runner.run wall time",
        big_wall,
        "s",
        samples=[r["run_s"] for r in big],
    )
    res.add(
        "scale10k_ms_per_task",
        "10,000 tasks: per task",
        big_wall / 10000 * 1e3,
        "ms/task",
    )
    res.add(
        "scale10k_create_s",
        "10,000 tasks: create (validate + write instance)",
        med([r["create_s"] for r in big]),
        "s",
        samples=[r["create_s"] for r in big],
    )
    peak = max(r["peak_rss_mb"] for r in big)
    res.add(
        "scale10k_peak_rss_mb",
        "10,000 tasks: peak RSS of the process (max)",
        peak,
        "MB",
        300,
        samples=[r["peak_rss_mb"] for r in big],
        note=(
            f"after imports {big[0]['rss_after_imports_mb']:.0f} MB, "
            f"after create {med([r['rss_after_create_mb'] for r in big]):.0f} MB"
        ),
    )
    res.add(
        "scale1k_run_s",
        "1,000 tasks (same shape): Runner.run wall time",
        small_wall,
        "s",
        samples=[r["run_s"] for r in small],
    )
    res.add(
        "scale_ratio_10k_1k",
        "10,000 / 1,000 wall time",
        big_wall / small_wall,
        "x",
        11,
    )
    last = big[-1]
    return Path(last["home"]), last["instance"]


# -- 4. start-up -----------------------------------------------------------------------


def bench_startup(
    tmp: Path, res: Results, runs: int, big_home: Path | None, big_id: str | None
) -> None:
    print("4. start-up (whole processes)", flush=True)
    walls = time_command([CLI, "--help"], 10)
    res.add("cli_help_s", "workflow_cli --help", med(walls), "s", 0.15, samples=walls)
    if big_home is not None and big_id is not None:
        repeat = max(3, runs)
        walls = time_command([CLI, "--home", str(big_home), "status", big_id], repeat)
        res.add(
            "cli_status_10k_s",
            "workflow_cli status ID (10,000 tasks)",
            med(walls),
            "s",
            0.3,
            samples=walls,
        )
        walls = time_command([CLI, "--home", str(big_home), "status", big_id, "--json"], repeat)
        res.add(
            "cli_status_json_10k_s",
            "workflow_cli status ID --json (10,000 tasks)",
            med(walls),
            "s",
            0.3,
            samples=walls,
        )
    ws = new_workspace(tmp, "cli-run", agents=False)
    path = ws.root / "one.json"
    path.write_text(
        json.dumps(definition("one", {"only": agent_task("echo", {"hello": "world"}, [])})),
        encoding="utf-8",
    )
    # Alternately with `--version`, the floor of every command (Python, Typer, the
    # app's root), so the machine's speed at the time falls on both alike.
    walls, cpus, floor_walls, floor_cpus = [], [], [], []
    for _ in range(max(7, runs)):
        walls += time_command([CLI, "--home", str(ws.root), "run", str(path)], 1, cpu=cpus)
        floor_walls += time_command([CLI, "--version"], 1, cpu=floor_cpus)
    res.add(
        "cli_run_one_task_s",
        "workflow_cli run FILE (1 task, create + run)",
        med(walls),
        "s",
        0.2,
        samples=walls,
        note=f"CPU {med(cpus):.3f} s",
    )
    res.add(
        "cli_run_one_task_vs_version",
        "run FILE (1 task) / --version, CPU",
        med(cpus) / med(floor_cpus),
        "x",
        None,
        samples=[c / f for c, f in zip(cpus, floor_cpus, strict=True)],
        note=f"--version CPU {med(floor_cpus):.3f} s, wall {med(floor_walls):.3f} s",
    )


# -- profile ---------------------------------------------------------------------------


def warm_up(tmp: Path) -> None:
    """One small run first, so lazy imports (agents, Jinja, ...) are not charged to the
    first measured figure."""
    create_and_run(tmp, "warm-up", chain_tasks(10), 4, agents=False)


def profile_fanout(tmp: Path, workers: int, sort: str, top: int = 15) -> str:
    """cProfile of one 1,000-task fan-out Runner.run. cProfile sees only the thread that
    enables it: this is the scheduler thread (the agents run on executor threads)."""
    warm_up(tmp)
    ws = new_workspace(tmp, "profile", agents=False)
    instance_id = create(ws, "profile", fanout_tasks(1000))
    profiler = cProfile.Profile()
    wall = run(ws, instance_id, workers, profiler)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(sort).print_stats(top)
    return (
        f"1,000-task fan-out, {workers} workers: Runner.run wall time {wall:.3f} s under "
        f"cProfile (scheduler thread only; sorted by {sort})\n" + out.getvalue()
    )


def breakdown_fanout(tmp: Path, workers: int, shape: str) -> str:
    """Wall-clock time the runner's turns spend in the recorder, journal, lock and sync
    calls of one run, measured by wrapping those functions at run time (no profiler
    overhead; the engine's code is not changed). The wrapped names are the ones the
    engine calls: ``os.fdatasync`` for the journal, ``os.fsync`` for atomic writes
    (checkpoints, the state cache), ``fcntl.flock`` for the journal lock. A turn is
    taken on the runner's thread or on the executor thread that brought a result, so
    calls on every thread count (the bench's `echo` attempts make none of them)."""
    import collections
    import fcntl

    from workflow_cli.engine import recorder as recorder_module
    from workflow_cli.engine import runner as runner_module
    from workflow_cli.store import journal as journal_module

    warm_up(tmp)
    spent: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    undo: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)
        undo.append((owner, name, original))

        def timed(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[label] += time.perf_counter() - started
                calls[label] += 1

        setattr(owner, name, timed)

    order = [
        (recorder_module.Recorder, "flush", "Recorder.flush (all of it)"),
        (journal_module.Journal, "write", "  Journal.write"),
        (journal_module, "encode_record", "    encode_record"),
        (journal_module.Journal, "sync", "  Journal.sync"),
        (os, "fdatasync", "    os.fdatasync (journal)"),
        (fcntl, "flock", "  fcntl.flock (journal lock)"),
        (journal_module.Journal, "read_new", "  Journal.read_new"),
        (recorder_module.Recorder, "save_cache", "  Recorder.save_cache (state.json)"),
        (recorder_module, "write_checkpoint", "  write_checkpoint"),
        (os, "fsync", "    os.fsync (atomic writes)"),
        (recorder_module.Recorder, "record", "Recorder.record (fold, mask)"),
        (runner_module.Runner, "_start", "Runner._start"),
        (runner_module, "prepare_call", "  prepare_call (render, log)"),
        (runner_module.Runner, "_finish", "Runner._finish"),
    ]
    for owner, name, label in order:
        wrap(owner, name, label)
    tasks = {
        "fanout": lambda: fanout_tasks(1000),
        "chain": lambda: chain_tasks(200),
        "chains10k": lambda: chains_tasks(100, 100),
    }[shape]()
    ws = new_workspace(tmp, "breakdown", agents=False)
    instance_id = create(ws, "breakdown", tasks)
    spent.clear()
    calls.clear()
    try:
        wall = run(ws, instance_id, workers)
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)
    lines = [
        f"{shape} ({len(tasks)} tasks), {workers} workers: Runner.run {wall * 1e3:.0f} ms "
        f"= {wall / len(tasks) * 1e3:.3f} ms/task (runner thread, wall clock)",
        f"{'where':<38} {'ms':>8} {'% run':>6} {'calls':>7} {'us/call':>8}",
    ]
    for _, _, label in order:
        if calls[label]:
            lines.append(
                f"{label:<38} {spent[label] * 1e3:8.1f} {spent[label] / wall * 100:5.0f}% "
                f"{calls[label]:7d} {spent[label] / calls[label] * 1e6:8.1f}"
            )
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------

SECTIONS = ("floor", "overhead", "scheduling", "scale", "startup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="fewer runs and no extras (<40 s)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON summary here")
    parser.add_argument(
        "--profile", action="store_true", help="only print a cProfile of the 1,000 fan-out"
    )
    parser.add_argument(
        "--profile-sort", default="cumulative", help="pstats sort key for --profile"
    )
    parser.add_argument(
        "--breakdown",
        choices=["fanout", "chain", "chains10k"],
        nargs="?",
        const="fanout",
        help="only print where the scheduler thread's wall time goes (default shape fanout)",
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable); startup's status rows need scale",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    parser.add_argument("--child-scale", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_scale:
        child_scale(args)
        return

    tmp = Path(tempfile.mkdtemp(prefix="wfbench-"))
    try:
        if args.profile:
            print(profile_fanout(tmp, args.workers, args.profile_sort))
            return
        if args.breakdown:
            print(breakdown_fanout(tmp, args.workers, args.breakdown))
            return
        runs = args.runs
        scale_runs = min(runs, 3)
        if args.quick:
            runs, scale_runs = min(runs, 3), 1
        started = time.perf_counter()
        print(
            f"workflow_cli engine benchmark: {runs} runs per figure (median), "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, temp {tmp}",
            flush=True,
        )
        res = Results()
        only = set(args.only or SECTIONS)
        warm_up(tmp)
        if "floor" in only:
            bench_floor(tmp, res, max(runs, 5))
        if "overhead" in only:
            bench_overhead(tmp, res, runs, args.quick)
        if "scheduling" in only:
            bench_scheduling(tmp, res, runs)
        big_home, big_id = None, None
        if "scale" in only:
            big_home, big_id = bench_scale(tmp, res, scale_runs, runs)
        if "startup" in only:
            bench_startup(tmp, res, runs, big_home, big_id)
        elapsed = time.perf_counter() - started
        res.report(
            args.json_out,
            runs=runs,
            scale_runs=scale_runs,
            quick=args.quick,
            elapsed_s=round(elapsed, 1),
        )
        print(f"\ntotal {elapsed:.1f} s", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
