"""for_each benchmark for workflow_cli: 10,000 items of a trivial action.

Run from the project root:

    .venv/bin/python bench/bench_foreach.py                  # 10,000 items, both kinds
    .venv/bin/python bench/bench_foreach.py --items 2000     # fewer
    .venv/bin/python bench/bench_foreach.py --json-out bench/foreach.json

Each run happens in a fresh process (so its peak memory is its own): a workspace is
made in a temporary folder, a definition whose task ``each`` has ``for_each`` over
``range(N)`` is validated and instantiated with `create_from_template`, and run by
`Runner.run` with the durable journal (fsync per batch) and the state cache, as
``workflow_cli start`` does, minus terminal output. Two kinds of item:

- ``condition_check`` (``item * 2``): an inline action, run on the runner's thread, so
  the figures are the engine's own cost per item (planning, events, fold, journal);
- the built-in ``echo`` agent through ``agent_task``: each item handed to the thread
  executor and back, with ``max_parallel`` 8 — the path any real agent takes.

Figures: wall time of the run and per item, peak RSS of the process (VmHWM) and its
growth over a 10-item run of the same kind, journal bytes in all and per item,
``state.json`` bytes, and the time to fold the whole journal again (what ``resume`` or
``status`` without the state cache pays). Nothing in the engine is mocked.
"""

from __future__ import annotations

import argparse
import json
import os
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

from harness import Results, peak_rss_mb  # noqa: E402

from workflow_cli.definition.templates import fill_values, read_template  # noqa: E402
from workflow_cli.engine.lifecycle import EngineServices, create_from_template  # noqa: E402
from workflow_cli.engine.runner import NullReporter, Runner, RunOptions  # noqa: E402
from workflow_cli.store.instances import load_state, open_journal  # noqa: E402
from workflow_cli.store.workspace import Workspace  # noqa: E402

KINDS = ("inline", "echo")


def utc_now() -> datetime:
    return datetime.now(UTC)


def for_each_tasks(kind: str, items: int) -> dict[str, Any]:
    if kind == "inline":
        each: dict[str, Any] = {
            "action": "condition_check",
            "parameters": {"expression": "item * 2"},
        }
    else:
        each = {
            "action": "agent_task",
            "agent_id": "echo",
            "max_parallel": 8,
            "parameters": {"value": "{{ item }}"},
        }
    each["for_each"] = f"{{{{ range({items}) | list }}}}"
    count = {
        "action": "condition_check",
        "dependencies": ["each"],
        "parameters": {"expression": "steps.each.output | length"},
    }
    return {"each": each, "count": count}


def child(args: argparse.Namespace) -> None:
    """In a fresh process: create and run one for_each workflow; print JSON figures."""
    ws = Workspace.at(Path(args.home))
    path = ws.root / "foreach.json"
    definition = {
        "id": "foreach",
        "name": "foreach",
        "version": "1.0.0",
        "schema_version": "2.0.0",
        "tasks": for_each_tasks(args.kind, args.items),
    }
    path.write_text(json.dumps(definition), encoding="utf-8")
    template = read_template(path)
    instance_id = create_from_template(ws, template, fill_values(template, {}), utc_now)
    options = RunOptions(max_workers=8)
    runner = Runner(
        ws,
        instance_id,
        clock=utc_now,
        reporter=NullReporter(),
        options=options,
        services=EngineServices(ws, utc_now, options),
    )
    started = time.perf_counter()
    outcome = runner.run()
    wall = time.perf_counter() - started
    peak_mb = peak_rss_mb()
    if outcome.state != "completed":
        raise SystemExit(f"run ended {outcome.state}: {outcome.reason}")
    folder = ws.instance_dir(instance_id)
    journal = open_journal(ws, instance_id, utc_now)
    began = time.perf_counter()
    state = load_state(journal, use_cache=False)
    fold = time.perf_counter() - began
    if state["tasks"]["count"]["output"] != args.items:
        raise SystemExit(f"expected {args.items} outputs, got {state['tasks']['count']['output']}")
    lines = (folder / "events.jsonl").read_bytes().count(b"\n")
    print(
        json.dumps(
            {
                "run_s": wall,
                "peak_rss_mb": peak_mb,
                "journal_bytes": (folder / "events.jsonl").stat().st_size,
                "journal_events": lines,
                "state_bytes": (folder / "state.json").stat().st_size,
                "fold_s": fold,
            }
        )
    )


def measure(tmp: Path, kind: str, items: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"{kind}-{items}-", dir=tmp))
    cmd = [sys.executable, __file__, "--child", "--home", str(home), "--kind", kind]
    done = subprocess.run(
        [*cmd, "--items", str(items)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    res = Results()
    n = args.items
    with tempfile.TemporaryDirectory(prefix="bench-foreach-") as folder:
        tmp = Path(folder)
        for kind in KINDS:
            label = "condition_check (inline)" if kind == "inline" else "echo agent (threads)"
            print(f"for_each over {n:,} items, {label}", flush=True)
            small = measure(tmp, kind, 10)
            big = measure(tmp, kind, n)
            res.add(f"{kind}_run_s", f"{kind}: run wall time", big["run_s"], "s")
            per_item = big["run_s"] / n * 1e6
            res.add(f"{kind}_per_item_us", f"{kind}: wall time per item", per_item, "us")
            res.add(f"{kind}_peak_rss_mb", f"{kind}: peak RSS", big["peak_rss_mb"], "MB")
            growth = big["peak_rss_mb"] - small["peak_rss_mb"]
            res.add(f"{kind}_rss_growth_mb", f"{kind}: peak RSS over a 10-item run", growth, "MB")
            res.add(f"{kind}_journal_mb", f"{kind}: journal", big["journal_bytes"] / 1e6, "MB")
            per_item_bytes = (big["journal_bytes"] - small["journal_bytes"]) / (n - 10)
            res.add(f"{kind}_journal_per_item", f"{kind}: journal per item", per_item_bytes, "B")
            res.add(f"{kind}_state_mb", f"{kind}: state.json", big["state_bytes"] / 1e6, "MB")
            res.add(f"{kind}_fold_s", f"{kind}: fold the whole journal again", big["fold_s"], "s")
    res.report(args.json_out, items=n, load_average=[round(x, 2) for x in os.getloadavg()])


if __name__ == "__main__":
    main()
