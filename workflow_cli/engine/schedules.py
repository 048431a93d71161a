"""Cron schedules: ``schedules:`` in ``workflow_cli.yaml``, which firings are due, firing them.

A schedule names a template, its parameters, a cron expression (five fields, or six with
seconds last) read in a timezone, what to do when the previous instance is still going
(``overlap``: skip, queue or allow) and how many windows that passed while nothing
ticked are still run (``catchup``: false runs only the latest; N the latest N).

`due_windows` is the pure part: the windows of a cron expression between the last one
handled and now. `run_due_schedules` acts on them: it creates instances and starts each
in a runner of its own (`engine.background`), and records every firing, skip, failure
and missed window. Whoever ticks calls it: ``workflow_cli tick`` (made for the system's
cron) or a server's loop.

What was handled is kept in ``schedules/book.json`` (written atomically), each firing
in ``schedules/firings.jsonl``, both under ``schedules/tick.lock``, so two ticks never
fire one window twice. A window is marked handled, with the id its instance will have,
before the instance is created: a tick that dies halfway leaves a note that the next
tick finishes (makes the instance if it was not made, and starts it), never a second
instance.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import LockHeldError, WorkflowCliError
from workflow_cli.store.files import write_json_atomic
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

OVERLAPS = ("skip", "queue", "allow")
# Windows looked at per schedule and tick: a seconds-cron left alone for weeks is
# counted as missed up to here, not scanned to the end.
MAX_SCAN = 10_000
# How long a tick waits for another one to finish before giving up.
LOCK_WAIT_SECONDS = 30.0
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
_KEYS = {"name", "template", "params", "cron", "timezone", "overlap", "catchup"}
_FINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Schedule:
    name: str
    template: str
    cron: str
    timezone: str = "UTC"
    params: Mapping[str, Any] = field(default_factory=dict)
    overlap: str = "skip"
    catchup: int = 1  # how many of the due windows run, the latest ones (false: 1)


@dataclass(frozen=True)
class ScheduleProblem:
    schedule: str  # its name ("" when the block itself is wrong)
    message: str

    def __str__(self) -> str:
        return f"schedule '{self.schedule}': {self.message}" if self.schedule else self.message


@dataclass(frozen=True)
class Firing:
    """What a tick did with one window (or, for ``missed``, a run of windows)."""

    schedule: str
    window: str  # ISO 8601, UTC
    outcome: str  # started | queued | skipped | missed | failed
    instance: str | None = None
    reason: str | None = None
    count: int = 1  # missed: how many windows
    pid: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TickReport:
    firings: list[Firing] = field(default_factory=list)
    problems: list[ScheduleProblem] = field(default_factory=list)


@dataclass(frozen=True)
class Due:
    """The windows of one schedule that a tick acts on."""

    fire: list[datetime]  # run these, oldest first
    missed: list[datetime]  # not run (catchup): the first and last of them, if any
    missed_count: int
    capped: bool = False  # more windows were missed than were counted


# -- reading the settings -------------------------------------------------------------------


def parse_schedules(block: Any) -> tuple[list[Schedule], list[ScheduleProblem]]:
    """The schedules of a ``schedules:`` block (a list of entries with ``name``, or a
    mapping from name to entry), and every problem with them."""
    if block is None:
        return [], []
    if isinstance(block, Mapping):
        block = [
            {"name": name, **entry} if isinstance(entry, Mapping) else entry
            for name, entry in block.items()
        ]
    if not isinstance(block, list):
        return [], [ScheduleProblem("", "schedules: expected a list of schedules")]
    schedules: list[Schedule] = []
    problems: list[ScheduleProblem] = []
    seen: set[str] = set()
    for index, entry in enumerate(block):
        schedule, found = _parse_entry(entry, index)
        if schedule is not None and schedule.name in seen:
            found.append(ScheduleProblem(schedule.name, "appears more than once"))
        if found:
            problems.extend(found)
        elif schedule is not None:
            seen.add(schedule.name)
            schedules.append(schedule)
    return schedules, problems


def _parse_entry(entry: Any, index: int) -> tuple[Schedule | None, list[ScheduleProblem]]:
    if not isinstance(entry, Mapping):
        return None, [ScheduleProblem("", f"schedules[{index}]: expected a mapping")]
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        message = "needs a name (letters, digits, '_' and '-', at most 60)"
        return None, [ScheduleProblem("", f"schedules[{index}]: {message}")]
    problems = [
        ScheduleProblem(name, f"unknown setting '{key}' (known: {', '.join(sorted(_KEYS))})")
        for key in entry
        if key not in _KEYS
    ]
    template, cron = entry.get("template"), entry.get("cron")
    timezone = entry.get("timezone", "UTC")
    params, overlap = entry.get("params") or {}, entry.get("overlap", "skip")
    catchup = entry.get("catchup", False)
    if not isinstance(template, str) or not template:
        problems.append(ScheduleProblem(name, "needs a template"))
    if not isinstance(cron, str) or not cron.strip():
        problems.append(ScheduleProblem(name, "needs a cron expression"))
    elif (problem := cron_problem(cron)) is not None:
        problems.append(ScheduleProblem(name, problem))
    if not isinstance(timezone, str) or (problem := timezone_problem(timezone)) is not None:
        problems.append(ScheduleProblem(name, f"unknown timezone {timezone!r}"))
    if not isinstance(params, Mapping):
        problems.append(ScheduleProblem(name, "params: expected a mapping"))
    if overlap not in OVERLAPS:
        problems.append(ScheduleProblem(name, f"overlap: expected one of {', '.join(OVERLAPS)}"))
    if catchup is False:
        catchup = 1
    elif isinstance(catchup, bool) or not isinstance(catchup, int) or catchup < 1:
        problems.append(ScheduleProblem(name, "catchup: expected false or a whole number ≥ 1"))
    if problems:
        return None, problems
    assert isinstance(template, str) and isinstance(cron, str) and isinstance(timezone, str)
    return Schedule(name, template, cron.strip(), timezone, dict(params), overlap, catchup), []


def cron_problem(cron: str) -> str | None:
    """Why `cron` is not a cron expression we read (five fields, or six with seconds)."""
    from croniter import croniter

    fields = cron.split()
    if len(fields) not in (5, 6):
        return f"cron {cron!r}: expected 5 fields (minute hour day month weekday) or 6"
    if not croniter.is_valid(cron):
        return f"cron {cron!r} is not a valid cron expression"
    return None


def timezone_problem(name: str) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown timezone {name!r}"
    return None


def load_schedules(workspace: Workspace) -> tuple[list[Schedule], list[ScheduleProblem]]:
    """The workspace's schedules, from ``workflow_cli.yaml``."""
    from workflow_cli.store.config import config_block

    return parse_schedules(config_block(workspace, "schedules"))


def template_problem(workspace: Workspace, schedule: Schedule) -> str | None:
    """Why the schedule's template or parameters cannot make an instance (None: they can)."""
    from workflow_cli.definition.templates import fill_values, find_template

    try:
        fill_values(
            find_template(workspace.templates_dir, schedule.template), dict(schedule.params)
        )
    except WorkflowCliError as exc:
        return exc.message
    return None


# -- the pure part ---------------------------------------------------------------------


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def due_windows(cron: str, timezone: str, after: datetime, now: datetime, catchup: int) -> Due:
    """The windows of `cron` (read in `timezone`) later than `after` and not later than
    `now`: the latest `catchup` of them to run, the rest missed (counted up to
    `MAX_SCAN`; ``capped`` says the count stopped there)."""
    from datetime import timedelta

    from croniter import croniter

    zone = _zone(timezone)
    forward = croniter(cron, after.astimezone(zone))
    first: datetime | None = None
    count, capped = 0, True
    for _ in range(MAX_SCAN):
        window: datetime = forward.get_next(datetime)
        if window > now:
            capped = False
            break
        count += 1
        first = first or window
    if first is None:
        return Due([], [], 0)
    # The latest windows, walking back from now (windows fall on whole seconds).
    backward = croniter(cron, (now.replace(microsecond=0) + timedelta(seconds=1)).astimezone(zone))
    fire = [backward.get_prev(datetime) for _ in range(min(catchup, count))]
    fire = [w.astimezone(UTC) for w in reversed(fire)]
    missed_count = count - len(fire)
    if missed_count <= 0:
        return Due(fire, [], 0)
    last_missed: datetime = croniter(cron, fire[0].astimezone(zone)).get_prev(datetime)
    return Due(fire, [first.astimezone(UTC), last_missed.astimezone(UTC)], missed_count, capped)


def next_window(cron: str, timezone: str, after: datetime) -> datetime:
    """The first window of `cron` later than `after`, in UTC."""
    from croniter import croniter

    window: datetime = croniter(cron, after.astimezone(_zone(timezone))).get_next(datetime)
    return window.astimezone(UTC)


# -- the book of what was handled ------------------------------------------------------------


def schedules_folder(workspace: Workspace) -> Path:
    return workspace.private_folder(workspace.root / "schedules")


def _book_path(workspace: Workspace) -> Path:
    return workspace.root / "schedules" / "book.json"


def firings_path(workspace: Workspace) -> Path:
    return workspace.root / "schedules" / "firings.jsonl"


def read_book(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """Each schedule's record: what it last handled, its instances still going."""
    path = _book_path(workspace)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        from workflow_cli.errors import WorkspaceError

        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
    schedules = document.get("schedules") if isinstance(document, dict) else None
    return schedules if isinstance(schedules, dict) else {}


def _save_book(workspace: Workspace, book: dict[str, dict[str, Any]]) -> None:
    write_json_atomic(_book_path(workspace), {"version": 1, "schedules": book})


def _note(workspace: Workspace, firing: Firing, now: datetime) -> None:
    line = json.dumps({"time": _iso(now), **firing.as_dict()}, ensure_ascii=False) + "\n"
    fd = os.open(firings_path(workspace), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_firings(workspace: Workspace) -> list[dict[str, Any]]:
    """Every firing recorded, oldest first (a torn last line is left out)."""
    try:
        text = firings_path(workspace).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found


@contextlib.contextmanager
def _tick_lock(workspace: Workspace, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    fd = os.open(schedules_folder(workspace) / "tick.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(
                        "another tick is firing schedules in this workspace; try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- ticking ---------------------------------------------------------------------------


def run_due_schedules(
    workspace: Workspace,
    now: datetime,
    *,
    clock: Clock | None = None,
    environ: Mapping[str, str] = os.environ,
) -> TickReport:
    """Fire every schedule window due at `now` once: create its instance and start it in
    a runner of its own (or queue or skip it, by ``overlap``), start queued instances
    whose turn has come, and record all of it. A schedule that cannot be read is a
    problem in the report; the others fire all the same."""
    schedules, problems = load_schedules(workspace)
    report = TickReport(problems=list(problems))
    if not schedules:
        return report
    clock = clock or (lambda: now)
    with _tick_lock(workspace):
        book = read_book(workspace)
        for schedule in schedules:
            ticker = _Ticker(workspace, schedule, book, now, clock, environ)
            report.firings.extend(ticker.tick())
    return report


class _Ticker:
    """One schedule's part of one tick."""

    def __init__(
        self,
        workspace: Workspace,
        schedule: Schedule,
        book: dict[str, dict[str, Any]],
        now: datetime,
        clock: Clock,
        environ: Mapping[str, str],
    ) -> None:
        self.workspace, self.schedule, self.book = workspace, schedule, book
        self.now, self.clock, self.environ = now, clock, environ
        record = book.get(schedule.name)
        if not isinstance(record, dict) or (record.get("cron"), record.get("timezone")) != (
            schedule.cron,
            schedule.timezone,
        ):  # new, or its times changed: its windows count from now
            old = record if isinstance(record, dict) else {}
            record = {
                **old,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "since": _iso(now),
                "last_window": None,
            }
            book[schedule.name] = record
            self._save()
        for key in ("active", "queue", "starting"):
            record.setdefault(key, [])
        record.setdefault("counts", {})
        self.record = record
        self.firings: list[Firing] = []

    def tick(self) -> list[Firing]:
        self._finish_interrupted()
        self._forget_finished()
        self._start_queued()
        after = _parse_iso(self.record.get("last_window")) or _parse_iso(self.record["since"])
        schedule = self.schedule
        due = due_windows(
            schedule.cron, schedule.timezone, after or self.now, self.now, schedule.catchup
        )
        if due.missed_count:
            first, last = due.missed
            many = f"more than {due.missed_count}" if due.capped else str(due.missed_count)
            reason = f"{many} window(s) from {_iso(first)} to {_iso(last)} not run"
            self.record["last_window"] = _iso(last)
            missed = Firing(schedule.name, _iso(first), "missed", None, reason, due.missed_count)
            self._done(missed)
        for window in due.fire:
            self._fire(window)
        return self.firings

    # -- one window ------------------------------------------------------------------------

    def _fire(self, window: datetime) -> None:
        from workflow_cli.store.workspace import new_instance_id

        name = self.schedule.name
        self.record["last_window"] = _iso(window)
        overlap = self.schedule.overlap
        busy = self._live()
        if overlap == "skip" and busy:
            reason = f"{busy[0]} is still going (overlap: skip)"
            self._done(Firing(name, _iso(window), "skipped", None, reason))
            return
        queue = overlap == "queue" and bool(busy or self.record["queue"])
        instance_id = new_instance_id(name, window)
        entry = {"instance": instance_id, "window": _iso(window)}
        self.record["queue" if queue else "starting"].append(entry)
        self._save()  # the window is handled from here on: never fired twice
        try:
            self._create(instance_id)
        except WorkflowCliError as exc:
            self.record["queue" if queue else "starting"].remove(entry)
            self._done(Firing(name, _iso(window), "failed", None, exc.message))
            return
        if queue:
            reason = f"waits for {(busy or [self.record['queue'][0]['instance']])[0]}"
            self._done(Firing(name, _iso(window), "queued", instance_id, reason))
            return
        self._launch(entry, None)

    def _create(self, instance_id: str) -> None:
        from workflow_cli.definition.templates import fill_values, find_template
        from workflow_cli.engine.lifecycle import create_from_template

        template = find_template(self.workspace.templates_dir, self.schedule.template)
        values = fill_values(template, dict(self.schedule.params))
        create_from_template(
            self.workspace,
            template,
            values,
            self.clock,
            instance_id=instance_id,
            environ=self.environ,
        )

    def _launch(self, entry: dict[str, str], reason: str | None) -> None:
        """Start the runner of a created instance (the entry is in ``starting``)."""
        from workflow_cli.engine.background import start_detached

        name, instance_id = self.schedule.name, entry["instance"]
        try:
            pid = start_detached(self.workspace, instance_id, self.environ)
        except OSError as exc:
            why = f"could not start its runner ({exc}); the next tick tries again"
            self._done(Firing(name, entry["window"], "failed", instance_id, why))
            return
        self.record["starting"].remove(entry)
        self.record["active"].append(entry)
        self.record["last_instance"] = instance_id
        self.record["last_fired_at"] = _iso(self.now)
        self._done(Firing(name, entry["window"], "started", instance_id, reason, pid=pid))

    # -- instances fired earlier -----------------------------------------------------------

    def _state_of(self, instance_id: str) -> str | None:
        """The instance's state (None: there is no such instance, or it is unreadable)."""
        from workflow_cli.store.instances import load_state, open_journal

        if not (self.workspace.instance_dir(instance_id) / "events.jsonl").is_file():
            return None
        try:
            return load_state(open_journal(self.workspace, instance_id, self.clock))["state"]
        except WorkflowCliError:
            return None

    def _live(self) -> list[str]:
        return [
            e["instance"]
            for e in self.record["active"]
            if (self._state_of(e["instance"]) or "completed") not in _FINAL
        ]

    def _forget_finished(self) -> None:
        active = self.record["active"]
        still = [e for e in active if (self._state_of(e["instance"]) or "completed") not in _FINAL]
        if len(still) != len(active):
            self.record["active"] = still
            self._save()

    def _start_queued(self) -> None:
        if self.record["queue"] and not self._live():
            entry = self.record["queue"].pop(0)
            self.record["starting"].append(entry)
            self._save()
            self._launch(entry, "its turn came (overlap: queue)")

    def _finish_interrupted(self) -> None:
        """Windows a tick marked handled but did not finish: start what it created."""
        from workflow_cli.store.runlock import runner_alive

        for entry in list(self.record["starting"]):
            instance_id = entry["instance"]
            state = self._state_of(instance_id)
            if state is None:  # it died before the instance was made: make it now
                # (a folder it was staging the instance in is ours: the id is this window's)
                shutil.rmtree(self.workspace.instances_dir / f".new-{instance_id}", True)
                try:
                    self._create(instance_id)
                except WorkflowCliError as exc:
                    self.record["starting"].remove(entry)
                    self._done(Firing(self.schedule.name, entry["window"], "failed", None,
                                      exc.message))  # fmt: skip
                    continue
                self._launch(entry, "after an interrupted tick")
            elif state == "created" and not runner_alive(self.workspace.instance_dir(instance_id)):
                self._launch(entry, "after an interrupted tick")
            else:
                self.record["starting"].remove(entry)
                self.record["active"].append(entry)
                self._save()

    # -- records -----------------------------------------------------------------------------

    def _done(self, firing: Firing) -> None:
        counts = self.record["counts"]
        counts[firing.outcome] = counts.get(firing.outcome, 0) + firing.count
        self.record["last_outcome"] = {
            "window": firing.window,
            "outcome": firing.outcome,
            "instance": firing.instance,
            "reason": firing.reason,
        }
        self._save()
        _note(self.workspace, firing, self.now)
        self.firings.append(firing)

    def _save(self) -> None:
        _save_book(self.workspace, self.book)


# -- what ``workflow_cli schedules`` shows -----------------------------------------------------


def describe_schedules(workspace: Workspace, now: datetime) -> list[dict[str, Any]]:
    """Each schedule with its next and last firing and what it has going; a schedule
    that cannot fire has its ``error`` (and no next firing)."""
    from workflow_cli.store.config import config_block

    block = config_block(workspace, "schedules")
    schedules, problems = parse_schedules(block)
    book = read_book(workspace)
    views: list[dict[str, Any]] = []

    def going(entries: Any) -> list[str]:
        from workflow_cli.store.instances import load_state, open_journal

        names = []
        for entry in entries or []:
            try:
                state = load_state(open_journal(workspace, entry["instance"], lambda: now))
            except (WorkflowCliError, OSError):
                continue
            if state["state"] not in _FINAL:
                names.append(entry["instance"])
        return names

    for problem in problems:
        views.append({"name": problem.schedule or None, "error": str(problem)})
    for schedule in schedules:
        record = book.get(schedule.name) or {}
        error = template_problem(workspace, schedule)
        last = record.get("last_outcome")
        views.append(
            {
                "name": schedule.name,
                "template": schedule.template,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "overlap": schedule.overlap,
                "catchup": schedule.catchup,
                "next": None if error else _iso(next_window(schedule.cron, schedule.timezone, now)),
                "last": last,
                "last_started": record.get("last_instance"),
                "active": going(record.get("active")),
                "queue": [e["instance"] for e in record.get("queue", [])],
                "counts": record.get("counts", {}),
                "error": f"schedule '{schedule.name}': {error}" if error else None,
            }
        )
    return views
