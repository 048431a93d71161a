"""The records of an instance's state (`workflow_cli.store.state` is where they are used
from): one TypedDict per kind of record.

This module does without ``from __future__ import annotations``, and defines each record
before the records that hold it: its annotations are then objects, where strings would
each be compiled when the TypedDict is built — ~7 M instructions for every command that
reads a state.
"""

from typing import Any, NotRequired, TypedDict


class ItemRecord(TypedDict):
    """One item of a for_each task."""

    state: str  # pending, running, retrying, completed, failed or skipped
    attempts: int
    output: Any
    error: dict[str, Any] | None
    duration: NotRequired[float | None]
    reason: NotRequired[str]  # why it was skipped
    inputs: NotRequired[Any]  # a failed item's last parameters
    failed_at: NotRequired[str]
    cached: NotRequired[dict[str, Any]]  # where a reused output came from


class ItemsRecord(TypedDict):
    """A for_each task's items and how many of them ended how (kept as events come,
    so that folding an item's event is O(1))."""

    total: int
    completed: int
    failed: int
    skipped: int
    values: list[Any]
    records: list[ItemRecord]


class TaskRecord(TypedDict):
    """One task as the journal leaves it."""

    state: str
    attempts: int
    started_at: str | None
    finished_at: str | None
    duration: float | None
    output: Any
    error: dict[str, Any] | None
    reason: NotRequired[str | None]  # why it was skipped or cancelled
    waiting_for: NotRequired[dict[str, Any] | None]  # what a waiting task waits for
    completed_seq: NotRequired[int]  # the seq of its completion (compensation order)
    cached: NotRequired[dict[str, Any] | None]  # where a reused output came from
    worker: NotRequired[str | None]  # the Dask worker of its last attempt that ended
    lost: NotRequired[int]  # attempts lost with their Dask worker
    items: NotRequired[ItemsRecord]  # a for_each task's items, once planned
    inputs: NotRequired[Any]  # a failed task's last parameters (its dead letter's inputs)
    iteration: NotRequired[int]  # a repeating task: the last iteration that ended
    iteration_attempt: NotRequired[int]  # the attempt that ended it (retries count from it)
    interrupted: NotRequired[int]  # attempts cut short by a stop: they use up no retry


class TimerRecord(TypedDict):
    """A pending durable timer (`engine.timers`): what it is for, what it acts on, when."""

    timer: str
    kind: str
    target: str
    due: str  # ISO 8601
    set_at: str
    data: dict[str, Any]


class SignalRecord(TypedDict):
    """A signal sent to the instance, and the ``wait_for_event`` task that took it."""

    signal: str
    event: str
    data: Any
    by: str
    time: str
    consumed_by: str | None  # the task that took it (None: pending)
    consumed_at: str | None


class State(TypedDict):
    """One instance as its journal leaves it (`state.json` caches it)."""

    seq: int  # the last event folded
    offset: int  # the journal's size up to that event
    state: str
    tasks: dict[str, TaskRecord]
    id: NotRequired[str]
    template: NotRequired[str | None]
    workflow: NotRequired[str | None]
    params: NotRequired[dict[str, Any]]
    parent: NotRequired[dict[str, str] | None]
    run_requested: NotRequired[dict[str, Any]]  # the last request for a run: by, resume, time
    created_at: NotRequired[str]
    updated_at: NotRequired[str]
    finished_at: NotRequired[str | None]
    reason: NotRequired[str | None]
    needs_person: NotRequired[bool]  # paused on a failure that waits for a person
    runs: NotRequired[int]
    runner: NotRequired[dict[str, Any] | None]
    approvals: NotRequired[list[dict[str, Any]]]
    deliveries: NotRequired[dict[str, list[dict[str, Any]]]]  # by task: mailbox results
    compensations: NotRequired[dict[str, dict[str, Any]]]
    children: NotRequired[dict[str, str]]
    overrides: NotRequired[dict[str, dict[str, Any]]]
    groups: NotRequired[dict[str, dict[str, Any]]]  # repeating groups: iteration, done
    last_checkpoint: NotRequired[str]
    stop_requested: NotRequired[dict[str, Any]]
    cancel_requested: NotRequired[dict[str, Any]]
    # migrations of definition.json in force, oldest first: from, to, kept file, by, time
    definition_migrations: NotRequired[list[dict[str, Any]]]
    requester: NotRequired[str]  # who asked for the instance (create --as)
    timers: NotRequired[dict[str, TimerRecord]]  # pending timers by id
    gate_events: NotRequired[list[dict[str, Any]]]  # escalations, reassignments, reminders
    hooks: NotRequired[dict[str, int]]  # deliveries: {"delivered": n, "failed": n}
    signals: NotRequired[dict[str, SignalRecord]]  # by id: sent with `workflow_cli signal`
