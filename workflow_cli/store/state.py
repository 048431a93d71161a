"""An instance's state is a fold of its journal: ``state = fold(apply_event, events)``.

`apply_event` is the only code that knows what an event means for the state.
"""

from __future__ import annotations

from typing import Any

from workflow_cli.store.journal import Event

State = dict[str, Any]

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


def new_task_state() -> dict[str, Any]:
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
    kind = event["type"]
    state["seq"] = event["seq"]
    state["updated_at"] = event["time"]
    if kind == "task_started":
        task = state["tasks"][event["task"]]
        task["state"] = "running"
        task["attempts"] = event["attempt"]
        task["started_at"] = event["time"]
        task["finished_at"] = None
    elif kind == "task_completed":
        task = state["tasks"][event["task"]]
        task.update(
            state="completed",
            output=event.get("output"),
            error=None,
            finished_at=event["time"],
            duration=event.get("duration"),
            completed_seq=event["seq"],
        )
        state.get("compensations", {}).pop(event["task"], None)
    elif kind == "task_failed":
        task = state["tasks"][event["task"]]
        task.update(
            state="failed",
            error=event.get("error"),
            finished_at=event["time"],
            duration=event.get("duration"),
        )
    elif kind == "task_retrying":
        task = state["tasks"][event["task"]]
        task.update(state="retrying", error=event.get("error"), duration=event.get("duration"))
    elif kind == "task_skipped":
        task = state["tasks"][event["task"]]
        task.update(state="skipped", error=None, finished_at=event["time"])
        task["reason"] = event.get("reason")
        if event.get("by"):
            _reopen(state)  # a person skipped it so that the run can go on
    elif kind == "task_interrupted":
        task = state["tasks"][event["task"]]
        task.update(
            state="pending",
            error={"message": "interrupted", "kind": "interrupted"},
            finished_at=event["time"],
            duration=event.get("duration"),
        )
    elif kind == "task_cancelled":
        task = state["tasks"][event["task"]]
        task.update(state="cancelled", finished_at=event["time"])
        task["reason"] = event.get("reason")
    elif kind in ("stop_requested", "cancel_requested"):
        state[kind] = {"by": event.get("by"), "grace": event.get("grace"), "time": event["time"]}
    elif kind == "checkpoint_created":
        state["last_checkpoint"] = event["checkpoint"]
    elif kind == "rolled_back":
        for task_id, task in event["tasks"].items():
            state["tasks"][task_id] = dict(task)
        state["approvals"] = list(event.get("approvals") or [])
        state.update(state="paused", reason=f"rolled back to checkpoint {event['checkpoint']}")
        state["finished_at"] = None
    elif kind == "tasks_reset":
        for task_id in event["tasks"]:
            state["tasks"][task_id] = new_task_state()
        decided = set(event["tasks"])
        state["approvals"] = [a for a in state.get("approvals", []) if a["task"] not in decided]
        _reopen(state)
    elif kind == "parameter_set":
        overrides = state.setdefault("overrides", {}).setdefault(event["task"], {})
        overrides[event["name"]] = event.get("value")
    elif kind in ("compensation_started", "compensation_completed", "compensation_failed"):
        record = state.setdefault("compensations", {}).setdefault(event["task"], {})
        record.update(
            state=kind.removeprefix("compensation_").replace("started", "running"),
            attempts=event.get("attempt", record.get("attempts", 0)),
            error=event.get("error"),
            output=event.get("output"),
            time=event["time"],
        )
    elif kind == "task_waiting":
        task = state["tasks"][event["task"]]
        task["state"] = "waiting"
        task["waiting_for"] = event.get("waiting_for")
    elif kind == "approval_recorded":
        state.setdefault("approvals", []).append(
            {key: event.get(key) for key in ("task", "decision", "by", "comment", "time")}
        )
    elif kind == "child_linked":
        state.setdefault("children", {})[event["task"]] = event["child"]
    elif kind == "run_started":
        state["state"] = "running"
        state["runs"] = state.get("runs", 0) + 1
        state["runner"] = {"pid": event.get("pid"), "started_at": event["time"]}
        for task in state["tasks"].values():
            if task["state"] in IN_FLIGHT_TASK_STATES:
                task["state"] = "pending"  # in flight when a runner died: runs again
    elif kind == "run_ended":
        state["state"] = event["state"]
        state["reason"] = event.get("reason")
        state["runner"] = None
        state.pop("stop_requested", None)
        state.pop("cancel_requested", None)
        if event["state"] in FINAL_INSTANCE_STATES:
            state["finished_at"] = event["time"]
    elif kind == "instance_created":
        state.update(
            id=event["instance"],
            template=event.get("template"),
            workflow=event.get("workflow"),
            params=event.get("params", {}),
            parent=event.get("parent"),
            created_at=event["time"],
            state="created",
            tasks={task_id: new_task_state() for task_id in event["tasks"]},
        )
    # Unknown event types (from a newer version) are kept in the journal and ignored here.


def _reopen(state: State) -> None:
    """A person changed tasks of a finished (not cancelled) instance: it may run again."""
    if state["state"] in ("failed", "completed"):
        state.update(state="paused", reason="changed by hand", finished_at=None)


def fold(events: list[Event], state: State | None = None) -> State:
    """Apply `events` in order to `state` (or to an empty state)."""
    state = state if state is not None else empty_state()
    for event in events:
        apply_event(state, event)
    return state


def progress(state: State) -> tuple[int, int]:
    """How many tasks are done (completed, failed, skipped, cancelled) of how many."""
    tasks = state["tasks"]
    done = sum(1 for task in tasks.values() if task["state"] in DONE_TASK_STATES)
    return done, len(tasks)
