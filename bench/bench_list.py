"""`workflow_cli list` on a workspace of many instances: the time of the real command.

One instance of a four-task workflow is run for real; its folder is then copied under
new ids (the id rewritten in its journal, so each copy is a whole instance whose state
cache and journal agree) until the workspace holds `--instances` of them.
Each figure is the median wall time of `--runs` runs of the installed
command as a separate process, output piped (what a script sees). The floor is
`workflow_cli --version` (start-up, no instance read); "no summaries kept" lists with the
summary index removed before each run, so every instance's state cache is read.

    .venv/bin/python bench/bench_list.py                  # 1,000 instances, median of 5
    .venv/bin/python bench/bench_list.py --instances 200 --runs 9
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Results

TARGET_SECONDS = 0.3
_CRC_MARK = b',"crc":"'
_DEFINITION = {
    "id": "bench_list",
    "name": "list benchmark",
    "version": "1",
    "schema_version": "2.0.0",
    "tasks": {
        name: {"action": "condition_check", "parameters": {"expression": "1 + 1"}}
        for name in ("a", "b", "c", "d")
    },
}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "WORKFLOW_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "workflow_cli", *args],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )


def _renamed_journal(journal: bytes, old: str, new: str) -> bytes:
    """The journal with the instance id changed, each line's CRC made again."""
    lines = []
    for line in journal.splitlines():
        raw = line[: line.rindex(_CRC_MARK)].replace(old.encode(), new.encode())
        lines.append(raw + _CRC_MARK + b"%08x" % zlib.crc32(raw) + b'"}\n')
    return b"".join(lines)


def build_workspace(home: Path, count: int) -> None:
    """`count` instances: one run for real, the rest copies of it under new ids."""
    from workflow_cli.store.instances import load_state, save_state_cache
    from workflow_cli.store.journal import Journal

    def clock() -> datetime:
        return datetime.now(UTC)

    definition = home / "wf.json"
    definition.write_text(json.dumps(_DEFINITION))
    seed = _cli(home, "run", str(definition), "--json").stdout
    seed_id = json.loads(seed)["id"]
    seed_dir = home / "instances" / seed_id
    journal = (seed_dir / "events.jsonl").read_bytes()
    for number in range(1, count):
        new_id = f"bench-{number:05d}"
        target = home / "instances" / new_id
        shutil.copytree(seed_dir, target)
        (target / "events.jsonl").write_bytes(_renamed_journal(journal, seed_id, new_id))
        (target / "state.json").unlink()
        # Its state cache, as the runner leaves one when a run ends.
        journal_of_copy = Journal(target / "events.jsonl", clock)
        save_state_cache(journal_of_copy, load_state(journal_of_copy), durable=False)
        journal_of_copy.close()


def time_command(
    home: Path, args: list[str], runs: int, *, forget: bool = False
) -> tuple[list[float], list[float]]:
    """Wall times and CPU times (user + system of the command's process) of `runs` runs.
    On a machine shared with other work the CPU time is the steadier figure. With
    `forget`, the kept summaries (``instances/.summaries.json``) are removed before each
    run, so that every instance is read."""
    walls, cpus = [], []
    for _ in range(runs):
        if forget:
            (home / "instances" / ".summaries.json").unlink(missing_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        _cli(home, *args)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-list-"))
    try:
        print(f"building a workspace of {options.instances} instances in {home} …", flush=True)
        build_workspace(home, options.instances)
        results = Results()
        # The floor: the command's start-up, with no instance read.
        walls, cpus = time_command(home, ["--version"], options.runs)
        results.add(
            "version", "workflow_cli --version (floor)", statistics.median(walls), "s", None, walls
        )
        results.add("version_cpu", "  CPU time of it", statistics.median(cpus), "s", None, cpus)
        walls, cpus = time_command(home, ["list"], options.runs, forget=True)
        label = f"workflow_cli list, no summaries kept ({options.instances} instances)"
        results.add("list_cold", label, statistics.median(walls), "s", None, walls)
        results.add("list_cold_cpu", "  CPU time of it", statistics.median(cpus), "s", None, cpus)
        for key, args in (
            ("list", ["list"]),
            ("list_all", ["list", "--all"]),
            ("list_json", ["list", "--all", "--json"]),
            ("list_state", ["list", "--state", "failed"]),
        ):
            walls, cpus = time_command(home, args, options.runs)
            label = f"workflow_cli {' '.join(args)} ({options.instances} instances)"
            results.add(key, label, statistics.median(walls), "s", TARGET_SECONDS, walls)
            results.add(f"{key}_cpu", "  CPU time of it", statistics.median(cpus), "s", None, cpus)
    finally:
        if options.keep:
            print(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
