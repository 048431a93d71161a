"""The journal's vocabulary: one TypedDict and one constructor per event type.

Whoever writes an event builds it with its constructor here; the journal adds ``seq``
and ``time`` when it writes it (and a checksum on disk). Readers get the same shapes
back. An event type this version does not know (written by a newer one) is kept in the
journal and ignored by the fold.

Error records (``error`` of a failed or retried attempt) are objects with at least
``message`` and ``kind``, plus what the action reports (``exit_code``, ``status``, …).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

ErrorInfo = dict[str, Any]


class _Stamped(TypedDict, total=False):
    seq: int  # 1, 2, 3, … with no gaps, added by the journal
    time: str  # ISO 8601 with milliseconds, added by the journal


class InstanceCreated(_Stamped):
    type: Literal["instance_created"]
    instance: str
    template: str | None
    workflow: str | None
    params: dict[str, Any]
    parent: dict[str, str] | None
    tasks: list[str]


class RunStarted(_Stamped):
    type: Literal["run_started"]
    pid: int
    recovered: bool
    orphans_killed: NotRequired[list[str]]


class RunEnded(_Stamped):
    type: Literal["run_ended"]
    state: str
    reason: str | None
    needs_person: NotRequired[bool]  # paused on a failure that waits for a person


class TaskStarted(_Stamped):
    type: Literal["task_started"]
    task: str
    attempt: int


class TaskCompleted(_Stamped):
    type: Literal["task_completed"]
    task: str
    attempt: int
    duration: float
    output: Any
    cached: NotRequired[dict[str, Any]]  # reused: key, instance, task, created_at


class TaskFailed(_Stamped):
    type: Literal["task_failed"]
    task: str
    attempt: int
    duration: float
    error: ErrorInfo
    inputs: NotRequired[Any]  # the parameters of its last attempt (a dead letter's inputs)


class TaskRetrying(_Stamped):
    type: Literal["task_retrying"]
    task: str
    attempt: int
    duration: float
    error: ErrorInfo
    delay: float


class TaskWaiting(_Stamped):
    type: Literal["task_waiting"]
    task: str
    waiting_for: dict[str, Any]


class TaskSkipped(_Stamped):
    type: Literal["task_skipped"]
    task: str
    reason: str
    by: NotRequired[str]  # a person skipped it


class TaskInterrupted(_Stamped):
    type: Literal["task_interrupted"]
    task: str
    attempt: int
    duration: float
    reason: str


class TaskCancelled(_Stamped):
    type: Literal["task_cancelled"]
    task: str
    reason: str
    attempt: NotRequired[int]  # when an attempt in flight was ended
    duration: NotRequired[float]


class StopRequested(_Stamped):
    type: Literal["stop_requested"]
    by: str
    grace: float | None


class CancelRequested(_Stamped):
    type: Literal["cancel_requested"]
    by: str


class CheckpointCreated(_Stamped):
    type: Literal["checkpoint_created"]
    checkpoint: str
    kind: str
    label: str | None
    at_seq: int


class RolledBack(_Stamped):
    type: Literal["rolled_back"]
    checkpoint: str
    pre_rollback: str
    by: str
    tasks: dict[str, dict[str, Any]]
    approvals: list[dict[str, Any]]


class TasksReset(_Stamped):
    type: Literal["tasks_reset"]
    tasks: list[str]
    by: str
    why: str


class ParameterSet(_Stamped):
    type: Literal["parameter_set"]
    task: str
    name: str
    value: Any
    by: str


class CompensationStarted(_Stamped):
    type: Literal["compensation_started"]
    task: str
    attempt: int


class CompensationCompleted(_Stamped):
    type: Literal["compensation_completed"]
    task: str
    attempt: int
    duration: float
    output: Any


class CompensationFailed(_Stamped):
    type: Literal["compensation_failed"]
    task: str
    attempt: int
    duration: float
    error: ErrorInfo
    final: bool


class ApprovalRecorded(_Stamped):
    type: Literal["approval_recorded"]
    task: str
    decision: str
    by: str
    comment: str | None


class ChildLinked(_Stamped):
    type: Literal["child_linked"]
    task: str
    child: str


class ItemsPlanned(_Stamped):
    """A for_each task's items, fixed once: item K means the same on every run."""

    type: Literal["items_planned"]
    task: str
    items: list[Any]


class ItemStarted(_Stamped):
    type: Literal["item_started"]
    task: str
    index: int
    attempt: int  # of this item


class ItemCompleted(_Stamped):
    type: Literal["item_completed"]
    task: str
    index: int
    attempt: int
    duration: float
    output: Any
    cached: NotRequired[dict[str, Any]]  # reused: key, instance, task, created_at


class ItemRetrying(_Stamped):
    type: Literal["item_retrying"]
    task: str
    index: int
    attempt: int
    duration: float
    error: ErrorInfo
    delay: float


class ItemFailed(_Stamped):
    type: Literal["item_failed"]
    task: str
    index: int
    attempt: int
    duration: float
    error: ErrorInfo
    inputs: NotRequired[Any]


class ItemSkipped(_Stamped):
    type: Literal["item_skipped"]
    task: str
    index: int
    reason: str


class ItemInterrupted(_Stamped):
    type: Literal["item_interrupted"]
    task: str
    index: int
    attempt: int
    duration: float
    reason: str


class ItemsReset(_Stamped):
    """Items of a for_each task put back to pending by a person (``retry --item``); the
    task goes back to pending, its other items keep what they came to."""

    type: Literal["items_reset"]
    task: str
    indices: list[int]
    by: str
    why: str


class TaskIterated(_Stamped):
    """One iteration of a repeating task ended with `output`; `held`: its ``until``."""

    type: Literal["task_iterated"]
    task: str
    iteration: int
    attempt: int
    duration: float
    output: Any
    held: bool
    delay: float  # before the next iteration (0 when it held or was the last)


class GroupIterated(_Stamped):
    """One iteration of a repeating group ended (every task of it settled): `held` is
    its ``until``; `again` the tasks put back to pending for the next iteration, after
    `delay` seconds (none: the group is done)."""

    type: Literal["group_iterated"]
    group: str
    iteration: int
    held: bool
    again: list[str]
    delay: float


# -- constructors ----------------------------------------------------------------------


def instance_created(
    instance: str,
    *,
    template: str | None,
    workflow: str | None,
    params: dict[str, Any],
    parent: dict[str, str] | None,
    tasks: list[str],
) -> InstanceCreated:
    return {
        "type": "instance_created",
        "instance": instance,
        "template": template,
        "workflow": workflow,
        "params": params,
        "parent": parent,
        "tasks": tasks,
    }


def run_started(pid: int, *, recovered: bool, orphans_killed: list[str]) -> RunStarted:
    event: RunStarted = {"type": "run_started", "pid": pid, "recovered": recovered}
    if orphans_killed:
        event["orphans_killed"] = orphans_killed
    return event


def run_ended(state: str, reason: str | None, *, needs_person: bool = False) -> RunEnded:
    event: RunEnded = {"type": "run_ended", "state": state, "reason": reason}
    if needs_person:
        event["needs_person"] = True
    return event


def task_started(task: str, attempt: int) -> TaskStarted:
    return {"type": "task_started", "task": task, "attempt": attempt}


def task_completed(
    task: str, attempt: int, duration: float, output: Any, *, cached: dict[str, Any] | None = None
) -> TaskCompleted:
    event: TaskCompleted = {
        "type": "task_completed",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "output": output,
    }
    if cached is not None:
        event["cached"] = cached
    return event


def task_failed(
    task: str, attempt: int, duration: float, error: ErrorInfo, *, inputs: Any = None
) -> TaskFailed:
    event: TaskFailed = {
        "type": "task_failed",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "error": error,
    }
    if inputs is not None:
        event["inputs"] = inputs
    return event


def task_retrying(
    task: str, attempt: int, duration: float, error: ErrorInfo, delay: float
) -> TaskRetrying:
    return {
        "type": "task_retrying",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "error": error,
        "delay": delay,
    }


def task_waiting(task: str, waiting_for: dict[str, Any]) -> TaskWaiting:
    return {"type": "task_waiting", "task": task, "waiting_for": waiting_for}


def task_skipped(task: str, reason: str, *, by: str | None = None) -> TaskSkipped:
    event: TaskSkipped = {"type": "task_skipped", "task": task, "reason": reason}
    if by is not None:
        event["by"] = by
    return event


def task_interrupted(task: str, attempt: int, duration: float, reason: str) -> TaskInterrupted:
    return {
        "type": "task_interrupted",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "reason": reason,
    }


def task_cancelled(
    task: str, reason: str, *, attempt: int | None = None, duration: float | None = None
) -> TaskCancelled:
    if attempt is None or duration is None:
        return {"type": "task_cancelled", "task": task, "reason": reason}
    return {
        "type": "task_cancelled",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "reason": reason,
    }


def stop_requested(by: str, grace: float | None) -> StopRequested:
    return {"type": "stop_requested", "by": by, "grace": grace}


def cancel_requested(by: str) -> CancelRequested:
    return {"type": "cancel_requested", "by": by}


def checkpoint_created(
    checkpoint: str, kind: str, label: str | None, at_seq: int
) -> CheckpointCreated:
    return {
        "type": "checkpoint_created",
        "checkpoint": checkpoint,
        "kind": kind,
        "label": label,
        "at_seq": at_seq,
    }


def rolled_back(
    checkpoint: str,
    pre_rollback: str,
    by: str,
    tasks: dict[str, dict[str, Any]],
    approvals: list[dict[str, Any]],
) -> RolledBack:
    return {
        "type": "rolled_back",
        "checkpoint": checkpoint,
        "pre_rollback": pre_rollback,
        "by": by,
        "tasks": tasks,
        "approvals": approvals,
    }


def tasks_reset(tasks: list[str], by: str, why: str) -> TasksReset:
    return {"type": "tasks_reset", "tasks": tasks, "by": by, "why": why}


def parameter_set(task: str, name: str, value: Any, by: str) -> ParameterSet:
    return {"type": "parameter_set", "task": task, "name": name, "value": value, "by": by}


def compensation_started(task: str, attempt: int) -> CompensationStarted:
    return {"type": "compensation_started", "task": task, "attempt": attempt}


def compensation_completed(
    task: str, attempt: int, duration: float, output: Any
) -> CompensationCompleted:
    return {
        "type": "compensation_completed",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "output": output,
    }


def compensation_failed(
    task: str, attempt: int, duration: float, error: ErrorInfo, *, final: bool
) -> CompensationFailed:
    return {
        "type": "compensation_failed",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "error": error,
        "final": final,
    }


def approval_recorded(task: str, decision: str, by: str, comment: str | None) -> ApprovalRecorded:
    return {
        "type": "approval_recorded",
        "task": task,
        "decision": decision,
        "by": by,
        "comment": comment,
    }


def child_linked(task: str, child: str) -> ChildLinked:
    return {"type": "child_linked", "task": task, "child": child}


def items_planned(task: str, items: list[Any]) -> ItemsPlanned:
    return {"type": "items_planned", "task": task, "items": items}


def item_started(task: str, index: int, attempt: int) -> ItemStarted:
    return {"type": "item_started", "task": task, "index": index, "attempt": attempt}


def item_completed(
    task: str,
    index: int,
    attempt: int,
    duration: float,
    output: Any,
    *,
    cached: dict[str, Any] | None = None,
) -> ItemCompleted:
    event: ItemCompleted = {
        "type": "item_completed",
        "task": task,
        "index": index,
        "attempt": attempt,
        "duration": duration,
        "output": output,
    }
    if cached is not None:
        event["cached"] = cached
    return event


def item_retrying(
    task: str, index: int, attempt: int, duration: float, error: ErrorInfo, delay: float
) -> ItemRetrying:
    return {
        "type": "item_retrying",
        "task": task,
        "index": index,
        "attempt": attempt,
        "duration": duration,
        "error": error,
        "delay": delay,
    }


def item_failed(
    task: str, index: int, attempt: int, duration: float, error: ErrorInfo, *, inputs: Any = None
) -> ItemFailed:
    event: ItemFailed = {
        "type": "item_failed",
        "task": task,
        "index": index,
        "attempt": attempt,
        "duration": duration,
        "error": error,
    }
    if inputs is not None:
        event["inputs"] = inputs
    return event


def item_skipped(task: str, index: int, reason: str) -> ItemSkipped:
    return {"type": "item_skipped", "task": task, "index": index, "reason": reason}


def item_interrupted(
    task: str, index: int, attempt: int, duration: float, reason: str
) -> ItemInterrupted:
    return {
        "type": "item_interrupted",
        "task": task,
        "index": index,
        "attempt": attempt,
        "duration": duration,
        "reason": reason,
    }


def items_reset(task: str, indices: list[int], by: str, why: str) -> ItemsReset:
    return {"type": "items_reset", "task": task, "indices": indices, "by": by, "why": why}


def task_iterated(
    task: str,
    iteration: int,
    attempt: int,
    duration: float,
    output: Any,
    *,
    held: bool,
    delay: float,
) -> TaskIterated:
    return {
        "type": "task_iterated",
        "task": task,
        "iteration": iteration,
        "attempt": attempt,
        "duration": duration,
        "output": output,
        "held": held,
        "delay": delay,
    }


def group_iterated(
    group: str, iteration: int, *, held: bool, again: list[str], delay: float
) -> GroupIterated:
    return {
        "type": "group_iterated",
        "group": group,
        "iteration": iteration,
        "held": held,
        "again": again,
        "delay": delay,
    }


# Settling events: after one of these the task is done (its dependents may decide).
SETTLING = frozenset({"task_completed", "task_failed", "task_skipped", "task_cancelled"})
# Events made durable by the next write a second or more after the last fsync (group
# commit), or with any durable event: nothing acts on an item's end but its task's
# completion, which is durable and written after it. A crash of the process (kill -9)
# loses none of them (they are written at once); a power cut only items not yet synced,
# which then run again, like items in flight.
BATCHED = frozenset({"item_completed", "item_skipped"})
BATCH_SECONDS = 1.0
# Events after which nothing may act before they are on disk.
DURABLE = frozenset(
    {
        *SETTLING,
        "task_retrying",
        "task_waiting",
        "task_interrupted",
        "task_iterated",
        "group_iterated",
        "items_planned",
        "item_failed",
        "item_retrying",
        "item_interrupted",
        "run_started",
        "run_ended",
        "compensation_completed",
        "compensation_failed",
    }
)
