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
        )
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
