"""Task logs, as data: what each attempt of a task wrote (agent stderr, tracebacks),
found by the marker line the engine writes before each attempt's first line
(`engine.attempt.attempt_marker`), in the order the attempts started.

A task's log is ``instances/ID/logs/TASK.log`` (its compensation's is
``TASK.compensate.log``). Lines written before attempts were marked belong to no attempt.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from workflow_cli.engine.attempt import ATTEMPT_MARKER
from workflow_cli.errors import NotFoundError
from workflow_cli.store.files import open_binary, read_text
from workflow_cli.store.instances import load_definition, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.spans import build_timeline
from workflow_cli.store.workspace import Workspace

COMPENSATION_SUFFIX = ".compensate"
_MARKER_RE = re.compile(re.escape(ATTEMPT_MARKER) + r"(\d+) ===$")
# What counts as a failed attempt for --failed.
FAILED_OUTCOMES = frozenset({"failed", "retried"})


@dataclass
class LogSection:
    """The lines one attempt of one task wrote to its log."""

    task: str  # the task id; a compensation's log as TASK.compensate
    attempt: int | None  # None: lines from before attempts were marked
    lines: list[str] = field(default_factory=list)
    outcome: str | None = None  # how the attempt ended (store.spans OUTCOMES), when known
    start: datetime | None = None


def log_path(workspace: Workspace, instance_id: str, name: str) -> Path:
    """The log file of `name` (a task id, or TASK.compensate)."""
    return workspace.instance_dir(instance_id) / "logs" / f"{name}.log"


def split_attempts(text: str, name: str) -> list[LogSection]:
    """The sections of one log's text, one per attempt marker."""
    sections = [LogSection(name, None)]
    for line in text.splitlines():
        match = _MARKER_RE.match(line)
        if match:
            sections.append(LogSection(name, int(match.group(1))))
        else:
            sections[-1].lines.append(line)
    return [s for s in sections if s.attempt is not None or s.lines]


def attempt_of_marker(line: str) -> int | None:
    """The attempt a log line marks the start of, or None for any other line."""
    match = _MARKER_RE.match(line.rstrip("\n"))
    return int(match.group(1)) if match else None


def log_names(workspace: Workspace, instance_id: str, task: str | None = None) -> list[str]:
    """The logs to read: `task`'s (and its compensation's), or every task's in the
    definition's order. An unknown task is a NotFoundError naming the tasks there are."""
    tasks = list(load_definition(workspace, instance_id).get("tasks") or {})
    if task is not None:
        if task not in tasks:
            from difflib import get_close_matches

            near = get_close_matches(task, tasks, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f" (tasks: {', '.join(tasks)})"
            raise NotFoundError(f"instance {instance_id} has no task '{task}'{hint}")
        tasks = [task]
    return [name for t in tasks for name in (t, t + COMPENSATION_SUFFIX)]


def read_logs(
    workspace: Workspace,
    instance_id: str,
    clock: Clock,
    *,
    task: str | None = None,
    attempt: int | None = None,
    failed: bool = False,
) -> list[LogSection]:
    """The sections of the logs of `task` (or of every task), in the order their attempts
    started; only attempt number `attempt`, or only attempts that failed, when asked."""
    journal = open_journal(workspace, instance_id, clock)
    try:
        spans = build_timeline(journal.read_new()).spans
    finally:
        journal.close()
    known = {(s.task, s.attempt): s for s in spans}
    sections: list[LogSection] = []
    for name in log_names(workspace, instance_id, task):
        try:
            text = read_text(log_path(workspace, instance_id, name), errors="replace")
        except FileNotFoundError:
            continue
        for section in split_attempts(text, name):
            span = (
                None
                if name.endswith(COMPENSATION_SUFFIX)
                else known.get((name, section.attempt or 0))
            )
            if span is not None:
                section.outcome, section.start = span.outcome, span.start
            sections.append(section)
    if attempt is not None:
        sections = [s for s in sections if s.attempt == attempt]
    if failed:
        sections = [s for s in sections if s.outcome in FAILED_OUTCOMES]
    order = {name: i for i, name in enumerate(log_names(workspace, instance_id, task))}
    sections.sort(
        key=lambda s: (
            s.start is None,
            s.start.timestamp() if s.start else 0.0,
            order.get(s.task, 0),
            s.attempt or 0,
        )
    )
    return sections


def read_new_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """The whole lines written to `path` after byte `offset`, and the offset after them
    (a line still being written waits for its end)."""
    try:
        with open_binary(path) as handle:
            if os.fstat(handle.fileno()).st_size <= offset:
                return [], offset
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", errors="replace")
    return text.splitlines(), offset + end
