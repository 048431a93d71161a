"""Runs and attempt spans derived from events (store/spans): each way an attempt ends, the
builder fed event by event, and the cheap reader of a journal's runs and waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workflow_cli.errors import JournalCorruptError
from workflow_cli.store.journal import Journal
from workflow_cli.store.spans import (
    DIED,
    NO_RUNNER,
    TimelineBuilder,
    build_timeline,
    read_runs,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(seconds: float, kind: str, **fields: object) -> dict[str, object]:
    return {"time": at(seconds).isoformat(timespec="milliseconds"), "type": kind, **fields}


def outcomes(events: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(s.task, s.attempt, s.outcome, s.start, s.end) for s in build_timeline(events).spans]


def test_an_attempt_in_flight_cancelled_and_a_waiting_task_cancelled():
    events = [
        event(0, "run_started"),
        event(0, "task_waiting", task="gate", waiting_for={"approvers": ["ann"]}),
        event(1, "task_started", task="a", attempt=1),
        event(4, "task_cancelled", task="a", reason="cancelled by bob", attempt=1, duration=3.0),
        event(4, "task_cancelled", task="gate", reason="cancelled by bob"),
        event(4, "run_ended", state="cancelled"),
    ]
    timeline = build_timeline(events)
    assert [(s.task, s.attempt, s.outcome, s.start, s.end) for s in timeline.spans] == [
        ("gate", 0, "waiting", at(0), at(4)),
        ("a", 1, "cancelled", at(1), at(4)),
    ]
    wait, cancelled = timeline.spans
    assert wait.waiting_for == {"approvers": ["ann"]} and wait.ended_by == 4
    assert cancelled.reason == "cancelled by bob" and cancelled.duration == 3.0
    assert (cancelled.order, cancelled.ended_by) == (2, 3)


def test_an_interrupted_attempt_keeps_its_reason_and_the_next_one_runs():
    events = [
        event(0, "run_started"),
        event(0, "task_started", task="a", attempt=1),
        event(2, "task_interrupted", task="a", attempt=1, duration=2.0, reason="stopped"),
        event(2, "run_ended", state="paused"),
        event(9, "run_started"),
        event(9, "task_started", task="a", attempt=2),
        event(10, "task_completed", task="a", attempt=2, duration=1.0, output=None),
        event(10, "run_ended", state="completed"),
    ]
    timeline = build_timeline(events)
    first, second = timeline.spans
    assert (first.outcome, first.reason, first.end) == ("interrupted", "stopped", at(2))
    assert (second.attempt, second.outcome) == (2, "completed")
    assert [(r.number, r.state, r.open) for r in timeline.runs] == [
        (1, "paused", False),
        (2, "completed", False),
    ]
    assert timeline.run_seconds() == 3.0


def test_errors_exit_codes_http_status_and_the_delay_before_a_retry():
    events = [
        event(0, "task_started", task="a", attempt=1),
        event(
            1,
            "task_retrying",
            task="a",
            attempt=1,
            duration=1.0,
            delay=0.5,
            error={"message": "exit 3", "kind": "exit_code", "exit_code": 3, "stderr": "x"},
        ),
        event(2, "task_started", task="a", attempt=2),
        event(
            3,
            "task_failed",
            task="a",
            attempt=2,
            duration=1.0,
            error={"message": "HTTP 500", "kind": "http_status", "status": 500},
        ),
    ]
    retried, failed = build_timeline(events).spans
    assert (retried.outcome, retried.retry_delay, retried.exit_code) == ("retried", 0.5, 3)
    assert (retried.error, retried.error_kind) == ("exit 3", "exit_code")
    assert retried.error_details == {"stderr": "x"}
    assert (failed.outcome, failed.http_status, failed.exit_code) == ("failed", 500, None)
    assert failed.retry_delay is None and failed.error_details == {}


def test_an_attempt_that_failed_before_it_could_start():
    events = [
        event(5, "task_failed", task="a", attempt=1, duration=0.25, error={"message": "bad"}),
    ]
    (span,) = build_timeline(events).spans
    assert (span.started, span.start, span.end) == (False, at(4.75), at(5))
    assert span.order == span.ended_by == 0


def test_an_attempt_that_hands_over_to_a_wait():
    events = [
        event(0, "run_started"),
        event(0, "task_started", task="kick", attempt=1),
        event(2, "task_waiting", task="kick", waiting_for={"child_instance": "c1"}),
        event(2, "run_ended", state="waiting"),
        event(30, "run_started"),
        event(30, "task_started", task="kick", attempt=2),
        event(31, "task_completed", task="kick", attempt=2, duration=1.0, output=None),
    ]
    assert outcomes(events) == [
        ("kick", 1, "waiting", at(0), at(2)),
        ("kick", 0, "waiting", at(2), at(30)),
        ("kick", 2, "completed", at(30), at(31)),
    ]


def test_a_reset_or_a_skip_cuts_what_is_open():
    events = [
        event(0, "run_started"),
        event(0, "task_started", task="a", attempt=1),
        event(0, "task_started", task="b", attempt=1),
        event(1, "tasks_reset", tasks=["a"], by="ann", why="retry"),
        event(2, "task_skipped", task="b", reason="skipped by ann", by="ann"),
    ]
    spans = build_timeline(events, now=at(60), live=True).spans
    assert [(s.task, s.outcome, s.end, s.ended_by) for s in spans] == [
        ("a", "interrupted", at(1), None),
        ("b", "interrupted", at(2), None),
    ]


def test_open_attempts_at_the_end_run_on_or_were_interrupted():
    events = [
        event(0, "run_started"),
        event(1, "task_started", task="a", attempt=1),
        event(2, "run_started"),  # the first runner died
        event(3, "task_started", task="a", attempt=2),
    ]
    dead = build_timeline(events, now=at(60), live=False)
    assert [(s.attempt, s.outcome, s.end, s.reason) for s in dead.spans] == [
        (1, "interrupted", at(1), DIED),
        (2, "interrupted", at(3), NO_RUNNER),
    ]
    assert [(r.end, r.open) for r in dead.runs] == [(at(1), False), (at(3), True)]
    assert dead.run_seconds() == 2.0
    assert dead.run_seconds(until=at(12)) == 11.0  # the open run counts to `until`
    live = build_timeline(events, now=at(60), live=True)
    assert [(s.outcome, s.end) for s in live.spans][-1] == ("running", at(60))
    assert live.runs[-1].end == at(60)


def test_only_the_tasks_asked_for():
    events = [
        event(0, "task_started", task="a", attempt=1),
        event(0, "task_started", task="b", attempt=1),
        event(1, "task_completed", task="a", attempt=1, duration=1.0, output=None),
        event(1, "task_completed", task="b", attempt=1, duration=1.0, output=None),
    ]
    assert [s.task for s in build_timeline(events, tasks={"b"}).spans] == ["b"]


def test_fed_event_by_event_it_builds_what_it_builds_at_once():
    events = [
        event(0, "run_started"),
        event(0, "task_started", task="a", attempt=1),
        event(1, "task_retrying", task="a", attempt=1, duration=1.0, delay=0.1, error={}),
        event(1, "task_started", task="a", attempt=2),
        event(2, "task_waiting", task="gate"),
        event(3, "task_completed", task="a", attempt=2, duration=2.0, output=None),
        event(3, "run_ended", state="waiting"),
    ]
    builder = TimelineBuilder()
    for one in events:
        builder.add([one])
    assert builder.timeline(now=at(9)) == build_timeline(events, now=at(9))


# -- the cheap reader of a journal ------------------------------------------------------


class StepClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=10)
        return self.now


def write_journal(path: Path, batches: list[list[dict[str, object]]]) -> Journal:
    journal = Journal(path, StepClock())
    for batch in batches:
        journal.append(batch)
    return journal


BATCHES: list[list[dict[str, object]]] = [
    [{"type": "instance_created", "instance": "i", "tasks": ["a", "gate"]}],
    [{"type": "run_started", "pid": 1, "recovered": False}],  # t+20
    [{"type": "task_started", "task": "a", "attempt": 1}],  # t+30: the runner dies
    [{"type": "run_started", "pid": 2, "recovered": True}],  # t+40
    [{"type": "task_started", "task": "a", "attempt": 2}],
    # an output that looks like a run event: the decoded type decides
    [
        {
            "type": "task_completed",
            "task": "a",
            "attempt": 2,
            "duration": 1.0,
            "output": {"type": "run_ended", "state": "failed"},
        }
    ],
    [{"type": "task_waiting", "task": "gate", "waiting_for": {"approvers": ["ann"]}}],  # t+70
    [{"type": "run_ended", "state": "waiting", "reason": None}],  # t+80
    [{"type": "approval_recorded", "task": "gate", "decision": "approved", "by": "ann"}],
]


def test_read_runs_agrees_with_the_whole_journal(tmp_path):
    path = tmp_path / "events.jsonl"
    journal = write_journal(path, BATCHES)
    journal.rewind()
    whole = build_timeline(journal.read_new())
    cheap = read_runs(path).timeline()
    assert cheap.runs == whole.runs
    assert [(r.start, r.end, r.state) for r in cheap.runs] == [
        (at(20), at(30), None),
        (at(40), at(80), "waiting"),
    ]
    assert cheap.run_seconds() == 50.0
    waited = at(70).isoformat(timespec="milliseconds")
    assert cheap.waiting_since == whole.waiting_since == {"gate": waited}
    assert cheap.last_event == whole.last_event == at(90)
    assert cheap.spans == []


def test_read_runs_goes_on_with_the_events_of_a_new_run(tmp_path):
    path = tmp_path / "events.jsonl"
    write_journal(path, BATCHES)
    builder = read_runs(path)
    builder.add([event(100, "run_started"), event(130, "run_ended", state="completed")])
    assert builder.timeline().run_seconds() == 80.0


def test_read_runs_ignores_a_torn_line_and_refuses_damage(tmp_path):
    path = tmp_path / "events.jsonl"
    write_journal(path, BATCHES[:3])
    with path.open("ab") as handle:
        handle.write(b'{"seq":4,"time":"2030-01-01T00:00:40.000+00:00","type":"run_ended"')
    timeline = read_runs(path).timeline()
    assert [(r.start, r.end, r.open) for r in timeline.runs] == [(at(20), at(30), True)]
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"pid":1', b'"pid":7', 1))  # no longer matches its CRC
    with pytest.raises(JournalCorruptError, match="checksum mismatch"):
        read_runs(path)
    assert read_runs(tmp_path / "missing.jsonl").timeline().runs == []
