"""How a run looks while it runs: a Rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any

from workflow_cli.formats import format_duration
from workflow_cli.store.journal import Event
from workflow_cli.store.state import State, progress

_SHOWN = {
    "task_completed": "completed",
    "task_failed": "failed",
    "task_retrying": "retrying",
    "task_skipped": "skipped",
    "task_waiting": "waiting",
}


# Fields every journal record has; a generic description leaves them out.
_RECORD_FIELDS = ("seq", "time", "type", "crc")


def describe(event: Event, *, every: bool = False) -> str | None:
    """One readable line for an event worth a line, else None. With `every`, a line for
    any event at all: quieter ones too, and types this version does not know (their type
    and fields), so a journal from a newer version still reads."""
    try:
        line = _describe_known(event)
    except (KeyError, TypeError, ValueError):  # a known type with odd fields: show them as they are
        line = None
    if line is not None or not every:
        return line
    try:
        line = _describe_quiet(event)
    except (KeyError, TypeError, ValueError):
        line = None
    return line if line is not None else describe_generic(event)


def _on(event: Event) -> str:
    """Where the attempt ran, for a run on Dask."""
    return f" on {event['worker']}" if event.get("worker") else ""


def _by(event: Event) -> str:
    return f" by {event['by']}" if event.get("by") else ""


def _describe_quiet(event: Event) -> str | None:
    """Events a run's progress leaves out, and the ones of stop, cancel, checkpoints,
    rollback, retry, skip and compensation (parameter values are left out: they may be
    secrets)."""
    kind = event["type"]
    task = event.get("task")
    if kind == "instance_created":
        by = f" by {event['requester']}" if event.get("requester") else ""
        return f"instance {event['instance']} created{by} ({len(event.get('tasks') or [])} tasks)"
    if kind == "run_requested":
        return f"{'resume' if event.get('resume') else 'start'} requested{_by(event)}"
    if kind == "child_linked":
        return f"{task}: child instance {event['child']}"
    if kind == "checkpoint_created":
        label = f", {event['label']}" if event.get("label") else ""
        return f"checkpoint {event['checkpoint']} ({event.get('kind')}{label})"
    if kind in ("stop_requested", "cancel_requested"):
        grace = f" (grace {event['grace']:g}s)" if event.get("grace") is not None else ""
        return f"{kind.removesuffix('_requested')} requested{_by(event)}{grace}"
    if kind == "rolled_back":
        tasks = event.get("tasks") or {}
        return f"rolled back to checkpoint {event['checkpoint']}{_by(event)} ({len(tasks)} tasks)"
    if kind == "tasks_reset":
        tasks = list(event.get("tasks") or [])
        shown = ", ".join(tasks[:5]) + (" …" if len(tasks) > 5 else "")
        return f"tasks reset for {event.get('why') or 'a new run'}{_by(event)}: {shown}"
    if kind == "task_cancelled":
        return f"{task}: cancelled" + (f" ({event['reason']})" if event.get("reason") else "")
    if kind == "task_interrupted":
        return f"{task}: interrupted; it runs again"
    if kind == "parameter_set":
        return f"{task}: parameter '{event['name']}' set{_by(event)}"
    if kind == "item_started":
        return f"{task}[{event['index']}]: started (attempt {event['attempt']})"
    if kind == "item_completed":
        return f"{task}[{event['index']}]: completed in {event.get('duration') or 0:.2f}s"
    if kind == "item_skipped":
        return f"{task}[{event['index']}]: skipped ({event.get('reason')})"
    if kind == "item_interrupted":
        return f"{task}[{event['index']}]: interrupted; it runs again"
    if kind == "items_reset":
        shown = ", ".join(str(i) for i in event["indices"][:10])
        return f"{task}: items reset for {event.get('why')}{_by(event)}: {shown}"
    if kind == "approval_reminded":
        return f"{task}: reminder to {', '.join(event['approvers'])}"
    if kind == "approval_reassigned":
        return f"{task}: reassigned to {event['to']}{_by(event)}"
    if kind == "timer_set":
        return f"{event['target']}: {event['kind']} due {event['due']}"
    if kind == "timer_cancelled":
        return f"timer {event['timer']} cancelled ({event.get('reason')})"
    if kind == "compensation_started":
        return f"{task}: compensation started (attempt {event['attempt']})"
    if kind == "compensation_completed":
        took = format_duration(float(event.get("duration") or 0))
        return f"{task}: compensation completed in {took}"
    if kind in ("hook_delivered", "hook_failed"):
        about = f" for {task}" if task else ""
        done = "delivered" if kind == "hook_delivered" else f"failed: {event.get('error')}"
        return f"hook {event['hook']} ({event['event']}{about}) {done}"
    if kind == "compensation_failed":
        error = event.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else error
        return f"{task}: compensation failed (attempt {event.get('attempt')}): {message}"
    if kind == "event_wait_timed_out":
        seconds, then = float(event["timeout_seconds"]), event["on_timeout"]
        return f"{task}: no {event['event']} within {seconds:g} s (on_timeout: {then})"
    return None


def describe_generic(event: Event) -> str:
    """`type: key=value …` for any event (values as compact JSON, long ones cut)."""
    import json

    parts = []
    for key, value in event.items():
        if key in _RECORD_FIELDS:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={text if len(text) <= 80 else text[:77] + '...'}")
    return f"{event.get('type', '?')}" + (": " + " ".join(parts) if parts else "")


def _describe_known(event: Event) -> str | None:
    kind = event["type"]
    task = event.get("task")
    if kind == "task_started":
        return f"{task}: started (attempt {event['attempt']})"
    if kind == "task_completed":
        return (
            f"{task}: completed in {format_duration(float(event.get('duration', 0)))}{_on(event)}"
        )
    if kind in ("task_failed", "task_retrying"):
        error = event.get("error") or {}
        line = f"{task}: {_SHOWN[kind]} (attempt {event.get('attempt')}{_on(event)}): "
        line += str(error.get("message"))
        if kind == "task_retrying":
            line += f"; next try in {format_duration(float(event.get('delay', 0)))}"
        return line
    if kind == "task_lost":
        worker = event.get("worker") or "a Dask worker"
        return f"{task}: attempt {event.get('attempt')} lost with {worker}; it runs again"
    if kind == "task_skipped":
        return f"{task}: skipped ({event.get('reason')})"
    if kind == "items_planned":
        return f"{task}: {len(event['items'])} items"
    if kind in ("item_failed", "item_retrying"):
        error = event.get("error") or {}
        line = f"{task}[{event['index']}]: {kind.removeprefix('item_')} (attempt"
        line += f" {event.get('attempt')}): {error.get('message')}"
        if kind == "item_retrying":
            line += f"; next try in {event.get('delay', 0):.2f}s"
        return line
    if kind == "task_iterated":
        held = "held" if event.get("held") else "did not hold"
        return f"{task}: iteration {event['iteration']} ended; until {held}"
    if kind == "task_waiting":
        waiting_for = event.get("waiting_for") or {}
        who = ", ".join(waiting_for.get("approvers") or []) or waiting_for.get("child_instance")
        if waiting_for.get("kind") == "mailbox":
            who = f"agent {waiting_for.get('agent')} ({waiting_for.get('assignment')})"
        elif waiting_for.get("kind") == "event":
            from workflow_cli.engine.event_waits import describe_event_wait

            who = describe_event_wait(waiting_for)
        return f"{task}: waiting for {who}"
    if kind == "signal_consumed":
        return f"{task}: took signal {event['signal']}"
    if kind == "approval_recorded":
        level = f" at level {event['level']}" if "level" in event else ""
        return f"{task}: {event['decision']} by {event['by']}{level}"
    if kind == "approval_escalated":
        return f"{task}: escalated to level {event['level']}: {', '.join(event['approvers'])}"
    if kind == "timer_fired":
        return (
            f"{event['target']}: {event['kind']} fired by {event['by']}"
            f" (due {event['due']}, at {event['fired_at']})"
        )
    if kind == "agent_delivered":
        what = "an error" if "error" in event else "the output"
        return f"{task}: {what} delivered by {event['agent']} ({event['via']})"
    if kind == "run_started":
        return "run started" + (" (recovering a run that died)" if event.get("recovered") else "")
    if kind == "run_ended":
        reason = f": {event['reason']}" if event.get("reason") else ""
        return f"run ended {event['state']}{reason}"
    return None


SIGNAL_STOP = "a signal (Ctrl-C or SIGTERM)"  # who a runner says stopped it on a signal


def stop_notice(event: Event, state: State) -> str | None:
    """What a person is told the moment a stop or cancel is taken up, or an attempt is
    cut short: which tasks the run now waits for, and what a second Ctrl-C does."""
    kind = event["type"]
    running = [t for t, s in state["tasks"].items() if s["state"] == "running"]
    shown = ", ".join(running[:6]) + (f" and {len(running) - 6} more" if len(running) > 6 else "")
    if kind == "stop_requested":
        who = "" if event.get("by") == SIGNAL_STOP else f" (by {event.get('by')})"
        if not running:
            return f"stopping{who}: nothing is running; the run ends now"
        again = " — Ctrl-C again to interrupt them" if event.get("by") == SIGNAL_STOP else ""
        return f"stopping{who}: waiting for {shown}{again}"
    if kind == "cancel_requested":
        return f"cancelling (by {event.get('by')}): ending {shown or 'the run'}"
    if kind == "task_interrupted":
        return f"{event.get('task')}: interrupted; it runs again on resume (no retry used up)"
    return None


class LineReporter:
    """One plain line per event worth a line (output that is not a terminal)."""

    def on_events(self, events: list[Event], state: State) -> None:
        for event in events:
            line = describe(event) or stop_notice(event, state)
            if line is not None and event["type"] != "task_started":
                sys.stdout.write(f"{event['time'][11:19]} {line}\n")
        sys.stdout.flush()


class RichReporter:
    """A progress bar with a line printed above it for each finished task. On a narrow
    terminal the run's state and the bar stay on their line; the counts, then the names
    of the running tasks, wrap under each other rather than being cut."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.table import Column

        self.console = console or Console(highlight=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=20),
            TextColumn(
                "{task.fields[counts]}[dim]{task.fields[running]}",
                table_column=Column(overflow="fold", ratio=1),
            ),
            console=self.console,
            transient=True,
        )
        self.bar: Any = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_events(self, events: list[Event], state: State) -> None:
        styles = {
            "task_completed": "green",
            "task_failed": "red",
            "task_retrying": "yellow",
            "task_skipped": "dim",
            "task_waiting": "cyan",
            "run_ended": "bold",
        }
        from rich.markup import escape

        for event in events:
            line = describe(event) or stop_notice(event, state)
            if line is not None and event["type"] != "task_started":
                style = styles.get(event["type"], "yellow" if "_requested" in event["type"] else "")
                line = escape(line)
                self.console.print(f"[{style}]{line}[/{style}]" if style else line)
        done, total = progress(state)
        counts: dict[str, int] = {}
        for task in state["tasks"].values():
            counts[task["state"]] = counts.get(task["state"], 0) + 1
        label = f"{counts.get('completed', 0)}/{total} completed" + "".join(
            f", {counts[name]} {name}"
            for name in ("running", "retrying", "waiting", "failed", "skipped", "cancelled")
            if counts.get(name)
        )
        running = [t for t, s in state["tasks"].items() if s["state"] == "running"]
        names = ", ".join(running[:4]) + (" …" if len(running) > 4 else "")
        stopping = state.get("stop_requested") or state.get("cancel_requested")
        description = "stopping" if stopping else "running"
        counts_text = escape(label)
        names_text = escape(f" · {names}") if names else ""
        if self.bar is None:
            self.bar = self.progress.add_task(
                description, total=total, completed=done, counts=counts_text, running=names_text
            )
        else:
            self.progress.update(
                self.bar,
                description=description,
                completed=done,
                total=total,
                counts=counts_text,
                running=names_text,
            )
