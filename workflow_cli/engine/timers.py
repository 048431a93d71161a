"""Durable timers: deadlines that are journal records, not sleeping threads.

A timer is set with a ``timer_set`` event (its kind, the task it acts on, when it is
due, data for its kind) and stays in the folded state (``state["timers"]``) until a
``timer_fired`` or ``timer_cancelled`` event, or until its task settles or is put back.
Whatever comes first fires a due timer: a live runner (its loop wakes for the earliest
one), a command that touches the instance, or ``workflow_cli tick`` (made for cron).
Each firing records when the timer was due and when it fired.

`due_timers` and `fire_due` are pure (state and a time in, events out); `fire_in_instance`
and `fire_in_workspace` are the way in for commands: they act only on instances no
runner holds, under the instance's run lock, so that a timer fires once.

What a timer does when it fires depends on its kind: `handler_for` names the handler
(approval deadlines and reminders live in `engine.approvals`, event waits'
timeouts in `engine.event_waits`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field
from datetime import datetime
from typing import Any

from workflow_cli.errors import LockHeldError, WorkflowCliError
from workflow_cli.readonly import mutable_dataclass, readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, load_state, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.runlock import RunLock, runner_alive
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State, TimerRecord
from workflow_cli.store.workspace import Workspace


@readonly_dataclass
class Fired:
    """What firing a timer leaves: its events, and the task (if any) a runner must run
    again now (an approval gate that a deadline decided)."""

    events: list[Record]
    run_again: str | None = None


# A kind's handler: the state, the due timer and the time now -> what it does.
TimerHandler = Callable[[State, TimerRecord, datetime], Fired]


def handler_for(kind: str) -> TimerHandler | None:
    from workflow_cli.engine import approvals, event_waits

    handler = approvals.TIMER_HANDLERS.get(kind)
    return handler if handler is not None else event_waits.TIMER_HANDLERS.get(kind)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def format_time(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds")


def new_timer(
    state: State, kind: str, target: str, due: datetime, data: Mapping[str, Any]
) -> Record:
    """A ``timer_set`` event for a timer not yet pending (its id is unique among them)."""
    taken = state.get("timers", {})
    number = state["seq"] + 1
    while f"{target}/{kind}/{number}" in taken:
        number += 1
    return ev.timer_set(f"{target}/{kind}/{number}", kind, target, format_time(due), dict(data))


def due_timers(timers: Mapping[str, TimerRecord], now: datetime) -> list[TimerRecord]:
    """The pending timers due at `now`, earliest first."""
    due = [t for t in timers.values() if parse_time(t["due"]) <= now]
    return sorted(due, key=lambda t: (parse_time(t["due"]), t["timer"]))


def next_due(timers: Mapping[str, TimerRecord]) -> datetime | None:
    """When the earliest pending timer is due (None: there is none)."""
    return min((parse_time(t["due"]) for t in timers.values()), default=None)


def seconds_until_next(timers: Mapping[str, TimerRecord] | None, clock: Clock) -> float | None:
    """Seconds from now until the earliest pending timer is due (0 when overdue); the
    clock is read only when there are timers (a runner asks at every turn)."""
    due = next_due(timers) if timers else None
    return None if due is None else max(0.0, (due - clock()).total_seconds())


def fire_due(state: State, clock: Clock, by: str) -> list[Fired]:
    """What firing every timer due now does (pure: nothing is recorded)."""
    timers = state.get("timers")
    if not timers:
        return []
    fired = []
    now = clock()
    for timer in due_timers(timers, now):
        handler = handler_for(timer["kind"])
        if handler is None:
            reason = f"no handler for timers of kind '{timer['kind']}'"
            fired.append(Fired([ev.timer_cancelled(timer["timer"], reason)]))
            continue
        outcome = handler(state, timer, now)
        if outcome.events and outcome.events[0].get("type") == "timer_cancelled":
            fired.append(outcome)  # stale: what it was set for is over
            continue
        stamp = ev.timer_fired(
            timer["timer"],
            timer["kind"],
            timer["target"],
            due=timer["due"],
            fired_at=format_time(now),
            by=by,
        )
        fired.append(Fired([stamp, *outcome.events], outcome.run_again))
    return fired


# -- from commands -----------------------------------------------------------------------


@mutable_dataclass
class TickReport:
    """What `fire_in_workspace` did: the timers fired per instance, the instances a
    runner holds (it fires their timers itself), and the ones that could not be read."""

    fired: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    to_resume: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fired": self.fired,
            "to_resume": self.to_resume,
            "busy": self.busy,
            "errors": self.errors,
        }


def fire_in_instance(
    workspace: Workspace, instance_id: str, clock: Clock, by: str, *, known: State | None = None
) -> tuple[list[dict[str, Any]], bool] | None:
    """Fire the instance's due timers when no runner holds it; the timers fired and
    whether the instance now has work for a runner (``resume``). None when busy (a
    runner or another command holds the instance). `known`: its state as the caller
    has just read it, so that an instance with nothing due is not read again."""
    folder = workspace.instance_dir(instance_id)
    if runner_alive(folder):
        return None
    journal = open_journal(workspace, instance_id, clock)
    try:
        state = known if known is not None else load_state(journal)
        if state["state"] in FINAL_INSTANCE_STATES or not due_timers(
            state.get("timers", {}), clock()
        ):
            return [], False
        lock = RunLock(folder)
        try:
            lock.acquire(instance_id)
        except LockHeldError:
            return None
        try:
            fired, resume = _fire_locked(journal, clock, by)
        finally:
            lock.release()
    finally:
        journal.close()
    if fired:  # no runner is there to deliver their hooks (approval.overdue): this does
        from workflow_cli.engine.hooks import deliver_hooks

        deliver_hooks(workspace, instance_id, fired, clock=clock)
    return fired, resume


def _fire_locked(journal: Any, clock: Clock, by: str) -> tuple[list[dict[str, Any]], bool]:
    fired: list[dict[str, Any]] = []
    run_again: list[str] = []

    def decide(state: State) -> list[Record]:
        fired.clear()
        run_again.clear()
        events: list[Record] = []
        for outcome in fire_due(state, clock, by):
            events.extend(outcome.events)
            if outcome.run_again:
                run_again.append(outcome.run_again)
        fired.extend(dict(e) for e in events if e.get("type") != "timer_set")
        return events

    append_events(journal, decide)
    return fired, bool(run_again)


def fire_in_workspace(workspace: Workspace, clock: Clock, by: str = "tick") -> TickReport:
    """Fire every due timer of every instance of the workspace (``workflow_cli tick``)."""
    report = TickReport()
    folder = workspace.instances_dir
    if not folder.is_dir():
        return report
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        try:
            result = fire_in_instance(workspace, path.name, clock, by)
        except WorkflowCliError as exc:
            report.errors[path.name] = exc.message
            continue
        if result is None:
            report.busy.append(path.name)
            continue
        fired, resume = result
        if fired:
            report.fired[path.name] = fired
        if resume:
            report.to_resume.append(path.name)
    return report
