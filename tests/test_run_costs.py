"""What a run does per task, and no more.

Completions share an fsync until something acts on them (events.DEFERRED): a task's
completion is written at once but fsynced only before a task that depends on it starts,
with another durable event or a checkpoint, or `SETTLE_SECONDS` after the last fsync;
hooks and the progress display see it once it is on disk. What a run holds is frozen
from the garbage collector at checkpoints, and an attempt leaves no cycles behind.
"""

from __future__ import annotations

import gc
import json
import os
import weakref
from pathlib import Path
from typing import Any

import pytest
from conftest import journal_events, write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.engine import recorder as recorder_module
from workflow_cli.engine.executor import AttemptPool
from workflow_cli.engine.recorder import Recorder
from workflow_cli.store import events as ev
from workflow_cli.store.events import SETTLE_SECONDS
from workflow_cli.store.journal import Event, Journal
from workflow_cli.store.state import State, empty_state
from workflow_cli.store.workspace import Workspace


class Seen:
    """A reporter that keeps what it was handed, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_events(self, events: list[Event], state: State) -> None:
        self.events.extend(events)


def make_recorder(
    workspace: Path,
    now: list[float],
    tasks: tuple[str, ...] = ("a", "b", "c"),
    cache_interval: float = 1e9,
) -> tuple[Recorder, Seen, list[int]]:
    """A recorder of a started run of `tasks` on a journal that counts its fsyncs (the
    journal's last sequence number at each), with its clock at `now[0]`."""
    folder = workspace / "instances" / "i"
    folder.mkdir(parents=True)
    journal = Journal(folder / "events.jsonl", utc_now)
    synced: list[int] = []
    real_sync = journal.sync

    def counting_sync() -> None:
        synced.append(journal.last_seq)
        real_sync()

    journal.sync = counting_sync  # type: ignore[method-assign]
    seen = Seen()
    made = Recorder(
        Workspace.at(workspace),
        journal,
        empty_state(),
        reporter=seen,
        monotonic=lambda: now[0],
        cache_interval=cache_interval,
    )
    created = ev.instance_created(
        "i", template=None, workflow=None, params={}, parent=None, tasks=list(tasks)
    )
    made.write([created, ev.run_started(1, recovered=False, orphans_killed=[])])
    return made, seen, synced


def test_completions_wait_for_what_acts_on_them_and_are_reported_once_on_disk(workspace):
    now = [100.0]
    recorder, seen, synced = make_recorder(workspace, now)
    assert synced == [2] and len(seen.events) == 2  # run_started: at once
    recorder.write([ev.task_started("a", 1), ev.task_started("b", 1)])
    assert synced == [2] and len(seen.events) == 4  # a start is written, never waited on
    recorder.write([ev.task_completed("a", 1, 0.1, "A")])
    recorder.write([ev.task_completed("b", 1, 0.1, "B")])
    assert synced == [2]  # no fsync yet ...
    assert recorder.unsynced == {"a", "b"}
    on_file = Journal(recorder.journal.path, utc_now).read_new()
    assert [e["type"] for e in on_file][-2:] == ["task_completed", "task_completed"]  # written
    assert len(seen.events) == 4  # ... and not reported: hooks act only on what is on disk
    assert recorder.sync_due == 100.0 + SETTLE_SECONDS
    recorder.flush(sync=True)  # a task that depends on one is about to start
    assert synced == [2, 6] and recorder.unsynced == set() and recorder.sync_due is None
    assert [e["seq"] for e in seen.events] == [1, 2, 3, 4, 5, 6]  # in the journal's order


def test_waiting_completions_are_synced_with_a_durable_event_or_after_a_while(workspace):
    now = [100.0]
    recorder, seen, synced = make_recorder(workspace, now)
    recorder.write([ev.task_started("a", 1), ev.task_completed("a", 1, 0.1, "A")])
    now[0] += SETTLE_SECONDS / 2
    recorder.write([ev.task_started("b", 1)])
    assert synced == [2]  # not yet due; the start waits with the completion before it
    now[0] += SETTLE_SECONDS
    recorder.flush()  # the runner's next turn, nothing new
    assert synced == [2, 5] and [e["seq"] for e in seen.events] == [1, 2, 3, 4, 5]
    recorder.write([ev.task_completed("b", 1, 0.1, "B")])
    assert synced == [2, 5]
    recorder.write([ev.task_failed("c", 1, 0.1, {"message": "no", "kind": "error"})])
    assert synced == [2, 5, 7]  # a failure is synced at once, the completion with it
    assert [e["seq"] for e in seen.events] == list(range(1, 8))


def test_an_event_of_another_command_is_reported_after_the_completions_before_it(workspace):
    now = [100.0]
    recorder, seen, synced = make_recorder(workspace, now)
    recorder.write([ev.task_started("a", 1), ev.task_completed("a", 1, 0.1, "A")])
    other = Journal(recorder.journal.path, utc_now)
    other.read_new()
    other.append([ev.stop_requested("someone", None)])
    found = recorder.poll()
    assert [e["type"] for e in found] == ["stop_requested"]
    assert synced == [2, 5]  # what waited is made durable before the newer event is reported
    assert [e["seq"] for e in seen.events] == [1, 2, 3, 4, 5]


def fanout_definition(workspace: Path, middle: int) -> Path:
    tasks: dict[str, Any] = {"root": {"action": "agent_task", "agent_id": "echo"}}
    for n in range(middle):
        tasks[f"m{n}"] = {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"n": n},
            "dependencies": ["root"],
        }
    tasks["sink"] = {
        "action": "agent_task",
        "agent_id": "echo",
        "dependencies": [f"m{n}" for n in range(middle)],
    }
    tasks["after"] = {"action": "agent_task", "agent_id": "echo", "dependencies": ["sink"]}
    return write_definition(workspace, tasks)


def test_a_fanout_shares_fsyncs_and_no_task_runs_before_its_dependencies_are_on_disk(
    cli, workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    middle = 30
    # Only a dependent that starts asks for the fsync (no time-based one in this test).
    monkeypatch.setattr(recorder_module, "SETTLE_SECONDS", 1e9)
    durable = {"size": 0}
    syncs: list[int] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        real_fdatasync(fd)
        size = os.fstat(fd).st_size
        syncs.append(size)
        durable["size"] = max(durable["size"], size)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    definition = json.loads(fanout_definition(workspace, middle).read_text())
    dependencies = {t: spec.get("dependencies", []) for t, spec in definition["tasks"].items()}
    early: list[str] = []
    real_prepare = AttemptPool.prepare

    def prepare(self: Any, task_id: Any, number: int, run: Any, **kw: Any) -> Any:
        def checked() -> Any:  # on the executor's thread, as the attempt begins
            journal = workspace / "instances" / instance["id"] / "events.jsonl"
            lines = journal.read_bytes()[: durable["size"]].splitlines()
            done = {
                json.loads(line.rsplit(b',"crc":', 1)[0] + b"}").get("task")
                for line in lines
                if b'"type":"task_completed"' in line
            }
            early.extend(f"{task_id} before {d}" for d in dependencies[task_id] if d not in done)
            return run()

        return real_prepare(self, task_id, number, checked, **kw)

    monkeypatch.setattr(AttemptPool, "prepare", prepare)
    instance: dict[str, str] = {}
    created = cli("create", "wf.json", "--json")
    assert created.exit_code == 0, created
    instance["id"] = created.json()["id"]
    result = cli("start", instance["id"], "--json")
    assert result.exit_code == 0, result
    assert result.json()["state"] == "completed"
    assert early == []  # every dependency's completion was on disk before its dependent ran
    completed = journal_events(workspace, instance["id"], "task_completed")
    assert len(completed) == middle + 3
    # The middle tasks' completions share the fsync made before the sink starts.
    assert len(syncs) < middle


def test_a_run_freezes_what_it_holds_at_checkpoints_and_lets_go_at_its_end(cli, workspace):
    (workspace / "probe.py").write_text(
        "import gc\n\ndef run(parameters):\n    return {'frozen': gc.get_freeze_count()}\n"
    )
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"probe": {"callable": "probe:run"}}})
    )
    tasks = {
        "first": {"action": "agent_task", "agent_id": "echo"},
        "probe": {"action": "agent_task", "agent_id": "probe", "dependencies": ["first"]},
    }
    gc.unfreeze()
    result = cli("run", str(write_definition(workspace, tasks)), "--json")
    assert result.exit_code == 0, result
    completed = journal_events(workspace, result.json()["id"], "task_completed")
    probe = next(e for e in completed if e["task"] == "probe")
    assert probe["output"]["frozen"] > 0  # the run's start checkpoint froze what it held
    assert gc.get_freeze_count() == 0  # handed back when the run ended


def test_rendering_an_attempts_parameters_leaves_no_cycle_to_collect():
    from workflow_cli.definition.expressions import render_value

    context = {"params": {"n": 2}, "steps": {}}
    value = {"a": ["{{ params.n + 1 }}", {"b": "x"}]}
    render_value(value, context)  # compiles the template once, kept for the process
    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            rendered = render_value(value, context)
        assert rendered == {"a": [3, {"b": "x"}]}
        assert gc.collect() == 0  # all freed as it went, none left for the collector
    finally:
        gc.enable()


def test_a_finished_run_is_freed_at_once_not_at_the_next_full_collection(workspace):
    """A long-lived process (the server) runs many instances: what a run held goes when
    the run is over, without waiting for the collector."""
    from workflow_cli.definition.templates import fill_values, read_template
    from workflow_cli.engine.lifecycle import EngineServices, create_from_template
    from workflow_cli.engine.runner import Runner
    from workflow_cli.engine.runs import RunOptions

    tasks = {
        "each": {"action": "agent_task", "agent_id": "echo", "for_each": [1, 2, 3]},
        "after": {"action": "agent_task", "agent_id": "echo", "dependencies": ["each"]},
    }
    template = read_template(write_definition(workspace, tasks))
    ws = Workspace.at(workspace)
    instance_id = create_from_template(ws, template, fill_values(template, {}), utc_now)
    options = RunOptions(max_workers=2)
    services = EngineServices(ws, utc_now, options)
    runner = Runner(ws, instance_id, clock=utc_now, options=options, services=services)
    gc.collect()
    gc.disable()
    try:
        assert runner.run().state == "completed"
        freed = weakref.ref(runner)
        del runner
        assert freed() is None
    finally:
        gc.enable()


def test_a_large_instances_brief_is_written_between_the_rarer_state_caches(workspace, monkeypatch):
    """Writing a large state takes long, so it is written rarely (at most 5% of the run's
    time); the brief `status` reads is written between, once the journal has grown."""
    from workflow_cli.store.files import unseal
    from workflow_cli.store.status_cache import MIN_TASKS, STATUS_FILE

    now = [100.0]
    written: list[str] = []
    real_state_cache = recorder_module.save_state_cache
    real_status_cache = recorder_module.save_status_cache

    def slow_state_cache(journal: Journal, state: State, *, durable: bool = False) -> None:
        real_state_cache(journal, state, durable=durable)
        written.append("state")
        now[0] += 2.0  # the whole state took 2 s to write: the next in 40 s

    def status_cache(journal: Journal, state: State) -> None:
        real_status_cache(journal, state)
        written.append("status")

    monkeypatch.setattr(recorder_module, "save_state_cache", slow_state_cache)
    monkeypatch.setattr(recorder_module, "save_status_cache", status_cache)
    tasks = tuple(f"t{i}" for i in range(MIN_TASKS))
    recorder, _, _ = make_recorder(workspace, now, tasks, cache_interval=1.0)
    now[0] = 101.5
    recorder.write([ev.task_started("t0", 1)])
    assert written == ["state"]
    now[0] = 104.0
    recorder.write([ev.task_completed("t0", 1, 0.0, True)])
    assert written == ["state"] and recorder.wake_at == 104.5  # the brief: a second later
    now[0] = 104.5
    recorder.flush()
    assert written == ["state", "status"]
    brief = unseal((workspace / "instances" / "i" / STATUS_FILE).read_bytes())
    assert brief is not None and brief["offset"] == recorder.journal.offset
    assert brief["counts"] == {"completed": 1, "pending": MIN_TASKS - 1}
    now[0] = 110.0
    recorder.flush()  # nothing written since: neither is written again
    assert written == ["state", "status"] and recorder.wake_at is None
