"""``status`` of a large instance reads its status cache (``status.json``), and shows the
same as the fold of its journal; a damaged or stale cache is not used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from conftest import start_runner, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.store import events as ev
from workflow_cli.store.files import unseal
from workflow_cli.store.journal import Journal
from workflow_cli.store.runlock import RunLock
from workflow_cli.store.status_cache import KEPT_TASKS, MIN_TASKS, STATUS_FILE


def _large(workspace, cli, *, failing: int = 0):
    """An instance of MIN_TASKS independent tasks (`failing` of them divide by zero),
    created, not run: every task pending."""
    tasks = {
        f"t{i}": {
            "action": "condition_check",
            "parameters": {"expression": "1 / 0" if i < failing else "1"},
            "on_failure": "continue",
        }
        for i in range(MIN_TASKS)
    }
    path = write_definition(workspace, tasks, "large.json")
    return cli("create", str(path), "--json").json()["id"]


def _folder(workspace, instance):
    return workspace / "instances" / instance


def test_created_large_instance_lists_the_first_tasks_and_counts_the_rest(cli, workspace):
    instance = _large(workspace, cli)
    assert (_folder(workspace, instance) / STATUS_FILE).is_file()
    shown = cli("status", instance, "--limit", "5")
    assert shown.exit_code == 0
    assert f"{MIN_TASKS} pending" in shown.stdout
    assert f"({MIN_TASKS - 5} more tasks not completed or skipped" in shown.stdout
    rows = [line.split()[0] for line in shown.stdout.splitlines() if line.startswith("t")][1:]
    assert rows == ["t0", "t1", "t2", "t3", "t4"]


def _without_cache(cli, workspace, instance, *args):
    """`status` as the fold of the journal shows it (the status cache moved away)."""
    cache = _folder(workspace, instance) / STATUS_FILE
    kept = cache.read_bytes()
    cache.unlink()
    try:
        return cli("status", instance, *args).stdout
    finally:
        cache.write_bytes(kept)


def test_status_from_the_cache_is_what_the_journal_says(cli, workspace):
    instance = _large(workspace, cli, failing=3)
    stale = (_folder(workspace, instance) / STATUS_FILE).read_bytes()  # all pending
    assert cli("start", instance).exit_code == 0  # three tasks failed, the run went on
    for args in ((), ("--limit", "2"), ("--limit", str(KEPT_TASKS))):
        shown = cli("status", instance, *args)
        assert shown.exit_code == 0
        assert shown.stdout == _without_cache(cli, workspace, instance, *args)
    shown = cli("status", instance, "--limit", "2").stdout
    assert "997 completed, 3 failed" in shown
    assert "(1 more tasks not completed or skipped" in shown
    assert "division by zero" in shown
    # Stale (the journal has grown since it was written): the journal's fold is shown.
    (_folder(workspace, instance) / STATUS_FILE).write_bytes(stale)
    assert "997 completed, 3 failed" in cli("status", instance).stdout
    assert f"{MIN_TASKS} pending" not in cli("status", instance).stdout


def test_a_damaged_status_cache_is_not_used(cli, workspace):
    instance = _large(workspace, cli)
    cache = _folder(workspace, instance) / STATUS_FILE
    data = cache.read_bytes()
    assert f'"pending": {MIN_TASKS}'.encode() in data
    cache.write_bytes(data.replace(f'"pending": {MIN_TASKS}'.encode(), b'"pending": 7'))
    shown = cli("status", instance)
    assert f"{MIN_TASKS} pending" in shown.stdout
    cache.write_text("{}")
    assert f"{MIN_TASKS} pending" in cli("status", instance).stdout
    assert json.loads(cli("status", instance, "--json").stdout)["progress"]["total"] == MIN_TASKS


def test_small_instances_have_no_status_cache(cli, workspace):
    path = write_definition(
        workspace, {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    instance = cli("create", str(path), "--json").json()["id"]
    assert not (_folder(workspace, instance) / STATUS_FILE).exists()
    assert "1 pending" in cli("status", instance).stdout


def test_the_journal_digest_is_checked_only_when_the_file_changed(cli, workspace, monkeypatch):
    """The cache notes the journal file (inode, size, modification time): while the file
    is as noted, the journal is not read and hashed again; once it was written, it is."""
    instance = _large(workspace, cli)
    journal = _folder(workspace, instance) / "events.jsonl"
    checked: list[int] = []
    original = Journal.skip_to

    def counting(self, offset, last_seq, digest):
        checked.append(offset)
        return original(self, offset, last_seq, digest)

    monkeypatch.setattr(Journal, "skip_to", counting)
    assert f"{MIN_TASKS} pending" in cli("status", instance).stdout
    assert checked == []
    data = journal.read_bytes()
    journal.write_bytes(data)  # the same bytes written again: its digest is checked
    noted = journal.stat().st_mtime_ns
    os.utime(journal, ns=(noted, noted + 1_000_000_000))  # a later time, whatever the clock
    assert f"{MIN_TASKS} pending" in cli("status", instance).stdout
    assert checked == [len(data)]
    # Other bytes of the same size: not the journal the cache stands for.
    journal.write_bytes(data.replace(b'"t0"', b'"x0"', 1))
    os.utime(journal, ns=(noted, noted + 2_000_000_000))
    shown = cli("status", instance)
    assert shown.exit_code != 0
    assert "damaged" in shown.stderr


def test_while_a_runner_executes_it_status_shows_its_latest_brief_and_how_old(cli, workspace):
    """The journal has grown since the brief was written: with a runner holding the run
    lock, `status` shows the brief and how far behind it is; `status --json` (every
    event) and, once no runner holds it, `status` show the journal as it is."""
    instance = _large(workspace, cli)
    folder = _folder(workspace, instance)
    lock = RunLock(folder)
    lock.acquire(instance)
    try:
        journal = Journal(folder / "events.jsonl", utc_now)
        journal.append([ev.run_started(os.getpid(), recovered=False, orphans_killed=[])])
        journal.append([ev.task_started("t0", 1), ev.task_completed("t0", 1, 0.0, True)])
        journal.close()
        shown = cli("status", instance)
        assert shown.exit_code == 0
        assert f"{MIN_TASKS} pending" in shown.stdout  # the brief, as it was written
        assert "s ago: the runner's latest brief; the run goes on" in shown.stdout
        every = cli("status", instance, "--json").json()
        assert every["tasks"]["t0"]["state"] == "completed"
    finally:
        lock.release()
    shown = cli("status", instance).stdout
    assert "1 completed" in shown and "the run goes on" not in shown


def test_a_brief_behind_the_journal_is_not_shown_when_no_runner_holds_it(cli, workspace):
    instance = _large(workspace, cli)
    journal = Journal(_folder(workspace, instance) / "events.jsonl", utc_now)
    journal.append([ev.task_started("t0", 1), ev.task_completed("t0", 1, 0.0, True)])
    journal.close()
    shown = cli("status", instance).stdout
    assert "1 completed" in shown and "the run goes on" not in shown


def test_the_runner_keeps_a_large_instances_brief_up_to_date_as_it_goes(workspace):
    """A run of many quick tasks, then one that waits for a file: while it waits, the
    brief the runner wrote stands for the whole journal, so `status` shows it as it is."""
    (workspace / "waits.py").write_text(
        "import pathlib, time\n\n"
        "def run(parameters):\n"
        "    deadline = time.monotonic() + 120\n"
        "    while not pathlib.Path(parameters['file']).exists():\n"
        "        if time.monotonic() > deadline:\n"
        "            raise RuntimeError('no go file')\n"
        "        time.sleep(0.05)\n"
        "    return {}\n"
    )
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"waits": {"callable": "waits:run"}}})
    )
    go = workspace / "go"
    tasks: dict[str, Any] = {
        f"t{i}": {"action": "condition_check", "parameters": {"expression": "1"}}
        for i in range(MIN_TASKS)
    }
    tasks["slow"] = {
        "action": "agent_task",
        "agent_id": "waits",
        "parameters": {"file": str(go)},
        "dependencies": ["t0"],
    }
    instance, runner = start_runner(workspace, write_definition(workspace, tasks, "big.json"))
    try:
        folder = _folder(workspace, instance)
        deadline = time.monotonic() + 60
        while True:  # the quick tasks done, the brief written again after them
            brief = unseal((folder / STATUS_FILE).read_bytes()) or {}
            size = (folder / "events.jsonl").stat().st_size
            if brief.get("counts", {}).get("completed") == MIN_TASKS:
                break
            assert time.monotonic() < deadline, brief.get("counts")
            assert runner.poll() is None, runner.communicate()
            time.sleep(0.1)
        assert brief["offset"] == size  # nothing written since: the brief is the journal
        assert brief["counts"] == {"completed": MIN_TASKS, "running": 1}
        shown = subprocess.run(
            [sys.executable, "-m", "workflow_cli", "status", instance],
            cwd=workspace,
            env={**os.environ, "WORKFLOW_HOME": str(workspace)},
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert f"{MIN_TASKS} completed, 1 running" in shown and "goes on" not in shown
    finally:
        go.write_text("go")
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err
