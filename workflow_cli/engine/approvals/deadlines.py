"""An approval gate's deadlines and reminders: durable timers (`engine.timers`) set while
it waits (`wait_timers`) and what each does when it fires: escalate to the next level,
or do what ``on_timeout`` says; record a reminder."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workflow_cli.engine.approvals.gate import DEADLINE_BY
from workflow_cli.engine.timers import Fired, new_timer
from workflow_cli.store import events as ev
from workflow_cli.store.journal import Record
from workflow_cli.store.state import State, TimerRecord

DEADLINE = "approval_deadline"
REMINDER = "approval_reminder"


# -- deadlines and reminders -------------------------------------------------------------


def wait_timers(state: State, task_id: str, now: datetime) -> list[Record]:
    """The timers a gate that has begun (or goes on) waiting needs and does not have:
    its current level's deadline, and its next reminder."""
    task = state["tasks"][task_id]
    waiting = task.get("waiting_for") or {}
    if task["state"] != "waiting" or "digest" not in waiting:
        return []
    level = int(waiting.get("level", 0))
    mine = [t for t in state.get("timers", {}).values() if t["target"] == task_id]
    events: list[Record] = []
    levels = waiting.get("levels") or []
    timeout = levels[level].get("timeout_seconds") if level < len(levels) else None
    if timeout and not any(t["kind"] == DEADLINE and t["data"].get("level") == level for t in mine):
        due = now + timedelta(seconds=timeout)
        events.append(new_timer(state, DEADLINE, task_id, due, {"level": level}))
    every = waiting.get("remind_every_seconds")
    if every and not any(t["kind"] == REMINDER for t in mine):
        events.append(new_timer(state, REMINDER, task_id, now + timedelta(seconds=every), {}))
    return events


def _waiting_gate(state: State, timer: TimerRecord) -> dict[str, Any] | None:
    task = state["tasks"].get(timer["target"])
    if task is None or task["state"] != "waiting":
        return None
    waiting = task.get("waiting_for")
    return waiting if waiting and "digest" in waiting else None


def fire_deadline(state: State, timer: TimerRecord, now: datetime) -> Fired:
    """A level's deadline passed: escalate to the next level, or do what on_timeout says."""
    task_id = timer["target"]
    waiting = _waiting_gate(state, timer)
    level = timer["data"].get("level", 0)
    if waiting is None or waiting.get("level", 0) != level:
        return Fired([ev.timer_cancelled(timer["timer"], "the gate no longer waits at that level")])
    levels = waiting.get("levels") or []
    if level + 1 < len(levels):
        following = levels[level + 1]
        approvers = list(following["approvers"])
        if waiting.get("escalation_mode") == "add":
            now_deciding = list(waiting["approvers"])
            approvers = now_deciding + [a for a in approvers if a not in now_deciding]
        mode = waiting.get("escalation_mode", "replace")
        events: list[Record] = [ev.approval_escalated(task_id, level + 1, approvers, mode)]
        if following.get("timeout_seconds"):
            due = now + timedelta(seconds=following["timeout_seconds"])
            events.append(new_timer(state, DEADLINE, task_id, due, {"level": level + 1}))
        return Fired(events)
    on_timeout = waiting.get("on_timeout", "fail")
    decision = {"approve": "approved", "reject": "rejected"}.get(on_timeout, "timed_out")
    comment = f"no decision by {timer['due']} (level {level}); on_timeout: {on_timeout}"
    recorded = ev.approval_recorded(
        task_id,
        decision,
        DEADLINE_BY,
        comment,
        digest=waiting["digest"],
        level=level,
        via=DEADLINE_BY,
    )
    others = [
        ev.timer_cancelled(t["timer"], "the gate was decided by its deadline")
        for t in state.get("timers", {}).values()
        if t["target"] == task_id and t["timer"] != timer["timer"]
    ]
    return Fired([recorded, *others], run_again=task_id)


def fire_reminder(state: State, timer: TimerRecord, now: datetime) -> Fired:
    waiting = _waiting_gate(state, timer)
    if waiting is None or not waiting.get("remind_every_seconds"):
        return Fired([ev.timer_cancelled(timer["timer"], "the gate no longer waits")])
    task_id = timer["target"]
    due = now + timedelta(seconds=waiting["remind_every_seconds"])
    return Fired(
        [
            ev.approval_reminded(task_id, int(waiting.get("level", 0)), list(waiting["approvers"])),
            new_timer(state, REMINDER, task_id, due, {}),
        ]
    )


TIMER_HANDLERS = {DEADLINE: fire_deadline, REMINDER: fire_reminder}
