"""What grows faster than the task count: one in-process run of 100 chains (as the child
of ``bench_100k.py``: ``create_from_template``, then ``Runner.run`` with a
``NullReporter``, 4 workers), its CPU time (rusage) per task, and with ``--profile OUT``
its cProfile rows saved; ``--compare SMALL LARGE`` prints the functions whose time per
task grew the most from one saved profile to the other.

    .venv/bin/python bench/profile_scale.py --length 200 --profile p20.json
    .venv/bin/python bench/profile_scale.py --length 600 --profile p60.json
    .venv/bin/python bench/profile_scale.py --compare p20.json p60.json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_engine as engine
from bench_100k import WIDTH, compact_chains

from workflow_cli.definition.templates import Template
from workflow_cli.engine.lifecycle import create_from_template


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(length: int, out: Path | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="profile-scale-"))
    try:
        ws = engine.new_workspace(tmp, "ws", agents=False)
        document = engine.definition("scale", compact_chains(WIDTH, length))
        template = Template("scale", "", {}, document, "scale (in memory)")
        instance = create_from_template(ws, template, {}, engine.utc_now)
        profiler = cProfile.Profile() if out else None
        before = cpu_seconds()
        wall = engine.run(ws, instance, 4, profiler)
        cpu = cpu_seconds() - before
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = WIDTH * length
    figures = {"tasks": n, "run_s": wall, "run_cpu_s": cpu, "cpu_ms_per_task": cpu / n * 1e3}
    print(json.dumps(figures))
    if profiler is not None and out is not None:
        stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        rows = {f"{f}:{line}:{name}": [v[1], v[2], v[3]] for (f, line, name), v in stats.items()}
        out.write_text(json.dumps({"tasks": n, "rows": rows}), encoding="utf-8")


def compare(small: Path, large: Path, top: int = 25) -> None:
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (small, large))
    print(f"µs per task (tottime, then cumulative) at {a['tasks']:,} and {b['tasks']:,} tasks")
    rows = []
    for key in set(a["rows"]) | set(b["rows"]):
        ra, rb = a["rows"].get(key, [0, 0, 0]), b["rows"].get(key, [0, 0, 0])
        ta, tb = ra[1] / a["tasks"] * 1e6, rb[1] / b["tasks"] * 1e6
        ca, cb = ra[2] / a["tasks"] * 1e6, rb[2] / b["tasks"] * 1e6
        rows.append((tb - ta, key, ta, tb, ca, cb))
    for grew, key, ta, tb, ca, cb in sorted(rows, reverse=True)[:top]:
        print(f"{grew:+8.2f}  {ta:8.2f} -> {tb:8.2f}  (cum {ca:8.2f} -> {cb:8.2f})  {key}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--compare", type=Path, nargs=2)
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
    else:
        measure(args.length, args.profile)


if __name__ == "__main__":
    main()
