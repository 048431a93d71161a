"""How a run looks while it runs: a Rich progress bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any

from workflow_cli.store.journal import Event
from workflow_cli.store.state import State, progress

_SHOWN = {
    "task_completed": "completed",
    "task_failed": "failed",
    "task_retrying": "retrying",
    "task_skipped": "skipped",
    "task_waiting": "waiting",
}


def describe(event: Event) -> str | None:
    """One readable line for an event worth a line, else None."""
    kind = event["type"]
    task = event.get("task")
    if kind == "task_started":
        return f"{task}: started (attempt {event['attempt']})"
    if kind == "task_completed":
        return f"{task}: completed in {event.get('duration', 0):.2f}s"
    if kind in ("task_failed", "task_retrying"):
        error = event.get("error") or {}
        line = f"{task}: {_SHOWN[kind]} (attempt {event.get('attempt')}): {error.get('message')}"
        if kind == "task_retrying":
            line += f"; next try in {event.get('delay', 0):.2f}s"
        return line
    if kind == "task_skipped":
        return f"{task}: skipped ({event.get('reason')})"
    if kind == "task_waiting":
        waiting_for = event.get("waiting_for") or {}
        who = ", ".join(waiting_for.get("approvers") or []) or waiting_for.get("child_instance")
        return f"{task}: waiting for {who}"
    if kind == "approval_recorded":
        return f"{task}: {event['decision']} by {event['by']}"
    if kind == "run_started":
        return "run started" + (" (recovering a run that died)" if event.get("recovered") else "")
    if kind == "run_ended":
        reason = f": {event['reason']}" if event.get("reason") else ""
        return f"run ended {event['state']}{reason}"
    return None


class LineReporter:
    """One plain line per event worth a line (output that is not a terminal)."""

    def on_events(self, events: list[Event], state: State) -> None:
        for event in events:
            line = describe(event)
            if line is not None and event["type"] != "task_started":
                sys.stdout.write(f"{event['time'][11:19]} {line}\n")
        sys.stdout.flush()


class RichReporter:
    """A progress bar with a line printed above it for each finished task."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.console = Console(highlight=False)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[running]}"),
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
        for event in events:
            line = describe(event)
            if line is not None and event["type"] != "task_started":
                style = styles.get(event["type"], "")
                self.console.print(f"[{style}]{line}[/{style}]" if style else line)
        done, total = progress(state)
        running = [t for t, s in state["tasks"].items() if s["state"] == "running"]
        label = (
            "running: " + ", ".join(running[:4]) + (" …" if len(running) > 4 else "")
            if running
            else ""
        )
        if self.bar is None:
            self.bar = self.progress.add_task(state.get("id", ""), total=total, running=label)
        self.progress.update(self.bar, completed=done, total=total, running=label)
