"""The journal's vocabulary: one TypedDict and one constructor per event type.

Whoever writes an event builds it with its constructor here; the journal adds ``seq``
and ``time`` when it writes it (and a checksum on disk). Readers get the same shapes
back. An event type this version does not know (written by a newer one) is kept in the
journal and ignored by the fold.

Error records (``error`` of a failed or retried attempt) are objects with at least
``message`` and ``kind``, plus what the action reports (``exit_code``, ``status``, …).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

ErrorInfo = dict[str, Any]


# The records are types for the type checker alone: building some fifty TypedDicts when
# the module is imported costs every command that reads a journal ~4 % of a one-task
# `run`. Every use of them is an annotation (``ev.TaskCompleted``), never evaluated.
if TYPE_CHECKING:
    from typing import Literal, NotRequired, TypedDict

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
        requester: NotRequired[str]  # who asked for it (create --as)

    class RunRequested(_Stamped):
        """Someone asked for a run (start or resume) to be started in a process of its own."""

        type: Literal["run_requested"]
        by: str
        resume: bool

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
        worker: NotRequired[str]  # the address of the Dask worker that ran it

    class TaskFailed(_Stamped):
        type: Literal["task_failed"]
        task: str
        attempt: int
        duration: float
        error: ErrorInfo
        inputs: NotRequired[Any]  # the parameters of its last attempt (a dead letter's inputs)
        worker: NotRequired[str]

    class TaskRetrying(_Stamped):
        type: Literal["task_retrying"]
        task: str
        attempt: int
        duration: float
        error: ErrorInfo
        delay: float
        worker: NotRequired[str]

    class TaskLost(_Stamped):
        """An attempt whose Dask worker died under it: it runs again at once, and it is not
        a failure of the task."""

        type: Literal["task_lost"]
        task: str
        attempt: int
        duration: float
        worker: str  # the worker that died ("" when it is not known)
        reason: str

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
        decision: str  # approved, rejected, or timed_out (a deadline with on_timeout: fail)
        by: str
        comment: str | None
        digest: NotRequired[str]  # of the request the person saw (rendered message and form)
        level: NotRequired[int]  # the escalation level it was decided at
        inputs: NotRequired[dict[str, Any]]  # the form's values
        via: NotRequired[str]  # "deadline": decided by a deadline's on_timeout

    class ApprovalEscalated(_Stamped):
        type: Literal["approval_escalated"]
        task: str
        level: int
        approvers: list[str]  # who decides from now on
        mode: str  # replace or add

    class ApprovalReminded(_Stamped):
        type: Literal["approval_reminded"]
        task: str
        level: int
        approvers: list[str]

    class ApprovalReassigned(_Stamped):
        type: Literal["approval_reassigned"]
        task: str
        by: str
        to: str
        replaced: str | None  # the approver whose place `to` takes (None: added)
        approvers: list[str]  # who decides from now on
        comment: str | None

    class TimerSet(_Stamped):
        type: Literal["timer_set"]
        timer: str  # unique among the instance's pending timers
        kind: str  # what it is for (approval_deadline, approval_reminder, ...)
        target: str  # what it acts on (a task id)
        due: str  # ISO 8601
        data: dict[str, Any]

    class TimerFired(_Stamped):
        type: Literal["timer_fired"]
        timer: str
        kind: str
        target: str
        due: str  # when it was due
        fired_at: str  # when it fired (by the firer's clock)
        by: str  # runner, tick, or the command that fired it

    class TimerCancelled(_Stamped):
        type: Literal["timer_cancelled"]
        timer: str
        reason: str

    class AgentDelivered(_Stamped):
        """A mailbox agent's result for one attempt of a task: its output or its error."""

        type: Literal["agent_delivered"]
        task: str
        attempt: int
        agent: str  # who delivered (``deliver --as``, or the agent whose outbox held it)
        via: str  # "command", "api", or "outbox:<file name>"
        by: NotRequired[str]  # the person or token that delivered it for the agent
        output: NotRequired[Any]
        error: NotRequired[ErrorInfo]

    class SignalReceived(_Stamped):
        """An event sent to the instance (``workflow_cli signal``): kept until a
        ``wait_for_event`` task whose event name and filter match consumes it."""

        type: Literal["signal_received"]
        signal: str  # its id in the instance
        event: str
        data: Any
        by: str  # who sent it (``--as``, the OS user, or a server token's name)

    class SignalConsumed(_Stamped):
        """A waiting ``wait_for_event`` task took a signal: the signal's data is its output."""

        type: Literal["signal_consumed"]
        signal: str
        task: str
        attempt: int  # the attempt of the task that waited for it

    class EventWaitTimedOut(_Stamped):
        """No matching signal came to a ``wait_for_event`` task within its timeout."""

        type: Literal["event_wait_timed_out"]
        task: str
        attempt: int
        event: str
        timeout_seconds: float
        on_timeout: str  # fail, continue or compensate

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

    class HookDelivered(_Stamped):
        type: Literal["hook_delivered"]
        hook: str  # its name
        event: str  # the hook event, e.g. workflow.completed
        target: str  # the URL (credentials masked) or the command's program
        attempts: int
        status: int | None  # the HTTP status or the command's exit code
        task: NotRequired[str]

    class HookFailed(_Stamped):
        type: Literal["hook_failed"]
        hook: str
        event: str
        target: str
        attempts: int
        status: int | None
        error: str
        task: NotRequired[str]

    class DefinitionMigrated(_Stamped):
        """The instance's definition.json was migrated to a newer schema version; the one
        before is kept in the instance folder as `kept`."""

        type: Literal["definition_migrated"]
        from_version: str
        to_version: str
        kept: str  # file name, in the instance folder, of the definition before
        by: str

    class DefinitionMigrationUndone(_Stamped):
        """The last migration was undone: definition.json is the kept one again."""

        type: Literal["definition_migration_undone"]
        from_version: str  # the version it had (migrated to)
        to_version: str  # the version it has again
        by: str


# -- constructors ----------------------------------------------------------------------


def instance_created(
    instance: str,
    *,
    template: str | None,
    workflow: str | None,
    params: dict[str, Any],
    parent: dict[str, str] | None,
    tasks: list[str],
    requester: str | None = None,
) -> InstanceCreated:
    event: InstanceCreated = {
        "type": "instance_created",
        "instance": instance,
        "template": template,
        "workflow": workflow,
        "params": params,
        "parent": parent,
        "tasks": tasks,
    }
    if requester is not None:
        event["requester"] = requester
    return event


def run_requested(by: str, *, resume: bool) -> RunRequested:
    return {"type": "run_requested", "by": by, "resume": resume}


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
    task: str,
    attempt: int,
    duration: float,
    output: Any,
    *,
    cached: dict[str, Any] | None = None,
    worker: str | None = None,
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
    if worker:
        event["worker"] = worker
    return event


def task_failed(
    task: str,
    attempt: int,
    duration: float,
    error: ErrorInfo,
    *,
    inputs: Any = None,
    worker: str | None = None,
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
    if worker:
        event["worker"] = worker
    return event


def task_retrying(
    task: str,
    attempt: int,
    duration: float,
    error: ErrorInfo,
    delay: float,
    *,
    worker: str | None = None,
) -> TaskRetrying:
    event: TaskRetrying = {
        "type": "task_retrying",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "error": error,
        "delay": delay,
    }
    if worker:
        event["worker"] = worker
    return event


def task_lost(task: str, attempt: int, duration: float, worker: str, reason: str) -> TaskLost:
    return {
        "type": "task_lost",
        "task": task,
        "attempt": attempt,
        "duration": duration,
        "worker": worker,
        "reason": reason,
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


def approval_recorded(
    task: str,
    decision: str,
    by: str,
    comment: str | None,
    *,
    digest: str | None = None,
    level: int | None = None,
    inputs: dict[str, Any] | None = None,
    via: str | None = None,
) -> ApprovalRecorded:
    event: ApprovalRecorded = {
        "type": "approval_recorded",
        "task": task,
        "decision": decision,
        "by": by,
        "comment": comment,
    }
    if digest is not None:
        event["digest"] = digest
    if level is not None:
        event["level"] = level
    if inputs:
        event["inputs"] = inputs
    if via is not None:
        event["via"] = via
    return event


def approval_escalated(task: str, level: int, approvers: list[str], mode: str) -> ApprovalEscalated:
    return {
        "type": "approval_escalated",
        "task": task,
        "level": level,
        "approvers": approvers,
        "mode": mode,
    }


def approval_reminded(task: str, level: int, approvers: list[str]) -> ApprovalReminded:
    return {"type": "approval_reminded", "task": task, "level": level, "approvers": approvers}


def approval_reassigned(
    task: str,
    *,
    by: str,
    to: str,
    replaced: str | None,
    approvers: list[str],
    comment: str | None,
) -> ApprovalReassigned:
    return {
        "type": "approval_reassigned",
        "task": task,
        "by": by,
        "to": to,
        "replaced": replaced,
        "approvers": approvers,
        "comment": comment,
    }


def timer_set(timer: str, kind: str, target: str, due: str, data: dict[str, Any]) -> TimerSet:
    return {
        "type": "timer_set",
        "timer": timer,
        "kind": kind,
        "target": target,
        "due": due,
        "data": data,
    }


def timer_fired(
    timer: str, kind: str, target: str, *, due: str, fired_at: str, by: str
) -> TimerFired:
    return {
        "type": "timer_fired",
        "timer": timer,
        "kind": kind,
        "target": target,
        "due": due,
        "fired_at": fired_at,
        "by": by,
    }


def timer_cancelled(timer: str, reason: str) -> TimerCancelled:
    return {"type": "timer_cancelled", "timer": timer, "reason": reason}


def agent_delivered(
    task: str,
    attempt: int,
    agent: str,
    via: str,
    *,
    output: Any = None,
    error: ErrorInfo | None = None,
    by: str | None = None,
) -> AgentDelivered:
    event: AgentDelivered = {
        "type": "agent_delivered",
        "task": task,
        "attempt": attempt,
        "agent": agent,
        "via": via,
    }
    if by is not None:
        event["by"] = by
    if error is not None:
        event["error"] = error
    else:
        event["output"] = output
    return event


def signal_received(signal: str, event: str, data: Any, by: str) -> SignalReceived:
    return {"type": "signal_received", "signal": signal, "event": event, "data": data, "by": by}


def signal_consumed(signal: str, task: str, attempt: int) -> SignalConsumed:
    return {"type": "signal_consumed", "signal": signal, "task": task, "attempt": attempt}


def event_wait_timed_out(
    task: str, attempt: int, event: str, timeout_seconds: float, on_timeout: str
) -> EventWaitTimedOut:
    return {
        "type": "event_wait_timed_out",
        "task": task,
        "attempt": attempt,
        "event": event,
        "timeout_seconds": timeout_seconds,
        "on_timeout": on_timeout,
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


def hook_delivered(
    hook: str, event: str, target: str, attempts: int, status: int | None, task: str | None
) -> HookDelivered:
    record: HookDelivered = {
        "type": "hook_delivered",
        "hook": hook,
        "event": event,
        "target": target,
        "attempts": attempts,
        "status": status,
    }
    if task is not None:
        record["task"] = task
    return record


def hook_failed(
    hook: str,
    event: str,
    target: str,
    attempts: int,
    status: int | None,
    error: str,
    task: str | None,
) -> HookFailed:
    record: HookFailed = {
        "type": "hook_failed",
        "hook": hook,
        "event": event,
        "target": target,
        "attempts": attempts,
        "status": status,
        "error": error,
    }
    if task is not None:
        record["task"] = task
    return record


def definition_migrated(
    from_version: str, to_version: str, *, kept: str, by: str
) -> DefinitionMigrated:
    return {
        "type": "definition_migrated",
        "from_version": from_version,
        "to_version": to_version,
        "kept": kept,
        "by": by,
    }


def definition_migration_undone(
    from_version: str, to_version: str, *, by: str
) -> DefinitionMigrationUndone:
    return {
        "type": "definition_migration_undone",
        "from_version": from_version,
        "to_version": to_version,
        "by": by,
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
        "task_lost",
        "run_started",
        "run_ended",
        "compensation_completed",
        "compensation_failed",
        "timer_fired",
        "signal_consumed",
    }
)
# Durable events that are fsynced only once something may act on them: before a task
# that depends on one starts (the runner asks for it), with any other durable event or a
# checkpoint, or `SETTLE_SECONDS` after the last fsync; until then they are written (a
# `kill -9` loses none) but not reported (hooks act on what is reported). A fan-out's
# completions thus share a few fsyncs where each batch had one; a power cut loses only
# completions nothing acted on, whose tasks then run again, like tasks in flight.
DEFERRED = frozenset({"task_completed", "task_skipped"})
SETTLE_SECONDS = 0.2
SYNCED_AT_ONCE = DURABLE - DEFERRED  # what a batch is fsynced for as soon as it is written
