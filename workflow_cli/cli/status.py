"""``status`` and ``list``: what instances are doing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.api.workspace import status_view as status_view  # its old home
from workflow_cli.cli.context import app_context, print_json

if TYPE_CHECKING:
    from workflow_cli.api import StatusView

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
    show_all: bool = typer.Option(False, "--all", help="List every task, however many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show an instance's state and progress, and each task's state, attempts, duration
    and error. Large instances list only the tasks not completed or skipped, with counts
    of the rest (--all lists every task)."""
    app = app_context(ctx)
    view = app.api.status(instance)  # deadlines that are due fire first
    if as_json:
        print_json(view)
        return
    from rich.markup import escape
    from rich.table import Table

    console = app.console()
    console.print(
        f"[bold]{escape(view['id'])}[/bold]  template {escape(str(view['template']))}  "
        f"{styled_state(view['state'])}  "
        f"{view['progress']['done']}/{view['progress']['total']} tasks done"
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
    tasks = view["tasks"]
    counts: dict[str, int] = {}
    for task in tasks.values():
        counts[task["state"]] = counts.get(task["state"], 0) + 1
    console.print("  " + escape(", ".join(f"{n} {s}" for s, n in sorted(counts.items()))))
    for name, group in view["groups"].items():
        how = "held" if group.get("held") else ("ran out" if group.get("done") else "goes on")
        console.print(f"  group {escape(name)}: iteration {group['iteration']} ({how})")
    shown = list(tasks.items())
    if len(tasks) > _FULL_LIST_LIMIT and not show_all:
        shown = [(t, s) for t, s in shown if s["state"] not in ("completed", "skipped")]
        hidden = len(tasks) - len(shown)
        shown = shown[:_FULL_LIST_LIMIT]
        console.print(f"  ({hidden} completed or skipped tasks not listed; --all lists them)")
    table = Table(box=None, pad_edge=False)
    on_dask = any(task.get("worker") for task in tasks.values())  # a run on Dask
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
        if task_id in view["children"]:
            detail = f"child {view['children'][task_id]} {detail}".strip()
        if task.get("items"):
            detail = f"{items_summary(task)} {detail}".strip()
        if task.get("lost"):
            detail = f"{detail} ({task['lost']} lost with its worker)".strip()
        duration = f"{task['duration']:.2f}s" if task.get("duration") is not None else ""
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
        age = f", {_age(seconds.total_seconds())} old"
    except (KeyError, TypeError, ValueError):
        pass
    key = str(cached.get("key", ""))[:12]
    return f"cached from {cached.get('instance')}/{cached.get('task')}, key {key}…{age}"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def styled_state(state: str) -> str:
    """A state as Rich markup in its colour; the state itself is escaped."""
    from rich.markup import escape

    style = _STATE_STYLE.get(state, "")
    return f"[{style}]{escape(state)}[/{style}]" if style else escape(str(state))


def list_command(
    ctx: typer.Context,
    state: str = typer.Option(None, "--state", help="Only instances in this state."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List instances with template, state, progress and creation time, oldest first."""
    app = app_context(ctx)
    rows = app.api.list(state=state)
    if as_json:
        print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("id", "template", "state", "progress", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row["id"]),
            escape(str(row["template"] or "")),
            escape(row["state"]),
            f"{row['progress']['done']}/{row['progress']['total']}",
            escape(str(row["created_at"] or "")[:19].replace("T", " ")),
        )
    app.console().print(table)
