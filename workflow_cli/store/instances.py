"""Instances on disk: create one atomically, load its definition and state, add events."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from workflow_cli.errors import StateError, WorkspaceError
from workflow_cli.store.files import fsync_dir, write_json_atomic
from workflow_cli.store.journal import Clock, Journal, Record
from workflow_cli.store.state import State, empty_state, fold
from workflow_cli.store.workspace import Workspace

DEFINITION_FILE = "definition.json"
JOURNAL_FILE = "events.jsonl"
STATE_FILE = "state.json"


def create_instance(
    workspace: Workspace,
    instance_id: str,
    definition: dict[str, Any],
    created: Record,
    clock: Clock,
) -> Path:
    """Write a new instance folder; it appears whole (a rename) or not at all."""
    final = workspace.instance_dir(instance_id)
    if final.exists():
        raise StateError(f"instance {instance_id} already exists")
    try:
        workspace.instances_dir.mkdir(parents=True, exist_ok=True)
        staging = workspace.instances_dir / f".new-{instance_id}"
        staging.mkdir()
    except OSError as exc:
        raise WorkspaceError(
            f"cannot create an instance in {workspace.instances_dir}: {exc}"
        ) from exc
    try:
        (staging / "logs").mkdir()
        write_json_atomic(staging / DEFINITION_FILE, definition)
        journal = Journal(staging / JOURNAL_FILE, clock)
        _, written = journal.append([created])
        journal.close()
        state = fold(written)
        state["offset"] = journal.offset
        write_json_atomic(staging / STATE_FILE, state)
        os.rename(staging, final)
        fsync_dir(workspace.instances_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def load_definition(workspace: Workspace, instance_id: str) -> dict[str, Any]:
    path = workspace.instance_dir(instance_id) / DEFINITION_FILE
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise WorkspaceError(f"{path} is not a workflow definition")
    return value


def open_journal(workspace: Workspace, instance_id: str, clock: Clock) -> Journal:
    return Journal(workspace.instance_dir(instance_id) / JOURNAL_FILE, clock)


def load_state(journal: Journal, *, use_cache: bool = True) -> State:
    """The instance's state: the cached fold plus whatever the journal holds after it.

    With ``use_cache=False`` (what a runner does) every line of the journal is read
    and checked. A missing, unreadable or inconsistent cache is rebuilt from the journal.
    """
    state: State | None = None
    if use_cache:
        state = _read_cache(journal.path.with_name(STATE_FILE))
    if state is not None and state["offset"] > _size(journal.path):
        state = None  # a cache ahead of its journal (a power cut lost the journal's tail)
    if state is not None:
        journal.seek(state["offset"], state["seq"])
        try:
            fold(journal.read_new(), state)
        except Exception:
            state = None
    if state is None:
        journal.seek(0, 0)
        state = fold(journal.read_new(), empty_state())
    state["offset"] = journal.offset
    if not state.get("id"):
        raise WorkspaceError(f"{journal.path} holds no instance_created event")
    return state


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_cache(path: Path) -> State | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("offset"), int):
        return None
    if not isinstance(value.get("seq"), int) or not isinstance(value.get("tasks"), dict):
        return None
    return cast(State, value)


def save_state_cache(journal: Journal, state: State, *, durable: bool = False) -> None:
    """Write `state` as the cache of the journal up to the point the journal has read."""
    state["offset"] = journal.offset
    # Compact: Python's C JSON encoder only serves unindented output, and a cache of a
    # 10,000-task run is rewritten every second.
    write_json_atomic(journal.path.with_name(STATE_FILE), state, durable=durable, indent=None)


def append_events(journal: Journal, decide: Callable[[State], Sequence[Record]]) -> State:
    """Append what `decide` makes of the current state, all under the journal lock.

    This is how commands other than the runner change an instance: `decide` sees the
    state no one else can change meanwhile, raises if the change is not allowed, and
    returns the events to record. Returns the state after them, cached to state.json.
    """
    with journal.locked():
        state = load_state(journal)
        _, written = journal.append(decide(state))
        fold(written, state)
        save_state_cache(journal, state)
    return state
