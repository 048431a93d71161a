"""What keeps a large run linear: checkpoints numbered from a count the run keeps (not by
listing a folder that grows with the run), and outboxes looked at for the tasks that wait
for a mailbox agent (not by reading every task's state at every look)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.engine.mailbox import OutboxWatch
from workflow_cli.engine.recorder import NullReporter, Recorder
from workflow_cli.store import checkpoints
from workflow_cli.store import events as ev
from workflow_cli.store.checkpoints import list_checkpoints, write_checkpoint
from workflow_cli.store.journal import Journal
from workflow_cli.store.state import State, empty_state
from workflow_cli.store.workspace import Workspace


def new_state(instance_id: str, tasks: list[str]) -> State:
    state = empty_state()
    state["id"] = instance_id
    state["tasks"] = {t: {"state": "pending", "attempts": 0} for t in tasks}  # type: ignore[typeddict-item]
    state["offset"] = 0
    return state


def test_checkpoint_number_given_is_taken_when_free_else_the_folder_is_listed(workspace):
    ws = Workspace.at(workspace)
    (workspace / "instances" / "i").mkdir(parents=True)
    state = new_state("i", ["a"])
    now = utc_now()
    first = write_checkpoint(ws, state, kind="auto", label=None, now=now, number=1)
    second = write_checkpoint(ws, state, kind="auto", label=None, now=now, number=2)
    # Another command took number 3 meanwhile: a count of 3 is not taken, the folder is listed.
    manual = write_checkpoint(ws, state, kind="manual", label="by hand", now=now)
    assert manual["id"] == "0003-manual"
    third = write_checkpoint(ws, state, kind="auto", label=None, now=now, number=3)
    assert [first["id"], second["id"], third["id"]] == ["0001-auto", "0002-auto", "0004-auto"]
    assert sorted(c.id for c in list_checkpoints(ws, "i")) == [
        "0001-auto",
        "0002-auto",
        "0003-manual",
        "0004-auto",
    ]


def test_a_run_lists_its_checkpoint_folder_once(cli, workspace, monkeypatch):
    listed: list[Path] = []
    real_files = checkpoints._files

    def counting_files(folder: Path) -> list[Path]:
        listed.append(folder)
        return real_files(folder)

    monkeypatch.setattr(checkpoints, "_files", counting_files)
    tasks: dict[str, Any] = {
        f"t{i}": {"action": "agent_task", "agent_id": "echo", "dependencies": [f"t{i - 1}"]}
        for i in range(30)
    }
    tasks["t0"]["dependencies"] = []
    path = write_definition(workspace, tasks)
    done = cli("run", str(path), "--checkpoint-interval", "5", "--json")
    assert done.exit_code == 0, done
    instance_id = done.json()["id"]
    ids = sorted(c.id for c in list_checkpoints(Workspace.at(workspace), instance_id))
    assert ids == ["0001-start", *(f"{n:04d}-auto" for n in range(2, 8))]  # start + 30 / 5
    assert len(listed) <= 2  # the first checkpoint of the run (and the listing above)


@pytest.fixture
def recorder(workspace: Path) -> Recorder:
    folder = workspace / "instances" / "i"
    folder.mkdir(parents=True)
    journal = Journal(folder / "events.jsonl", utc_now)
    made = Recorder(
        Workspace.at(workspace),
        journal,
        empty_state(),
        reporter=NullReporter(),
        monotonic=lambda: 0.0,
        cache_interval=1e9,
    )
    created = ev.instance_created(
        "i", template=None, workflow=None, params={}, parent=None, tasks=["a", "b", "c"]
    )
    made.write([created, ev.task_started("a", 1)])
    made.write([ev.task_waiting("a", {"kind": "mailbox", "agent": "reviewer"})])
    return made


def test_outbox_watch_follows_the_tasks_that_wait_for_a_mailbox(workspace, recorder):
    watch = OutboxWatch(Workspace.at(workspace), "i", utc_now, lambda: 0.0)
    assert watch.collect(recorder, force=True) == 0  # no outbox file
    assert watch.watched == {"a"}
    # b goes waiting in this run; c by another command's event, folded when polled.
    recorder.write([ev.task_started("b", 1)])
    recorder.write([ev.task_waiting("b", {"kind": "mailbox", "agent": "writer"})])
    other = Journal(workspace / "instances" / "i" / "events.jsonl", utc_now)
    other.read_new()
    other.append([ev.task_started("c", 1)])
    other.append([ev.task_waiting("c", {"kind": "mailbox", "agent": "writer"})])
    recorder.poll()
    recorder.write([ev.task_completed("a", 1, 0.1, {"ok": True})])
    watch.collect(recorder, force=True)
    assert watch.watched == {"b", "c"}  # a completed: no longer looked at
