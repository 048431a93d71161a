"""The pure part of durable timers: what is due at a time, and what firing it does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from workflow_cli.engine.approvals import DEADLINE, REMINDER, evaluate_gate, parse_gate
from workflow_cli.engine.timers import due_timers, fire_due, new_timer, seconds_until_next
from workflow_cli.store.state import State, TimerRecord, empty_state, fold

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def timer(name: str, due: datetime, kind: str = "other", target: str = "t") -> TimerRecord:
    return {
        "timer": name,
        "kind": kind,
        "target": target,
        "due": due.isoformat(timespec="milliseconds"),
        "set_at": T0.isoformat(),
        "data": {},
    }


def test_due_timers_are_those_due_earliest_first():
    timers = {
        "late": timer("late", T0 + timedelta(seconds=30)),
        "b": timer("b", T0 + timedelta(seconds=10)),
        "a": timer("a", T0 + timedelta(seconds=10)),
        "first": timer("first", T0),
    }
    now = T0 + timedelta(seconds=10)
    assert [t["timer"] for t in due_timers(timers, now)] == ["first", "a", "b"]
    assert seconds_until_next({"late": timers["late"]}, at(now)) == 20.0
    assert seconds_until_next({}, unread) is None  # no timers: the clock is not read
    assert seconds_until_next(timers, at(now)) == 0.0
    assert fire_due(empty_state(), unread, "test") == []


def at(when: datetime) -> Callable[[], datetime]:
    return lambda: when


def unread() -> datetime:
    raise AssertionError("the clock was read")


def _stamped(events: list[Any], start: int, when: datetime) -> list[dict[str, Any]]:
    return [
        {**e, "seq": start + n, "time": when.isoformat(timespec="milliseconds")}
        for n, e in enumerate(events)
    ]


def _waiting_gate(parameters: dict[str, Any]) -> State:
    """The state of an instance whose one task, a gate, has begun to wait at T0."""
    verdict = evaluate_gate(parse_gate(parameters, {}), [], None)
    assert verdict.waiting_for is not None
    created = {"type": "instance_created", "instance": "i", "tasks": ["gate"], "params": {}}
    waiting = {"type": "task_waiting", "task": "gate", "waiting_for": verdict.waiting_for}
    return fold(_stamped([created, waiting], 1, T0), empty_state())


def test_a_deadline_escalates_then_decides_and_a_stale_one_is_cancelled():
    from workflow_cli.engine.approvals import wait_timers

    state = _waiting_gate(
        {"approvers": ["a"], "timeout_seconds": 60, "escalate_to": ["b"], "on_timeout": "approve"}
    )
    set_events = wait_timers(state, "gate", T0)
    assert [e["kind"] for e in set_events] == [DEADLINE]
    fold(_stamped(set_events, 3, T0), state)
    assert fire_due(state, at(T0 + timedelta(seconds=59)), "test") == []

    later = T0 + timedelta(seconds=61)
    [escalation] = fire_due(state, at(later), "test")
    types = [e["type"] for e in escalation.events]
    assert types == ["timer_fired", "approval_escalated", "timer_set"]
    assert escalation.events[0]["due"] == (T0 + timedelta(seconds=60)).isoformat(
        timespec="milliseconds"
    )
    assert escalation.run_again is None
    fold(_stamped(escalation.events, 4, later), state)
    assert state["tasks"]["gate"]["waiting_for"]["approvers"] == ["b"]  # type: ignore[index]

    last = later + timedelta(seconds=61)
    [decided] = fire_due(state, at(last), "test")
    assert [e["type"] for e in decided.events] == ["timer_fired", "approval_recorded"]
    assert decided.events[1]["decision"] == "approved" and decided.run_again == "gate"

    # The same timer on a gate that no longer waits at its level: cancelled, not fired.
    state["tasks"]["gate"]["waiting_for"]["level"] = 0  # type: ignore[index]
    [stale] = fire_due(state, at(last), "test")
    assert [e["type"] for e in stale.events] == ["timer_cancelled"]


def test_a_reminder_sets_the_next_one_and_an_unknown_kind_is_cancelled():
    state = _waiting_gate({"approvers": ["a"], "remind_every_seconds": 30})
    first = new_timer(state, REMINDER, "gate", T0 + timedelta(seconds=30), {})
    unknown = new_timer(state, "nobody_handles_this", "gate", T0, {})
    fold(_stamped([first, unknown], 3, T0), state)
    outcomes = fire_due(state, at(T0 + timedelta(seconds=31)), "test")
    assert [[e["type"] for e in o.events] for o in outcomes] == [
        ["timer_cancelled"],
        ["timer_fired", "approval_reminded", "timer_set"],
    ]
    assert outcomes[1].events[2]["due"] == (T0 + timedelta(seconds=61)).isoformat(
        timespec="milliseconds"
    )
