"""``monitor``: a live view of a run, from any terminal.

On a terminal it is a Rich dashboard redrawn in place: the instance's state, a progress
bar for the whole run, every task (as many as fit: those running, waiting or failed
first) with state, attempt and duration, the health score and level, the latest
resource figures, and the latest events. Elsewhere it prints one plain line per change;
with ``--json`` it streams the journal's events as JSON lines.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import AppContext, app_context, check_seconds
from workflow_cli.cli.status import _STATE_STYLE
from workflow_cli.errors import WorkflowCliError, exit_code_for
from workflow_cli.formats import format_duration
from workflow_cli.store.journal import Event
from workflow_cli.store.state import (
    DONE_TASK_STATES,
    FINAL_INSTANCE_STATES,
    State,
    completed,
    progress,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from workflow_cli.monitor.follow import Follower, Update

# How often health and resource figures are read again (they cost more than a poll).
VITALS_EVERY = 2.0
# Latest events kept for the dashboard.
EVENT_HISTORY = 12
_ORDER = {"running": 0, "retrying": 1, "waiting": 2, "failed": 3, "pending": 4}
_LEVEL_STYLE = {"healthy": "green", "warning": "yellow", "critical": "bold red"}
_END_NOTES = {
    "not_running": "no run is going",
    "runner_gone": "the runner is gone (it died); recover with: workflow_cli resume {id}",
    "duration": "stopped watching (--duration); the run goes on",
}


def monitor_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    duration: float = typer.Option(
        None,
        "--duration",
        min=0.0,
        help="Stop watching after this many seconds (0: one frame). Default: until the run ends.",
        show_default=False,
    ),
    interval: float = typer.Option(
        0.5, "--interval", min=0.05, max=10.0, help="Seconds between refreshes."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Stream the journal's events as JSON lines, from the first."
    ),
) -> None:
    """Watch a run live, from this or another terminal, until it ends (or --duration
    passes): each task's state, attempt and duration, a progress bar for the whole run,
    the health score and level, resource figures, and the latest events. When output is
    not a terminal, one plain line per change. An instance created but not started is
    waited for; one finished, waiting or paused shows once. Secret parameter values are
    shown as ***.

    Exit code: the instance's state when watching ends, as 'run' reports it (0 completed
    or still running, 1 failed, cancelled or paused on a failure that waits for a person,
    3 waiting, 130 paused by a stop).

    Examples:
      workflow_cli monitor sequential_pipeline-20261203-1015
      workflow_cli monitor sequential_pipeline-20261203-1015 --duration 0
      workflow_cli monitor sequential_pipeline-20261203-1015 --json"""
    from workflow_cli.cli.events import stdout_closed_ok
    from workflow_cli.monitor.follow import Follower

    app = app_context(ctx)
    check_seconds("--duration", duration)
    check_seconds("--interval", interval)
    instance_id = app.workspace.resolve_instance_id(instance)
    follower = Follower(
        app.workspace,
        instance_id,
        app.clock,
        history=0 if as_json else EVENT_HISTORY,
        from_start=as_json,
    )
    try:
        if as_json:
            with stdout_closed_ok():
                _stream_json(follower, duration, interval)
        elif sys.stdout.isatty():
            _dashboard(app, follower, duration, interval)
        else:
            with stdout_closed_ok():
                _plain_lines(app, follower, duration, interval)
    except KeyboardInterrupt:  # Ctrl-C ends the watching, never the run
        going_on = follower.state["state"] not in FINAL_INSTANCE_STATES
        typer.echo("stopped watching" + ("; the run goes on" if going_on else ""), err=True)
        raise typer.Exit(0) from None
    finally:
        follower.close()
    state = follower.state
    code = exit_code_for(state["state"], needs_person=bool(state.get("needs_person")))
    raise typer.Exit(int(code))


# -- modes ----------------------------------------------------------------------------


def _updates(follower: Follower, duration: float | None, interval: float) -> Any:
    from workflow_cli.monitor.follow import follow

    return follow(follower, interval=interval, duration=duration)


def _stream_json(follower: Follower, duration: float | None, interval: float) -> None:
    from workflow_cli.store.secrets import mask_event

    known = _secrets(follower.state)

    def write(events: list[Event]) -> None:
        for event in events:
            record = mask_event(event, known)
            sys.stdout.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    write(follower.initial)
    for update in _updates(follower, duration, interval):
        write(update.events)


def _plain_lines(
    app: AppContext, follower: Follower, duration: float | None, interval: float
) -> None:
    from workflow_cli.cli.progress import describe
    from workflow_cli.store.secrets import mask_text

    known = _secrets(follower.state)
    vitals = Vitals(app, follower.instance_id)
    vitals.refresh(None)
    sys.stdout.write(_summary_line(follower.state, vitals) + "\n")
    sys.stdout.flush()
    level = vitals.level()
    update: Update | None = None
    for update in _updates(follower, duration, interval):
        for event in update.events:
            line = mask_text(str(describe(event, every=True)), known)
            sys.stdout.write(f"{str(event.get('time', ''))[11:19]} {line}\n")
        vitals.refresh(update)
        if vitals.level() != level:
            level = vitals.level()
            sys.stdout.write(f"{app.clock().isoformat()[11:19]} health {vitals.label()}\n")
        sys.stdout.flush()
    if update is not None and update.end != "not_running":
        sys.stdout.write(_summary_line(follower.state, vitals, update) + "\n")
    sys.stdout.flush()


def _secrets(state: State) -> set[str]:
    """The instance's secret parameter values, to mask wherever they show up."""
    from workflow_cli.store.secrets import secret_values

    return secret_values(state.get("params") or {})


def _summary_line(state: State, vitals: Vitals, update: Update | None = None) -> str:
    total = len(state["tasks"])
    line = f"{state['id']}: {state['state']}, {completed(state)}/{total} tasks completed"
    counts: dict[str, int] = {}
    for task in state["tasks"].values():
        counts[task["state"]] = counts.get(task["state"], 0) + 1
    for name in ("running", "retrying", "waiting", "failed", "skipped", "cancelled"):
        if counts.get(name):
            line += f", {counts[name]} {name}"
    health = vitals.label()
    if health:
        line += f", health {health}"
    if state.get("reason"):
        line += f" ({state['reason']})"
    note = _end_note(state, update)
    return line + (f"; {note}" if note else "")


def _end_note(state: State, update: Update | None) -> str | None:
    if update is None or update.end is None or update.end in ("ended", "not_running"):
        return None
    return _END_NOTES[update.end].format(id=state["id"])


def _dashboard(
    app: AppContext, follower: Follower, duration: float | None, interval: float
) -> None:
    from rich.live import Live

    console = app.console()
    vitals = Vitals(app, follower.instance_id)
    vitals.refresh(None)
    view = DashboardView(follower, vitals, console)
    with Live(
        view.render(app.clock(), None),
        console=console,
        auto_refresh=False,
        transient=False,
        vertical_overflow="crop",
    ) as live:
        for update in _updates(follower, duration, interval):
            vitals.refresh(update)
            live.update(view.render(app.clock(), update), refresh=True)


# -- health and resources ---------------------------------------------------------------


class Vitals:
    """The instance's health score and latest resource sample, read at most every
    VITALS_EVERY seconds (a monitor without the monitoring modules shows neither)."""

    def __init__(self, app: AppContext, instance_id: str) -> None:
        self.app = app
        self.instance_id = instance_id
        self.health: dict[str, Any] | None = None
        self.sample: dict[str, Any] | None = None
        self.problem: str | None = None
        self._last: float | None = None
        self._offset = 0
        self._changed = False

    def refresh(self, update: Update | None) -> None:
        """Read the figures again: at first (`update` None); every VITALS_EVERY seconds;
        and at the end when events came since the last read."""
        import time

        if update is not None and update.events:
            self._changed = True
        now = time.monotonic()
        if self._last is not None:
            due = now - self._last >= VITALS_EVERY
            final = update is not None and update.end is not None and self._changed
            if not (due or final):
                return
        self._last = now
        self._changed = False
        try:
            from workflow_cli.monitor.health import current_health

            self.health = current_health(self.app.workspace, self.instance_id, self.app.clock)
        except WorkflowCliError as exc:
            self.problem = exc.message
        try:
            from workflow_cli.monitor.resources import history_path, read_history_from

            # Only what was appended since the last look: a long run has many samples.
            samples, self._offset = read_history_from(
                history_path(self.app.workspace, self.instance_id), self._offset
            )
            if samples:
                self.sample = samples[-1]
        except WorkflowCliError as exc:
            self.problem = exc.message

    def level(self) -> str | None:
        return None if self.health is None else str(self.health.get("level"))

    def label(self) -> str:
        """``87.5 (healthy)``, or "" when there is no health score. The score is shown as
        the level was decided from (one decimal): 69.6 is never shown as 70 (warning)."""
        if self.health is None:
            return ""
        from workflow_cli.monitor.report.text import format_score

        score = self.health.get("score")
        shown = format_score(score) if isinstance(score, int | float) else str(score)
        return f"{shown} ({self.health.get('level')})"

    def resources_line(self) -> str:
        sample = self.sample
        if not sample:
            return f"unavailable: {self.problem}" if self.problem else "no samples yet"
        parts = []
        process = sample.get("process") or {}
        if process:
            parts.append(
                "runner "
                + "  ".join(
                    f"{name} {_figure(name, process[name])}"
                    for name in ("cpu", "rss")
                    if process.get(name) is not None
                )
            )
        machine = sample.get("machine") or {}
        if machine:
            parts.append(
                "machine "
                + "  ".join(
                    f"{name} {_figure(name, machine[name])}"
                    for name in ("cpu", "memory", "disk")
                    if machine.get(name) is not None
                )
            )
        when = str(sample.get("time") or "")[11:19]
        return " · ".join(parts) + (f"  (at {when})" if when else "")


def _figure(name: str, value: Any) -> str:
    if not isinstance(value, int | float):
        return str(value)
    if name == "rss":  # bytes
        return f"{value / 1_048_576:.0f} MB"
    return f"{value * 100:.0f}%"  # a fraction of the machine's


# -- the dashboard --------------------------------------------------------------------


class DashboardView:
    """Draws one frame of the dashboard from the follower's state, sized to the console."""

    def __init__(self, follower: Follower, vitals: Vitals, console: Console) -> None:
        self.follower = follower
        self.vitals = vitals
        self.console = console
        self.known = _secrets(follower.state)

    def render(self, now: datetime, update: Update | None) -> RenderableType:
        from rich.console import Group
        from rich.markup import escape
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        state = self.follower.state
        height = self.console.size.height
        width = self.console.size.width
        done, total = progress(state)
        counts: dict[str, int] = {}
        for task in state["tasks"].values():
            counts[task["state"]] = counts.get(task["state"], 0) + 1

        header = Text.from_markup(
            f"[bold]{escape(state['id'])}[/bold]  {escape(str(state.get('template') or ''))}  "
            + _styled(state["state"])
        )
        elapsed = _elapsed(state, now)
        if elapsed:
            header.append(f"  {elapsed}")
        health = self.vitals.label()
        if health:
            level = self.vitals.level() or ""
            header.append("  health ")
            header.append(health, style=_LEVEL_STYLE.get(level, "red"))

        bar = Table.grid(padding=(0, 1))
        bar.add_column(width=max(10, min(60, width - 40)))
        bar.add_column()
        summary = f"{completed(state)}/{total} tasks completed" + "".join(
            f", {counts[s]} {s}"
            for s in ("running", "retrying", "waiting", "failed", "skipped", "cancelled")
            if counts.get(s)
        )
        bar.add_row(ProgressBar(total=max(total, 1), completed=done), summary)

        events_shown = 6 if height >= 30 else 3
        fixed = 9 + events_shown  # header, bar, blanks, table header, resources, events title
        if state.get("reason"):
            fixed += 1
        # A narrow terminal keeps each task's state, attempt and duration whole; the
        # details (errors, what a task waits for) go under the table, wrapped, not cut.
        narrow = width < NARROW_WIDTH
        details_room = 3 if narrow else 0
        rows_room = max(3, height - fixed - 2 - 2 * details_room)
        table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        on_dask = any(task.get("worker") for task in state["tasks"].values())
        table.add_column("task", no_wrap=True, overflow="ellipsis", max_width=max(12, width - 38))
        table.add_column("state", no_wrap=True, min_width=9)
        table.add_column("attempt", no_wrap=True, min_width=7)
        table.add_column("duration", no_wrap=True, min_width=10)
        if on_dask:
            table.add_column("worker", no_wrap=True, overflow="ellipsis")
        if not narrow:
            table.add_column("detail", no_wrap=True, overflow="ellipsis")
        shown, hidden = _rows(state, rows_room)
        details: list[tuple[str, str]] = []
        for task_id in shown:
            task = state["tasks"][task_id]
            detail = _detail(state, task_id, task)
            cells: list[RenderableType] = [
                Text(task_id),
                Text.from_markup(_styled(task["state"])),
                str(task["attempts"] or ""),
                _duration(task, now),
            ]
            if on_dask:  # the worker of its last attempt that ended
                cells.append(Text(str(task.get("worker") or "")))
            if not narrow:
                cells.append(Text(detail[: max(10, width - 50)]))
            elif detail:
                details.append((task_id, detail))
            table.add_row(*cells)
        parts: list[RenderableType] = [header]
        if state.get("reason"):
            parts.append(Text(f"  {state['reason']}"))
        parts += [bar, Text(""), table]
        for task_id, detail in details[:details_room]:
            parts.append(Text(f"  {task_id}: {detail[:200]}", overflow="fold"))
        if hidden:
            parts.append(Text(f"… {hidden} more tasks not shown", style="dim"))
        parts.append(Text(""))
        resources = Text("resources  ", style="bold")
        resources.append(self.vitals.resources_line(), style="")
        parts.append(resources)
        parts.append(Text("latest events", style="bold"))
        from workflow_cli.cli.progress import describe
        from workflow_cli.store.secrets import mask_text

        for event in list(self.follower.latest)[-events_shown:]:
            line = mask_text(
                f"  {str(event.get('time', ''))[11:19]} {describe(event, every=True)}",
                self.known,
            )
            parts.append(Text(line[: width - 1], no_wrap=True, overflow="ellipsis"))
        note = _end_note(state, update)
        if note:
            parts.append(Text(note, style="yellow"))
        return Group(*parts)


NARROW_WIDTH = 90  # columns; below this the dashboard puts task details under the table


def _styled(state: str) -> str:
    from rich.markup import escape

    style = _STATE_STYLE.get(state)
    return f"[{style}]{escape(state)}[/{style}]" if style else escape(str(state))


def _rows(state: State, room: int) -> tuple[list[str], int]:
    """The tasks to list (all when they fit; else those running, waiting, failed and
    pending first, then the latest finished) and how many are left out."""
    tasks = state["tasks"]
    if len(tasks) <= room:
        return list(tasks), 0
    room = max(room - 1, 1)  # a line says how many are left out
    active = sorted(
        (t for t, s in tasks.items() if s["state"] in _ORDER),
        key=lambda t: _ORDER[tasks[t]["state"]],
    )
    shown = active[:room]
    if len(shown) < room:
        finished = [t for t, s in tasks.items() if s["state"] in DONE_TASK_STATES]
        finished.sort(key=lambda t: tasks[t].get("finished_at") or "", reverse=True)
        shown += finished[: room - len(shown)]
    return shown, len(tasks) - len(shown)


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _duration(task: Mapping[str, Any], now: datetime) -> str:
    if task["state"] in ("running", "retrying"):
        started = _parse_time(task.get("started_at"))
        if started is not None:
            return format_duration(max((now - started).total_seconds(), 0.0))
        return ""
    return format_duration(task.get("duration"))


def _elapsed(state: State, now: datetime) -> str:
    runner = state.get("runner") or {}
    started = _parse_time(runner.get("started_at"))
    if state["state"] == "running" and started is not None:
        seconds = max((now - started).total_seconds(), 0.0)
        return f"running for {format_duration(seconds)}"
    return ""


def _detail(state: State, task_id: str, task: Mapping[str, Any]) -> str:
    if task.get("items") and task["state"] != "failed":
        from workflow_cli.cli.status import items_summary

        return items_summary(task)
    if task.get("error"):
        return str(task["error"].get("message", ""))
    if task["state"] == "skipped":
        return str(task.get("reason") or "")
    if task["state"] == "waiting":
        waiting_for = task.get("waiting_for") or {}
        approvers = waiting_for.get("approvers") or []
        if approvers:
            return "approvers: " + ", ".join(approvers)
        if waiting_for.get("kind") == "mailbox":
            return f"agent {waiting_for.get('agent')}"
        child = waiting_for.get("child_instance")
        return f"child {child}" if child else ""
    child = (state.get("children") or {}).get(task_id)
    return f"child {child}" if child else ""
