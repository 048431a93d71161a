"""An instance's runs and task attempts as spans of time, derived from its journal.

Everyone who draws or measures time reads it here: the report's Gantt chart, the debug
account of a task's attempts, and the health score's run time.

- A **run** lasts from ``run_started`` to ``run_ended``. A run whose runner died (a new
  ``run_started`` came first) lasts until the event before that one. The last run with
  nothing after it is *open*: it goes on until now if its runner is alive, else until
  the journal's last event.
- An **attempt** lasts from its ``task_started`` to the event that ended it:
  ``task_completed`` (completed), ``task_failed`` (failed), ``task_retrying`` (retried:
  failed, and another attempt follows), ``task_interrupted`` (interrupted),
  ``task_cancelled`` (cancelled) or ``task_waiting`` (waiting: it handed the task over
  to a wait, as a child workflow or a mailbox does). An attempt recorded at once (an
  inline action, or one that failed before it could start, with no ``task_started``)
  gets the duration it measured. An attempt still open when its run ended, when a new
  run began, when it began again, or when its task was skipped, reset or rolled back,
  was interrupted; one open at the end of the journal is running if its runner is
  alive, else interrupted.
- A **wait** (a span with attempt 0 and outcome waiting) lasts from the first
  ``task_waiting`` of a task to its next event that moves it on.

`build_timeline` derives every span from a list of events; `TimelineBuilder` does the
same event by event (the runner's health reporter feeds it as it goes); and
`read_runs` reads only the runs and waits of a journal file, decoding just the
lines they need, so that scoring a 10,000-task instance costs milliseconds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeGuard

from workflow_cli.readonly import mutable_dataclass, readonly_dataclass
from workflow_cli.store.files import read_bytes
from workflow_cli.store.journal import Event, decode_line

# How an attempt ended, or what a span is.
OUTCOMES = (
    "completed",
    "failed",
    "retried",
    "lost",
    "interrupted",
    "cancelled",
    "waiting",
    "running",
)

_ENDINGS = {
    "task_completed": "completed",
    "task_failed": "failed",
    "task_retrying": "retried",
    "task_lost": "lost",  # its Dask worker died under it
}
# Events that name several tasks: a person put them back.
_PUT_BACK = frozenset({"tasks_reset", "rolled_back"})

DIED = "the runner stopped during it; it runs again"
NO_RUNNER = "no runner is running it"
RUN_ENDED = "its run ended before it did"
STARTED_AGAIN = "it was started again before it ended"


@readonly_dataclass
class AttemptSpan:
    """One attempt of a task (attempt 1, 2, …), or a time it spent waiting (attempt 0)."""

    task: str
    attempt: int
    start: datetime  # with no task_started (see `started`): its end less its duration
    end: datetime  # never before start + the duration the runner measured
    outcome: str  # one of OUTCOMES
    order: int = 0  # position (in the events read) of the event that began it
    ended_by: int | None = None  # position of the event that ended it; None: cut short
    started: bool = True  # False: it failed before it could start (no task_started)
    duration: float | None = None  # as the runner measured it
    error: str | None = None  # the error's message
    error_kind: str | None = None
    exit_code: int | None = None  # of a command agent
    http_status: int | None = None  # of an HTTP call
    error_details: Mapping[str, Any] = field(default_factory=dict)  # the error's other fields
    retry_delay: float | None = None  # the wait before the next attempt (retried)
    reason: str | None = None  # why it was interrupted or cancelled, when known
    waiting_for: Mapping[str, Any] | None = None  # what a wait waits for
    worker: str | None = None  # the Dask worker that ran it (a run on Dask)


@readonly_dataclass
class RunSpan:
    """One run of the instance (numbered from 1)."""

    number: int
    start: datetime
    end: datetime
    state: str | None  # the state its run_ended recorded; None if it did not end
    open: bool = False  # the last run, with no run_ended: it goes on, or its runner died


@readonly_dataclass
class Timeline:
    """An instance's runs and attempt spans (spans sorted by start), the time of its
    journal's last event, and since when each task last waited (the ``time`` of its
    latest ``task_waiting``, as recorded)."""

    runs: list[RunSpan] = field(default_factory=list)
    spans: list[AttemptSpan] = field(default_factory=list)
    last_event: datetime | None = None
    waiting_since: Mapping[str, str] = field(default_factory=dict)

    @property
    def start(self) -> datetime | None:
        """The earliest moment of any span or run."""
        return min([s.start for s in self.spans] + [r.start for r in self.runs], default=None)

    @property
    def end(self) -> datetime | None:
        """The latest moment of any span or run."""
        return max([s.end for s in self.spans] + [r.end for r in self.runs], default=None)

    def run_seconds(self, until: datetime | None = None) -> float:
        """Time spent in runs; an open run counts up to `until` when given (its runner
        is alive), else up to its recorded end."""
        total = 0.0
        for run in self.runs:
            end = until if run.open and until is not None else run.end
            total += max(0.0, (end - run.start).total_seconds())
        return total


def parse_time(text: Any) -> datetime | None:
    """A journal time (ISO 8601), or None when it is not one."""
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


@mutable_dataclass
class _Open:
    attempt: int
    start: datetime
    order: int


class TimelineBuilder:
    """Folds events, in journal order, into runs and spans.

    With ``attempts=False`` only runs, waits and times are followed (what health needs;
    it may then be fed just the run events, the event before each ``run_started``, the
    ``task_waiting`` events and the last event). `tasks` limits the attempt spans kept
    to those tasks."""

    def __init__(self, *, attempts: bool = True, tasks: Collection[str] | None = None) -> None:
        self._attempts = attempts
        self._tasks = None if tasks is None else frozenset(tasks)
        self._position = 0
        self._last: datetime | None = None
        self._runs: list[RunSpan] = []
        self._run_start: datetime | None = None
        self._spans: list[AttemptSpan] = []
        self._open: dict[str, _Open] = {}
        self._waits: dict[str, tuple[datetime, int, Mapping[str, Any] | None]] = {}
        self._waiting_since: dict[str, str] = {}

    def add(self, events: Iterable[Event]) -> None:
        """Fold `events` (the next ones of the journal)."""
        for event in events:
            position = self._position
            self._position += 1
            time = parse_time(event.get("time"))
            if time is None:
                continue
            kind = event.get("type")
            if kind == "run_started":
                if self._run_start is not None and self._last is not None:
                    self._runs.append(
                        RunSpan(len(self._runs) + 1, self._run_start, self._last, None)
                    )
                self._cut_all(self._last or time, DIED)
                self._run_start = time
            elif kind == "run_ended":
                self._cut_all(time, RUN_ENDED)
                if self._run_start is not None:
                    state = event.get("state")
                    self._runs.append(
                        RunSpan(len(self._runs) + 1, self._run_start, time, str(state))
                    )
                self._run_start = None
            elif kind == "task_waiting" and isinstance(event.get("task"), str):
                self._waiting_since[event["task"]] = str(event["time"])
            if self._attempts:
                self._task_event(str(kind), event, time, position)
            self._last = time

    def timeline(self, *, now: datetime | None = None, live: bool = False) -> Timeline:
        """The timeline so far. What is still open ends at `now` if `live` (a runner is
        executing the instance: open attempts are running), else at the last event (open
        attempts were interrupted). The builder can go on being fed."""
        last = self._last
        runs = list(self._runs)
        spans = list(self._spans)
        if last is not None:
            final = max(now, last) if live and now is not None else last
            for task, opened in self._open.items():
                if live:
                    spans.append(
                        AttemptSpan(
                            task, opened.attempt, opened.start, final, "running", order=opened.order
                        )
                    )
                else:
                    spans.append(
                        AttemptSpan(
                            task,
                            opened.attempt,
                            opened.start,
                            max(final, opened.start),
                            "interrupted",
                            order=opened.order,
                            reason=NO_RUNNER,
                        )
                    )
            for task, (since, order, waiting_for) in self._waits.items():
                spans.append(
                    AttemptSpan(
                        task,
                        0,
                        since,
                        max(final, since),
                        "waiting",
                        order=order,
                        waiting_for=waiting_for,
                    )
                )
            if self._run_start is not None:
                runs.append(RunSpan(len(runs) + 1, self._run_start, final, None, open=True))
        spans.sort(key=lambda s: (s.start, s.end, s.order))
        return Timeline(runs, spans, last, dict(self._waiting_since))

    # -- attempts ------------------------------------------------------------------------

    def _task_event(self, kind: str, event: Event, time: datetime, position: int) -> None:
        if kind in _PUT_BACK:
            for task in event.get("tasks") or ():  # a list (reset) or an object (rollback)
                if isinstance(task, str) and self._wanted(task):
                    self._end_wait(task, time, position)
                    self._cut(task, time, None)
            return
        task = event.get("task")
        if not isinstance(task, str) or not self._wanted(task):
            return
        if kind == "task_started":
            self._end_wait(task, time, position)
            self._cut(task, time, STARTED_AGAIN)
            self._open[task] = _Open(_number(event.get("attempt")), time, position)
        elif kind in _ENDINGS:
            self._end_wait(task, time, position)
            self._end_attempt(task, event, time, position, _ENDINGS[kind])
        elif kind in ("task_interrupted", "task_cancelled"):
            if kind == "task_cancelled":
                self._end_wait(task, time, position)
            if task in self._open:
                outcome = "interrupted" if kind == "task_interrupted" else "cancelled"
                self._end_attempt(task, event, time, position, outcome)
        elif kind == "task_skipped":
            self._end_wait(task, time, position)
            self._cut(task, time, None)
        elif kind == "task_waiting":
            waiting_for = event.get("waiting_for")
            waiting_for = waiting_for if isinstance(waiting_for, Mapping) else None
            if task in self._open:
                self._end_attempt(task, event, time, position, "waiting")
            self._waits.setdefault(task, (time, position, waiting_for))

    def _wanted(self, task: str) -> bool:
        return self._tasks is None or task in self._tasks

    def _end_attempt(
        self, task: str, event: Event, time: datetime, position: int, outcome: str
    ) -> None:
        number = _number(event.get("attempt"))
        opened = self._open.pop(task, None)
        if opened is not None and "attempt" in event and opened.attempt != number:
            # Not the attempt that is open: that one was cut short by this one.
            self._spans.append(
                AttemptSpan(
                    task,
                    opened.attempt,
                    opened.start,
                    max(time, opened.start),
                    "interrupted",
                    order=opened.order,
                )
            )
            opened = None
        measured = event.get("duration")
        duration = float(measured) if _is_number(measured) else None
        seconds = duration or 0.0
        if opened is not None:
            start, order, started = opened.start, opened.order, True
            number = opened.attempt
        else:
            start, order, started = time - timedelta(seconds=seconds), position, False
        error = event.get("error")
        details = dict(error) if isinstance(error, Mapping) else {}
        message = details.pop("message", None)
        kind = details.pop("kind", None)
        exit_code = details.pop("exit_code", None) if _is_int(details.get("exit_code")) else None
        status = details.pop("status", None) if _is_int(details.get("status")) else None
        delay = event.get("delay") if outcome == "retried" else None
        reason = event.get("reason") if outcome in ("interrupted", "cancelled", "lost") else None
        worker = event.get("worker")
        waiting_for = event.get("waiting_for") if outcome == "waiting" else None
        self._spans.append(
            AttemptSpan(
                task,
                number,
                start,
                max(time, start + timedelta(seconds=seconds)),
                outcome,
                order=order,
                ended_by=position,
                started=started,
                duration=duration,
                error=str(message) if message is not None else None,
                error_kind=str(kind) if kind is not None else None,
                exit_code=exit_code,
                http_status=status,
                error_details=details,
                retry_delay=float(delay) if _is_number(delay) else None,
                reason=str(reason) if reason else None,
                waiting_for=waiting_for if isinstance(waiting_for, Mapping) else None,
                worker=worker if isinstance(worker, str) and worker else None,
            )
        )

    def _cut(self, task: str, at: datetime, reason: str | None) -> None:
        """End the task's open attempt, if any, as interrupted at `at`."""
        opened = self._open.pop(task, None)
        if opened is not None:
            self._spans.append(
                AttemptSpan(
                    task,
                    opened.attempt,
                    opened.start,
                    max(at, opened.start),
                    "interrupted",
                    order=opened.order,
                    reason=reason,
                )
            )

    def _cut_all(self, at: datetime, reason: str) -> None:
        for task in list(self._open):
            self._cut(task, at, reason)

    def _end_wait(self, task: str, at: datetime, position: int) -> None:
        wait = self._waits.pop(task, None)
        if wait is not None:
            since, order, waiting_for = wait
            self._spans.append(
                AttemptSpan(
                    task,
                    0,
                    since,
                    max(at, since),
                    "waiting",
                    order=order,
                    ended_by=position,
                    waiting_for=waiting_for,
                )
            )


def _number(value: Any) -> int:
    return value if _is_int(value) else 0


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def build_timeline(
    events: Iterable[Event],
    *,
    now: datetime | None = None,
    live: bool = False,
    tasks: Collection[str] | None = None,
) -> Timeline:
    """Every run, attempt and wait in `events` (a whole journal, in order); see
    `TimelineBuilder.timeline` for `now` and `live`, and the module for the rules."""
    builder = TimelineBuilder(tasks=tasks)
    builder.add(events)
    return builder.timeline(now=now, live=live)


# Markers of the lines `read_runs` decodes. A marker may also turn up inside an
# event's data (an output holding such an object): the decoded event's own type decides.
_RUN_MARKERS = (b'"type":"run_started"', b'"type":"run_ended"', b'"type":"task_waiting"')


def read_runs(path: Path) -> TimelineBuilder:
    """The runs and waits of the journal at `path`, as a builder (``attempts=False``) that
    later events may be added to; a missing journal has none.

    Only the lines that matter are decoded (with the journal's own decoding, checksum
    included): each run_started, run_ended and task_waiting, found by their type's
    text; the line before a run_started that follows another with no run_ended between
    (where the run whose runner died ended); and the last line. So a 10,000-task journal
    is read in a few milliseconds. A torn last line is not an event; a damaged line that
    is needed is a JournalCorruptError.
    """
    builder = TimelineBuilder(attempts=False)
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return builder
    end = data.rfind(b"\n") + 1
    if end == 0:
        return builder

    def line_at(start: int) -> Event:
        return decode_line(data[start : data.find(b"\n", start) + 1], f"{path} at byte {start}")

    found: dict[int, Event] = {}  # by the offset of its line
    for marker in _RUN_MARKERS:
        at = data.find(marker, 0, end)
        while at >= 0:
            start = data.rfind(b"\n", 0, at) + 1
            if start not in found:
                found[start] = line_at(start)
            at = data.find(marker, data.find(b"\n", at) + 1, end)
    died_before: list[int] = []
    run_open = False
    for start in sorted(found):
        kind = found[start].get("type")
        if kind == "run_started":
            if run_open and start > 0:
                died_before.append(data.rfind(b"\n", 0, start - 1) + 1)
            run_open = True
        elif kind == "run_ended":
            run_open = False
    for start in [*died_before, data.rfind(b"\n", 0, end - 1) + 1]:
        if start not in found:
            found[start] = line_at(start)
    builder.add(found[start] for start in sorted(found))
    return builder
