"""``status`` of a large instance reads its status cache (``status.json``), and shows the
same as the fold of its journal; a damaged or stale cache is not used."""

from __future__ import annotations

import json
import os

from conftest import write_definition

from workflow_cli.store.journal import Journal
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
