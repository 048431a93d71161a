"""An instance's state is a fold of its journal: ``state = fold(apply_event, events)``.

`apply_event` is the only code that knows what an event means for the state: one small
function per event type, each typed on its event (`store.events`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from workflow_cli.store import events as ev
from workflow_cli.store import state_records
from workflow_cli.store.journal import Event

# The records of a state (defined in `state_records`), as everyone imports them: from here.
ItemRecord = state_records.ItemRecord
ItemsRecord = state_records.ItemsRecord
TaskRecord = state_records.TaskRecord
TimerRecord = state_records.TimerRecord
SignalRecord = state_records.SignalRecord
State = state_records.State

INSTANCE_STATES = ("created", "running", "paused", "waiting", "completed", "failed", "cancelled")
TASK_STATES = (
    "pending",
    "running",
    "retrying",
    "waiting",
    "completed",
    "failed",
    "skipped",
    "cancelled",
)
FINAL_INSTANCE_STATES = frozenset({"completed", "failed", "cancelled"})
DONE_TASK_STATES = frozenset({"completed", "failed", "skipped", "cancelled"})
IN_FLIGHT_TASK_STATES = frozenset({"running", "retrying"})


ITEM_END_STATES = ("completed", "failed", "skipped")


def new_item_state() -> ItemRecord:
    return {"state": "pending", "attempts": 0, "output": None, "error": None}


def items_done(items: ItemsRecord) -> int:
    """How many items ended (completed, failed or skipped)."""
    return items["completed"] + items["failed"] + items["skipped"]


def new_task_state() -> TaskRecord:
    return {
        "state": "pending",
        "attempts": 0,
        "started_at": None,
        "finished_at": None,
        "duration": None,
        "output": None,
        "error": None,
    }


def empty_state() -> State:
    return {"seq": 0, "offset": 0, "state": "created", "tasks": {}}


def apply_event(state: State, event: Event) -> None:
    """Fold one event into `state` (in place)."""
    state["seq"] = event["seq"]
    state["updated_at"] = event["time"]
    handler = _HANDLERS.get(event["type"])
    if handler is not None:  # an event type from a newer version: kept, not folded
        handler(state, event)


def fold(events: Iterable[Event], state: State | None = None) -> State:
    """Apply `events` in order to `state` (or to an empty state)."""
    state = state if state is not None else empty_state()
    for event in events:
        apply_event(state, event)
    return state


def why_not_runnable(instance_id: str, state: str) -> str:
    """Why an instance in a final state cannot run."""
    if state == "cancelled":
        return f"instance {instance_id} was cancelled; a cancelled instance cannot be resumed"
    if state == "failed":
        return (
            f"instance {instance_id} failed; to go on, 'workflow_cli retry {instance_id}' "
            f"or 'workflow_cli skip {instance_id} --task T', or roll it back"
        )
    return f"instance {instance_id} is {state}; there is nothing to run"


def progress(state: State) -> tuple[int, int]:
    """How many tasks are done (completed, failed, skipped, cancelled) of how many: how
    far a run has come, for progress bars. What a summary calls done is `completed`."""
    tasks = state["tasks"]
    done = sum(1 for task in tasks.values() if task["state"] in DONE_TASK_STATES)
    return done, len(tasks)


def completed(state: State) -> int:
    """How many tasks completed (not failed, skipped or cancelled): a summary's "done"."""
    return sum(1 for task in state["tasks"].values() if task["state"] == "completed")


# -- one function per event type ---------------------------------------------------------


def _instance_created(state: State, event: ev.InstanceCreated) -> None:
    state.update(
        {
            "id": event["instance"],
            "template": event.get("template"),
            "workflow": event.get("workflow"),
            "params": event.get("params", {}),
            "parent": event.get("parent"),
            "created_at": event["time"],
            "state": "created",
            "tasks": {task_id: new_task_state() for task_id in event["tasks"]},
        }
    )
    if event.get("requester"):
        state["requester"] = event["requester"]


def _run_requested(state: State, event: ev.RunRequested) -> None:
    state["run_requested"] = {"by": event["by"], "resume": event["resume"], "time": event["time"]}


def _run_started(state: State, event: ev.RunStarted) -> None:
    state["state"] = "running"
    state["runs"] = state.get("runs", 0) + 1
    state["runner"] = {"pid": event.get("pid"), "started_at": event["time"]}
    for task in state["tasks"].values():
        if task["state"] in IN_FLIGHT_TASK_STATES:
            _requeue(task)  # in flight when a runner died: runs again


def _run_ended(state: State, event: ev.RunEnded) -> None:
    state["state"] = event["state"]
    state["reason"] = event.get("reason")
    state["runner"] = None
    state.pop("stop_requested", None)
    state.pop("cancel_requested", None)
    if event.get("needs_person"):
        state["needs_person"] = True
    else:
        state.pop("needs_person", None)
    if event["state"] in FINAL_INSTANCE_STATES:
        state["finished_at"] = event["time"]
    for task in state["tasks"].values():
        if task["state"] in IN_FLIGHT_TASK_STATES and "items" in task:
            _requeue(task)  # items left for the next run


def _requeue(task: TaskRecord) -> None:
    """A task (and its items) in flight when its run ended goes back to pending."""
    task["state"] = "pending"
    for item in task.get("items", {}).get("records", ()):
        if item["state"] in IN_FLIGHT_TASK_STATES:
            item["state"] = "pending"


def _task_started(state: State, event: ev.TaskStarted) -> None:
    task = state["tasks"][event["task"]]
    task["state"] = "running"
    task["attempts"] = event["attempt"]
    task["started_at"] = event["time"]
    task["finished_at"] = None


def _task_completed(state: State, event: ev.TaskCompleted) -> None:
    task = state["tasks"][event["task"]]
    task.update(
        {
            "state": "completed",
            "output": event.get("output"),
            "error": None,
            "finished_at": event["time"],
            "duration": event.get("duration"),
            "completed_seq": event["seq"],
        }
    )
    if "cached" in event:
        task["cached"] = event["cached"]
    else:
        task.pop("cached", None)
    _note_worker(task, event)
    state.get("compensations", {}).pop(event["task"], None)
    _drop_timers(state, {event["task"]})


def _task_failed(state: State, event: ev.TaskFailed) -> None:
    _drop_timers(state, {event["task"]})
    task = state["tasks"][event["task"]]
    task.update(
        {
            "state": "failed",
            "error": event.get("error"),
            "finished_at": event["time"],
            "duration": event.get("duration"),
        }
    )
    if "inputs" in event:
        task["inputs"] = event["inputs"]
    _note_worker(task, event)


def _task_retrying(state: State, event: ev.TaskRetrying) -> None:
    task = state["tasks"][event["task"]]
    task.update(
        {"state": "retrying", "error": event.get("error"), "duration": event.get("duration")}
    )
    _note_worker(task, event)


def _task_lost(state: State, event: ev.TaskLost) -> None:
    task = state["tasks"][event["task"]]
    task.update({"state": "retrying", "duration": event.get("duration")})
    task["lost"] = task.get("lost", 0) + 1
    _note_worker(task, event)


def _note_worker(
    task: TaskRecord, event: ev.TaskCompleted | ev.TaskFailed | ev.TaskRetrying | ev.TaskLost
) -> None:
    """The worker of the attempt that ended (kept only by a run on Dask)."""
    worker = event.get("worker")
    if worker:
        task["worker"] = worker
    else:
        task.pop("worker", None)


def _task_waiting(state: State, event: ev.TaskWaiting) -> None:
    task = state["tasks"][event["task"]]
    waiting = dict(event.get("waiting_for") or {})
    if "digest" in waiting:  # an approval gate: since when it asks, at which level
        before = task.get("waiting_for") or {} if task["state"] == "waiting" else {}
        same = before.get("digest") == waiting["digest"]
        waiting["since"] = before.get("since", event["time"]) if same else event["time"]
        waiting["level_since"] = (
            before.get("level_since", waiting["since"]) if same else waiting["since"]
        )
    task["state"] = "waiting"
    task["waiting_for"] = waiting if event.get("waiting_for") is not None else None


def _task_skipped(state: State, event: ev.TaskSkipped) -> None:
    task = state["tasks"][event["task"]]
    task.update({"state": "skipped", "error": None, "finished_at": event["time"]})
    task["reason"] = event.get("reason")
    _drop_timers(state, {event["task"]})
    if event.get("by"):
        _reopen(state)  # a person skipped it so that the run can go on


def _task_interrupted(state: State, event: ev.TaskInterrupted) -> None:
    task = state["tasks"][event["task"]]
    task["interrupted"] = task.get("interrupted", 0) + 1
    task.update(
        {
            "state": "pending",
            "error": {"message": "interrupted", "kind": "interrupted"},
            "finished_at": event["time"],
            "duration": event.get("duration"),
        }
    )


def _task_cancelled(state: State, event: ev.TaskCancelled) -> None:
    task = state["tasks"][event["task"]]
    task.update({"state": "cancelled", "finished_at": event["time"]})
    task["reason"] = event.get("reason")
    _drop_timers(state, {event["task"]})


def _task_iterated(state: State, event: ev.TaskIterated) -> None:
    task = state["tasks"][event["task"]]
    task.update({"state": "retrying", "output": event.get("output"), "error": None})
    task["iteration"] = event["iteration"]
    task["iteration_attempt"] = event["attempt"]


def _group_iterated(state: State, event: ev.GroupIterated) -> None:
    again = event["again"]
    state.setdefault("groups", {})[event["group"]] = {
        "iteration": event["iteration"],
        "held": event["held"],
        "done": not again,
    }
    for task_id in again:
        state["tasks"][task_id] = new_task_state()
    if again:  # as a reset: their decisions, timers and deliveries belong to the last round
        state["approvals"] = [a for a in state.get("approvals", []) if a["task"] not in again]
        _drop_timers(state, set(again))
        _forget_deliveries(state, again)


# -- a for_each task's items: each handler O(1) ------------------------------------------


def _items_planned(state: State, event: ev.ItemsPlanned) -> None:
    values = list(event["items"])
    state["tasks"][event["task"]]["items"] = {
        "total": len(values),
        "completed": 0,
        "failed": 0,
        "skipped": 0,
        "values": values,
        "records": [new_item_state() for _ in values],
    }


def _item(state: State, event: Event, new_state: str) -> ItemRecord:
    """The item `event` is about, moved to `new_state` (its task's counts kept)."""
    items = state["tasks"][event["task"]]["items"]
    item = items["records"][event["index"]]
    old = item["state"]
    if old in ITEM_END_STATES:
        items[old] -= 1  # type: ignore[literal-required]
    if new_state in ITEM_END_STATES:
        items[new_state] += 1  # type: ignore[literal-required]
    item["state"] = new_state
    return item


def _item_started(state: State, event: ev.ItemStarted) -> None:
    _item(state, event, "running")["attempts"] = event["attempt"]  # type: ignore[arg-type]
    state["tasks"][event["task"]]["state"] = "running"


def _item_completed(state: State, event: ev.ItemCompleted) -> None:
    item = _item(state, event, "completed")  # type: ignore[arg-type]
    item.update({"output": event.get("output"), "error": None, "duration": event["duration"]})
    if "cached" in event:
        item["cached"] = event["cached"]


def _item_retrying(state: State, event: ev.ItemRetrying) -> None:
    item = _item(state, event, "retrying")  # type: ignore[arg-type]
    item.update({"error": event.get("error"), "duration": event["duration"]})


def _item_failed(state: State, event: ev.ItemFailed) -> None:
    item = _item(state, event, "failed")  # type: ignore[arg-type]
    item.update({"error": event.get("error"), "duration": event["duration"]})
    item["failed_at"] = event["time"]
    if "inputs" in event:
        item["inputs"] = event["inputs"]


def _item_skipped(state: State, event: ev.ItemSkipped) -> None:
    _item(state, event, "skipped")["reason"] = event["reason"]  # type: ignore[arg-type]


def _item_interrupted(state: State, event: ev.ItemInterrupted) -> None:
    item = _item(state, event, "pending")  # type: ignore[arg-type]
    item["error"] = {"message": "interrupted", "kind": "interrupted"}


def _items_reset(state: State, event: ev.ItemsReset) -> None:
    task = state["tasks"][event["task"]]
    for index in event["indices"]:
        item = _item(state, {**event, "index": index}, "pending")
        item.update({"attempts": 0, "output": None, "error": None})
        item.pop("inputs", None)
        item.pop("failed_at", None)
        item.pop("cached", None)
    task.update({"state": "pending", "output": None, "error": None, "finished_at": None})
    task.pop("inputs", None)
    _reopen(state)


def _stop_requested(state: State, event: ev.StopRequested) -> None:
    state["stop_requested"] = {
        "by": event.get("by"),
        "grace": event.get("grace"),
        "time": event["time"],
    }


def _cancel_requested(state: State, event: ev.CancelRequested) -> None:
    state["cancel_requested"] = {"by": event.get("by"), "grace": None, "time": event["time"]}


def _checkpoint_created(state: State, event: ev.CheckpointCreated) -> None:
    state["last_checkpoint"] = event["checkpoint"]


def _rolled_back(state: State, event: ev.RolledBack) -> None:
    for task_id, task in event["tasks"].items():
        state["tasks"][task_id] = copy.deepcopy(task)  # type: ignore[assignment]
    state["approvals"] = list(event.get("approvals") or [])
    _drop_timers(state, set(event["tasks"]))
    _forget_deliveries(state, event["tasks"])
    state.update({"state": "paused", "reason": f"rolled back to checkpoint {event['checkpoint']}"})
    state["finished_at"] = None


def _tasks_reset(state: State, event: ev.TasksReset) -> None:
    for task_id in event["tasks"]:
        state["tasks"][task_id] = new_task_state()
    decided = set(event["tasks"])
    state["approvals"] = [a for a in state.get("approvals", []) if a["task"] not in decided]
    _drop_timers(state, decided)
    _forget_deliveries(state, event["tasks"])
    _reopen(state)


def _parameter_set(state: State, event: ev.ParameterSet) -> None:
    overrides = state.setdefault("overrides", {}).setdefault(event["task"], {})
    overrides[event["name"]] = event.get("value")


def _compensation(state: State, event: Event) -> None:
    record = state.setdefault("compensations", {}).setdefault(event["task"], {})
    record.update(
        state=event["type"].removeprefix("compensation_").replace("started", "running"),
        attempts=event.get("attempt", record.get("attempts", 0)),
        error=event.get("error"),
        output=event.get("output"),
        time=event["time"],
    )


_DECISION_KEYS = ("task", "decision", "by", "comment", "time", "digest", "level", "inputs", "via")


def _approval_recorded(state: State, event: ev.ApprovalRecorded) -> None:
    state.setdefault("approvals", []).append(
        {key: event[key] for key in _DECISION_KEYS if key in event}  # type: ignore[literal-required]
    )


def _approval_escalated(state: State, event: ev.ApprovalEscalated) -> None:
    waiting = state["tasks"][event["task"]].get("waiting_for")
    if waiting is not None:
        waiting.update(
            level=event["level"], approvers=list(event["approvers"]), level_since=event["time"]
        )
    _gate_event(state, event, "level", "approvers", "mode")


def _approval_reminded(state: State, event: ev.ApprovalReminded) -> None:
    _gate_event(state, event, "level", "approvers")


def _approval_reassigned(state: State, event: ev.ApprovalReassigned) -> None:
    waiting = state["tasks"][event["task"]].get("waiting_for")
    if waiting is not None:
        waiting["approvers"] = list(event["approvers"])
    _gate_event(state, event, "by", "to", "replaced", "approvers", "comment")


def _gate_event(state: State, event: Any, *keys: str) -> None:
    record = {"type": event["type"], "task": event["task"], "time": event["time"]}
    record.update({key: event.get(key) for key in keys})
    state.setdefault("gate_events", []).append(record)


def _timer_set(state: State, event: ev.TimerSet) -> None:
    state.setdefault("timers", {})[event["timer"]] = {
        "timer": event["timer"],
        "kind": event["kind"],
        "target": event["target"],
        "due": event["due"],
        "set_at": event["time"],
        "data": dict(event.get("data") or {}),
    }


def _timer_gone(state: State, event: ev.TimerFired | ev.TimerCancelled) -> None:
    state.get("timers", {}).pop(event["timer"], None)


def _drop_timers(state: State, targets: set[str]) -> None:
    """A task that settles or is put back takes its pending timers with it."""
    timers = state.get("timers")
    if timers:
        for timer_id in [t for t, timer in timers.items() if timer["target"] in targets]:
            del timers[timer_id]


def _agent_delivered(state: State, event: ev.AgentDelivered) -> None:
    record: dict[str, Any] = {
        "attempt": event["attempt"],
        "agent": event["agent"],
        "via": event["via"],
        "time": event["time"],
    }
    if "by" in event:
        record["by"] = event["by"]
    if "error" in event:
        record["error"] = event["error"]
    else:
        record["output"] = event.get("output")
    state.setdefault("deliveries", {}).setdefault(event["task"], []).append(record)


def _forget_deliveries(state: State, tasks: Iterable[str]) -> None:
    """Tasks put back by hand: their attempts are numbered again, so what was delivered
    for the old ones must not be taken for the new."""
    deliveries = state.get("deliveries")
    if deliveries:
        for task_id in tasks:
            deliveries.pop(task_id, None)


def _signal_received(state: State, event: ev.SignalReceived) -> None:
    state.setdefault("signals", {})[event["signal"]] = {
        "signal": event["signal"],
        "event": event["event"],
        "data": event.get("data"),
        "by": event["by"],
        "time": event["time"],
        "consumed_by": None,
        "consumed_at": None,
    }


def _signal_consumed(state: State, event: ev.SignalConsumed) -> None:
    signal = state.get("signals", {}).get(event["signal"])
    if signal is not None:
        signal["consumed_by"] = event["task"]
        signal["consumed_at"] = event["time"]
    waiting = state["tasks"][event["task"]].get("waiting_for")
    if waiting is not None and signal is not None:  # what the task takes as its output
        waiting["signal"] = {k: signal[k] for k in ("signal", "data", "by", "time")}


def _event_wait_timed_out(state: State, event: ev.EventWaitTimedOut) -> None:
    waiting = state["tasks"][event["task"]].get("waiting_for")
    if waiting is not None:
        waiting["timed_out"] = {"time": event["time"], "on_timeout": event["on_timeout"]}


def _child_linked(state: State, event: ev.ChildLinked) -> None:
    state.setdefault("children", {})[event["task"]] = event["child"]


def _definition_migrated(state: State, event: ev.DefinitionMigrated) -> None:
    state.setdefault("definition_migrations", []).append(
        {
            "from_version": event["from_version"],
            "to_version": event["to_version"],
            "kept": event["kept"],
            "by": event["by"],
            "time": event["time"],
        }
    )


def _definition_migration_undone(state: State, event: ev.DefinitionMigrationUndone) -> None:
    migrations = state.get("definition_migrations") or []
    if migrations:
        migrations.pop()


def _reopen(state: State) -> None:
    """A person changed tasks of a finished (not cancelled) instance: it may run again."""
    if state["state"] in ("failed", "completed"):
        state.update({"state": "paused", "reason": "changed by hand", "finished_at": None})


def _hook_delivered(state: State, event: ev.HookDelivered) -> None:
    counts = state.setdefault("hooks", {})
    counts["delivered"] = counts.get("delivered", 0) + 1


def _hook_failed(state: State, event: ev.HookFailed) -> None:
    counts = state.setdefault("hooks", {})
    counts["failed"] = counts.get("failed", 0) + 1


_HANDLERS: dict[str, Callable[[State, Any], None]] = {
    "instance_created": _instance_created,
    "run_requested": _run_requested,
    "run_started": _run_started,
    "run_ended": _run_ended,
    "task_started": _task_started,
    "task_completed": _task_completed,
    "task_failed": _task_failed,
    "task_retrying": _task_retrying,
    "task_waiting": _task_waiting,
    "task_skipped": _task_skipped,
    "task_interrupted": _task_interrupted,
    "task_lost": _task_lost,
    "task_cancelled": _task_cancelled,
    "task_iterated": _task_iterated,
    "group_iterated": _group_iterated,
    "items_planned": _items_planned,
    "item_started": _item_started,
    "item_completed": _item_completed,
    "item_retrying": _item_retrying,
    "item_failed": _item_failed,
    "item_skipped": _item_skipped,
    "item_interrupted": _item_interrupted,
    "items_reset": _items_reset,
    "stop_requested": _stop_requested,
    "cancel_requested": _cancel_requested,
    "checkpoint_created": _checkpoint_created,
    "rolled_back": _rolled_back,
    "tasks_reset": _tasks_reset,
    "parameter_set": _parameter_set,
    "compensation_started": _compensation,
    "compensation_completed": _compensation,
    "compensation_failed": _compensation,
    "approval_recorded": _approval_recorded,
    "approval_escalated": _approval_escalated,
    "approval_reminded": _approval_reminded,
    "approval_reassigned": _approval_reassigned,
    "timer_set": _timer_set,
    "timer_fired": _timer_gone,
    "timer_cancelled": _timer_gone,
    "agent_delivered": _agent_delivered,
    "signal_received": _signal_received,
    "signal_consumed": _signal_consumed,
    "event_wait_timed_out": _event_wait_timed_out,
    "child_linked": _child_linked,
    "hook_delivered": _hook_delivered,
    "hook_failed": _hook_failed,
    "definition_migrated": _definition_migrated,
    "definition_migration_undone": _definition_migration_undone,
}
