"""Compare the engine benchmark of two checkouts, measured alternately in one session.

    .venv/bin/python bench/compare.py --base ../other-checkout [--rounds 3] [--full]

Each round runs ``bench/bench_engine.py --quick`` (or the full set with ``--full``) of
the base checkout, with the base's own ``.venv``, then of this one, so that both see the
same machine at nearly the same time. It prints each figure's median over the rounds for
both and the ratio this/base (below 1 is faster here). Figures are whatever both
benchmarks report under the same key.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def one_run(checkout: Path, full: bool) -> dict[str, float]:
    python = checkout / ".venv" / "bin" / "python"
    if not python.exists():
        sys.exit(f"{checkout} has no .venv; create one with its test extras first")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        args = [str(python), str(checkout / "bench" / "bench_engine.py"), "--json-out", str(out)]
        if not full:
            args.append("--quick")
        subprocess.run(args, cwd=checkout, check=True, capture_output=True, text=True)
        figures = json.loads(out.read_text())["figures"]
    return {key: float(f["value"]) for key, f in figures.items() if f.get("value") is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="the full benchmark, not --quick")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"base": [], "this": []}
    for n in range(args.rounds):
        for name, checkout in (("base", args.base.resolve()), ("this", HERE)):
            print(f"round {n + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            runs[name].append(one_run(checkout, args.full))
    keys = sorted(set(runs["base"][0]) & set(runs["this"][0]))
    print(f"{'figure':48} {'base':>10} {'this':>10} {'this/base':>9}")
    for key in keys:
        base = statistics.median(r[key] for r in runs["base"])
        this = statistics.median(r[key] for r in runs["this"])
        ratio = this / base if base else float("nan")
        print(f"{key:48} {base:10.4g} {this:10.4g} {ratio:9.3f}")


if __name__ == "__main__":
    main()
