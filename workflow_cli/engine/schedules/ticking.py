"""A tick: every schedule window due now fired once, and recorded."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from workflow_cli.engine.schedules.book import (
    iso,
    note,
    parse_iso,
    read_book,
    save_book,
    tick_lock,
)
from workflow_cli.engine.schedules.settings import Schedule, ScheduleProblem, load_schedules
from workflow_cli.engine.schedules.windows import due_windows
from workflow_cli.errors import WorkflowCliError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

FINAL = frozenset({"completed", "failed", "cancelled"})


@readonly_dataclass
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
    with tick_lock(workspace):
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
                "since": iso(now),
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
        after = parse_iso(self.record.get("last_window")) or parse_iso(self.record["since"])
        schedule = self.schedule
        due = due_windows(
            schedule.cron, schedule.timezone, after or self.now, self.now, schedule.catchup
        )
        if due.missed_count:
            first, last = due.missed
            many = f"more than {due.missed_count}" if due.capped else str(due.missed_count)
            reason = f"{many} window(s) from {iso(first)} to {iso(last)} not run"
            self.record["last_window"] = iso(last)
            missed = Firing(schedule.name, iso(first), "missed", None, reason, due.missed_count)
            self._done(missed)
        for window in due.fire:
            self._fire(window)
        return self.firings

    # -- one window ------------------------------------------------------------------------

    def _fire(self, window: datetime) -> None:
        from workflow_cli.store.workspace import new_instance_id

        name = self.schedule.name
        self.record["last_window"] = iso(window)
        overlap = self.schedule.overlap
        busy = self._live()
        if overlap == "skip" and busy:
            reason = f"{busy[0]} is still going (overlap: skip)"
            self._done(Firing(name, iso(window), "skipped", None, reason))
            return
        queue = overlap == "queue" and bool(busy or self.record["queue"])
        instance_id = new_instance_id(name, window)
        entry = {"instance": instance_id, "window": iso(window)}
        self.record["queue" if queue else "starting"].append(entry)
        self._save()  # the window is handled from here on: never fired twice
        try:
            self._create(instance_id)
        except WorkflowCliError as exc:
            self.record["queue" if queue else "starting"].remove(entry)
            self._done(Firing(name, iso(window), "failed", None, exc.message))
            return
        if queue:
            reason = f"waits for {(busy or [self.record['queue'][0]['instance']])[0]}"
            self._done(Firing(name, iso(window), "queued", instance_id, reason))
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
        self.record["last_fired_at"] = iso(self.now)
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
            if (self._state_of(e["instance"]) or "completed") not in FINAL
        ]

    def _forget_finished(self) -> None:
        active = self.record["active"]
        still = [e for e in active if (self._state_of(e["instance"]) or "completed") not in FINAL]
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
                    self._done(
                        Firing(self.schedule.name, entry["window"], "failed", None, exc.message)
                    )
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
        note(self.workspace, firing.as_dict(), self.now)
        self.firings.append(firing)

    def _save(self) -> None:
        save_book(self.workspace, self.book)
