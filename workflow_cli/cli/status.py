"""``status`` and ``list``: what instances are doing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import typer

from workflow_cli.cli.context import app_context, print_json

if TYPE_CHECKING:
    from workflow_cli.api import StatusView

from workflow_cli.errors import UsageError
from workflow_cli.formats import format_duration
from workflow_cli.store.state import INSTANCE_STATES
from workflow_cli.store.status_cache import LISTED_STATES, brief_of

if TYPE_CHECKING:
    from workflow_cli.store.status_cache import StatusBrief

# Beyond this many tasks the text view lists only those not completed or skipped.
_FULL_LIST_LIMIT = 60

_STATE_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "blue",
    "retrying": "yellow",
    "waiting": "cyan",
    "skipped": "dim",
    "pending": "",
    "paused": "yellow",
    "created": "",
    "cancelled": "magenta",
}


def items_summary(task: Mapping[str, Any]) -> str:
    """How far a for_each task is, from its record or its status view: "37/100 items",
    with how many failed or were skipped."""
    items = task.get("items")
    if not items:
        return ""
    done = items["completed"] + items["failed"] + items["skipped"]
    text = f"{done}/{items['total']} items"
    extra = [f"{items[k]} {k}" for k in ("failed", "skipped") if items.get(k)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def status_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    limit: int = typer.Option(
        _FULL_LIST_LIMIT,
        "--limit",
        "-n",
        metavar="N",
        min=1,
        help=f"List at most N tasks not completed or skipped (default {_FULL_LIST_LIMIT}).",
    ),
    show_all: bool = typer.Option(False, "--all", help="List every task, however many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an instance's state and progress, and each task's state, attempts, duration
    and error. Instances of more than N tasks (--limit, default 60) list only the first
    N tasks not completed or skipped, with counts of the rest (--all lists every task).

    Examples:
      workflow_cli status sequential_pipeline-20261203-101500-a1b2c3
      workflow_cli status sequential_pipeline-20261203-1015 --json
      workflow_cli status big_batch-20261203-1015 --limit 200"""

    app = app_context(ctx)
    brief = None if as_json or show_all else _cached_brief(app, instance, limit)
    if brief is None:
        view = app.api.status(instance)  # deadlines that are due fire first
        if as_json:
            print_json(view)
            return
        tasks: dict[str, Any] = dict(view["tasks"])
        every = show_all or len(tasks) <= limit
        brief = brief_of(dict(view), tasks, 0 if every else limit)
        if every:  # every task listed, completed ones too
            brief["tasks"], brief["unlisted"] = tasks, 0
    _print_status(app, brief, limit)


def _cached_brief(app: Any, instance: str, limit: int) -> StatusBrief | None:
    """The brief of a large instance from its status cache, when the cache stands for its
    journal as it is (or, while a runner executes it, as the runner last wrote it), holds
    enough tasks for `limit`, and no deadline of the instance is due (`status` fires
    those first, from the state)."""
    from workflow_cli.store.instances import open_journal
    from workflow_cli.store.runlock import runner_alive
    from workflow_cli.store.state import FINAL_INSTANCE_STATES
    from workflow_cli.store.status_cache import read_status_cache

    instance_id = app.workspace.resolve_instance_id(instance)  # as the API resolves it
    journal = open_journal(app.workspace, instance_id, app.clock)
    folder = app.workspace.instance_dir(instance_id)
    try:  # a running instance's: the runner's latest brief, which says how far behind
        brief = read_status_cache(journal, lambda: runner_alive(folder))
    finally:
        journal.close()
    if brief is None:
        return None
    view = brief["view"]
    if view["state"] not in FINAL_INSTANCE_STATES and view["timers"]:
        from workflow_cli.formats import parse_time

        now = app.clock()
        for timer in view["timers"]:
            due = parse_time(timer.get("due"))
            if due is None or due <= now:
                return None  # a deadline is due: status fires it first, from the state
    if len(brief["tasks"]) < limit and brief["unlisted"]:
        return None  # the cache keeps fewer tasks than asked for
    kept = list(brief["tasks"].items())
    brief["unlisted"] += max(0, len(kept) - limit)
    brief["tasks"] = dict(kept[:limit])
    return brief


def _print_status(app: Any, brief: StatusBrief, limit: int) -> None:
    from rich.markup import escape
    from rich.table import Table

    view = cast("StatusView", brief["view"])
    counts = brief["counts"]
    console = app.console()
    console.print(
        f"[bold]{escape(view['id'])}[/bold]  template {escape(str(view['template']))}  "
        f"{styled_state(view['state'])}  "
        f"{view['progress']['completed']}/{view['progress']['total']} tasks completed"
    )
    if "behind" in brief:
        console.print(
            f"  as of {brief['behind']:g} s ago: the runner's latest brief; the run goes on"
        )
    if view["reason"]:
        console.print(f"  {escape(str(view['reason']))}")
    if view["requester"]:
        console.print(f"  requested by {escape(str(view['requester']))}")
    if view["parent"]:
        parent = view["parent"]
        console.print(
            f"  parent: {escape(str(parent['instance']))} (task {escape(str(parent['task']))})"
        )
    console.print("  " + escape(", ".join(f"{n} {s}" for s, n in sorted(counts.items()))))
    for name, group in view["groups"].items():
        how = "held" if group.get("held") else ("ran out" if group.get("done") else "goes on")
        console.print(f"  group {escape(name)}: iteration {group['iteration']} ({how})")
    shown = list(brief["tasks"].items())
    hidden = sum(counts.get(state, 0) for state in LISTED_STATES)
    if sum(counts.values()) > len(shown) and hidden:
        console.print(f"  ({hidden} completed or skipped tasks not listed; --all lists them)")
    if brief["unlisted"]:
        console.print(
            f"  ({brief['unlisted']} more tasks not completed or skipped; "
            f"--limit N or --all lists them)"
        )
    table = Table(box=None, pad_edge=False)
    on_dask = brief["on_dask"]  # a run on Dask
    columns = ("task", "state", "attempts", "duration", "worker", "detail")
    for column in columns if on_dask else (c for c in columns if c != "worker"):
        table.add_column(column)
    for task_id, task in shown:
        detail = ""
        error, cached = task.get("error"), task.get("cached")
        if error:
            detail = error.get("message", "")
        elif task["state"] == "skipped":
            detail = task.get("reason") or ""
        elif task["state"] == "completed" and cached:
            detail = describe_cached(cached, task.get("finished_at"))
        elif task["state"] == "waiting":
            waiting_for = task.get("waiting_for") or {}
            detail = describe_wait(view, task_id, waiting_for)
            if waiting_for.get("kind") == "mailbox":
                detail = f"agent {waiting_for.get('agent')}: {waiting_for.get('assignment')}"
            elif waiting_for.get("kind") == "event":
                detail = describe_event(view, task_id, waiting_for)
        if task_id in view["children"]:
            detail = f"child {view['children'][task_id]} {detail}".strip()
        if task.get("items"):
            detail = f"{items_summary(task)} {detail}".strip()
        if task.get("lost"):
            detail = f"{detail} ({task['lost']} lost with its worker)".strip()
        duration = format_duration(task.get("duration"))
        cells = [escape(task_id), styled_state(task["state"]), escape(str(task["attempts"]))]
        cells.append(duration)
        if on_dask:
            cells.append(escape(str(task.get("worker") or "")))
        table.add_row(*cells, escape(str(detail)))
    console.print(table)
    audit = approval_audit(view)
    if audit:
        console.print("approvals:")
        for line in audit:
            console.print(f"  {escape(line)}")


def describe_event(view: StatusView, task_id: str, waiting: dict[str, Any]) -> str:
    """A waiting event wait: its event, filter and deadline."""
    from workflow_cli.engine.event_waits import TIMEOUT, describe_event_wait

    due = [t["due"] for t in view["timers"] if t["target"] == task_id and t["kind"] == TIMEOUT]
    return describe_event_wait(waiting, min(due) if due else None)


def describe_wait(view: StatusView, task_id: str, waiting: dict[str, Any]) -> str:
    """A waiting gate: its level, approvers, decisions so far and deadline."""
    approvers = waiting.get("approvers") or []
    detail = "approvers: " + ", ".join(approvers)
    if "digest" not in waiting:
        return detail
    approved = waiting.get("approved_by") or []
    detail = f"level {waiting.get('level', 0)}, {detail}"
    detail += f"; {len(approved)}/{waiting.get('required', 1)} approved"
    due = [t["due"] for t in view["timers"] if t["target"] == task_id and "deadline" in t["kind"]]
    return detail + (f"; deadline {min(due)}" if due else "")


def approval_audit(view: StatusView) -> list[str]:
    """Every decision, escalation, reassignment and reminder, in order."""
    lines = []
    for d in view["approvals"]:
        extra = f" (level {d['level']})" if "level" in d else ""
        extra += f": {d['comment']}" if d.get("comment") else ""
        extra += f"; form {d['inputs']}" if d.get("inputs") else ""
        lines.append((d.get("time") or "", f"{d['task']} {d['decision']} by {d['by']}{extra}"))
    for g in view["gate_events"]:
        what = g["type"].removeprefix("approval_")
        if what == "reassigned":
            text = f"{g['task']} reassigned to {g['to']} by {g['by']}"
        else:
            text = f"{g['task']} {what} at level {g['level']}: {', '.join(g['approvers'])}"
        lines.append((g.get("time") or "", text))
    return [f"{when}  {text}" for when, text in sorted(lines, key=lambda x: x[0])]


def describe_cached(cached: dict[str, Any], now: str | None) -> str:
    """Where a reused output came from: "cached from INSTANCE/TASK, key 1a2b3c4d…, 3 h old"
    (its age when it was reused)."""
    from datetime import datetime

    age = ""
    try:
        seconds = datetime.fromisoformat(now or "") - datetime.fromisoformat(cached["created_at"])
        age = f", {format_duration(seconds.total_seconds())} old"
    except (KeyError, TypeError, ValueError):
        pass
    key = str(cached.get("key", ""))[:12]
    return f"cached from {cached.get('instance')}/{cached.get('task')}, key {key}…{age}"


def styled_state(state: str) -> str:
    """A state as Rich markup in its colour; the state itself is escaped."""
    from rich.markup import escape

    style = _STATE_STYLE.get(state, "")
    return f"[{style}]{escape(state)}[/{style}]" if style else escape(str(state))


_SORT_KEYS = ("created", "finished", "duration", "state", "template", "id", "health")


def list_command(
    ctx: typer.Context,
    states: list[str] = typer.Option(
        [],
        "--state",
        metavar="STATE",
        help="Only instances in this state (repeatable, or comma-separated).",
    ),
    template: str = typer.Option(
        None, "--template", metavar="NAME", help="Only instances of this template."
    ),
    since: str = typer.Option(
        None,
        "--since",
        metavar="AGE|TIME",
        help="Only instances created since then: an age (30m, 2h, 7d) or an ISO time.",
    ),
    limit: int = typer.Option(
        20, "--limit", "-n", metavar="N", min=1, help="Show at most N instances."
    ),
    show_all: bool = typer.Option(False, "--all", help="Show every instance (no --limit)."),
    sort: str = typer.Option(
        "created",
        "--sort",
        metavar="FIELD",
        help="Order by: " + ", ".join(_SORT_KEYS) + " (newest, longest, best first).",
    ),
    ascending: bool = typer.Option(False, "--asc", help="Reverse the order (oldest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List instances, newest first: id, template, state, tasks completed, health, when
    created and finished, and how long they ran. At most 20 unless --limit or --all.
    Piped, the rows are tab-separated with a header, every value whole. An instance that
    cannot be read is listed as unreadable and its error printed (exit 5 for a damaged
    journal).

    Examples:
      workflow_cli list
      workflow_cli list --state failed --state cancelled --since 7d
      workflow_cli list --template etl_pipeline --sort duration --limit 5
      workflow_cli list --all | cut -f1"""
    from workflow_cli.store.listing import instance_summaries

    wanted = {part.strip() for given in states for part in given.split(",") if part.strip()}
    for name in sorted(wanted):
        if name not in INSTANCE_STATES:
            raise UsageError(f"unknown state '{name}' (one of: {', '.join(INSTANCE_STATES)})")
    if sort not in _SORT_KEYS:
        raise UsageError(f"unknown sort field '{sort}' (one of: {', '.join(_SORT_KEYS)})")
    app = app_context(ctx)
    now = app.clock()
    after = None
    if since is not None:
        from workflow_cli.monitor.alerts import parse_since

        after = parse_since(since, now)
    summaries = [
        s
        for s in instance_summaries(app.workspace, app.clock)
        if (not wanted or s.state in wanted)
        and (template is None or s.template == template)
        and (after is None or _created_since(s.created_at, after))
    ]
    health = _health_by_id(app.workspace)
    summaries.sort(key=lambda s: _sort_key(s, sort, health), reverse=not ascending)
    matched = len(summaries)
    if not show_all:
        summaries = summaries[:limit]
    if as_json:
        print_json([{**s.as_dict(), "health": health.get(s.id)} for s in summaries])
    else:
        _print_list(app, summaries, health, now)
        if matched > len(summaries):
            shown = f"{len(summaries)} of {matched} shown"
            typer.echo(f"({shown}; --all or --limit N for more)", err=True)
    # An instance that cannot be read is listed, and named with its error (a damaged
    # journal: exit 5), so that a script does not take the listing for a whole one.
    unreadable = [s for s in summaries if s.error]
    for summary in unreadable:
        typer.echo(f"error: {summary.error}", err=True)
    if unreadable:
        raise typer.Exit(max(s.error_code for s in unreadable))


def _created_since(created_at: str | None, after: Any) -> bool:
    from workflow_cli.formats import parse_time

    moment = parse_time(created_at)
    return moment is not None and moment >= after


def _health_by_id(workspace: Any) -> dict[str, dict[str, Any]]:
    """Each instance's last health score and level, from the workspace summary
    (``monitoring/health.json``, see `monitor.health.record.read_summary_entries`; read
    here directly because importing the scoring code would cost ``list`` a fifth of its
    time)."""
    import json

    from workflow_cli.errors import WorkspaceError
    from workflow_cli.store.files import read_bytes

    try:
        value = json.loads(read_bytes(workspace.monitoring_dir / "health.json"))
        scores = value["scores"]
    except (OSError, ValueError, TypeError, KeyError, WorkspaceError):
        return {}
    if not isinstance(scores, list):
        return {}
    return {
        entry["id"]: {"score": entry.get("score"), "level": entry.get("level")}
        for entry in scores
        if isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and isinstance(entry.get("score"), int | float)
    }


def _sort_key(summary: Any, field: str, health: dict[str, dict[str, Any]]) -> tuple[Any, ...]:
    if field == "health":
        return (health.get(summary.id, {}).get("score", -1.0), summary.id)
    if field == "duration":
        return (summary.duration if summary.duration is not None else -1.0, summary.id)
    value = {
        "created": summary.created_at,
        "finished": summary.finished_at,
        "state": summary.state,
        "template": summary.template,
        "id": summary.id,
    }[field]
    return (value or "", summary.created_at or "", summary.id)


def _print_list(
    app: Any, summaries: list[Any], health: dict[str, dict[str, Any]], now: Any
) -> None:
    import sys

    from workflow_cli.cli.rows import Column, print_rows
    from workflow_cli.formats import format_age, format_duration, format_time

    terminal = sys.stdout.isatty()
    columns = [
        Column("id", whole=True),
        Column("template", drop=3),
        Column("state"),
        Column("completed", drop=2),
        Column("health", drop=4),
        Column("created", drop=1),
        Column("finished", drop=5),
        Column("duration", drop=6),
    ]
    rows: list[list[object]] = []
    markup: list[list[str]] = []
    for s in summaries:
        score = health.get(s.id, {}).get("score")
        if terminal:
            created = format_age(s.created_at, now, utc=app.utc)
            finished = format_age(s.finished_at, now, utc=app.utc)
        else:
            created = format_time(s.created_at, utc=app.utc)
            finished = format_time(s.finished_at, utc=app.utc)
        rows.append(
            [
                s.id,
                s.template or "",
                s.state,
                f"{s.completed}/{s.total}",
                "" if score is None else f"{round(score, 1):g}",  # as health shows it
                created,
                finished,
                format_duration(s.duration),
            ]
        )
        if terminal:
            markup.append(["", "", styled_state(s.state), "", "", "", "", ""])
    if not rows and terminal:
        typer.echo("no instances")
        return
    print_rows(columns, rows, markup=markup or None, terminal=terminal)
