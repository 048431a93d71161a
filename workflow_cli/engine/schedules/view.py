"""What ``workflow_cli schedules`` shows: each schedule's next and last firing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflow_cli.engine.schedules.book import iso, read_book
from workflow_cli.engine.schedules.settings import parse_schedules, template_problem
from workflow_cli.engine.schedules.ticking import FINAL
from workflow_cli.engine.schedules.windows import next_window
from workflow_cli.errors import WorkflowCliError
from workflow_cli.store.workspace import Workspace


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
            if state["state"] not in FINAL:
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
                "next": None if error else iso(next_window(schedule.cron, schedule.timezone, now)),
                "last": last,
                "last_started": record.get("last_instance"),
                "active": going(record.get("active")),
                "queue": [e["instance"] for e in record.get("queue", [])],
                "counts": record.get("counts", {}),
                "error": f"schedule '{schedule.name}': {error}" if error else None,
            }
        )
    return views
