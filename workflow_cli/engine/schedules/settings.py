"""A schedule's settings: one entry of ``schedules:`` in ``workflow_cli.yaml``, checked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from workflow_cli.errors import WorkflowCliError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.workspace import Workspace

OVERLAPS = ("skip", "queue", "allow")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
_KEYS = {"name", "template", "params", "cron", "timezone", "overlap", "catchup"}


@readonly_dataclass
class Schedule:
    name: str
    template: str
    cron: str
    timezone: str = "UTC"
    params: Mapping[str, Any] = field(default_factory=dict)
    overlap: str = "skip"
    catchup: int = 1  # how many of the due windows run, the latest ones (false: 1)


@readonly_dataclass
class ScheduleProblem:
    schedule: str  # its name ("" when the block itself is wrong)
    message: str

    def __str__(self) -> str:
        return f"schedule '{self.schedule}': {self.message}" if self.schedule else self.message


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
