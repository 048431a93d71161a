"""Every instance of a workspace in brief, read fast: what ``list`` (and completion) show.

A summary comes from the instance's state cache (``state.json``) when the cache is whole
and its journal has not grown since; else from `load_state`, which folds the journal.
Reading 1,000 instances this way costs two small files each.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import WorkflowCliError
from workflow_cli.store.instances import (
    JOURNAL_FILE,
    STATE_FILE,
    load_state,
    open_journal,
    read_state_cache,
)
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State
from workflow_cli.store.workspace import Workspace


@dataclass(frozen=True)
class InstanceSummary:
    """One instance in brief."""

    id: str
    template: str | None
    state: str
    completed: int  # tasks completed (not failed, skipped or cancelled)
    total: int
    created_at: str | None
    started_at: str | None  # the first task's start
    finished_at: str | None
    updated_at: str | None
    error: str | None = None  # the instance could not be read: why
    error_code: int = 0  # and the exit code of that error

    @property
    def duration(self) -> float | None:
        """Seconds from the first task's start to the end (or to the last event, for an
        instance not finished)."""
        end = self.finished_at or (
            self.updated_at if self.state not in FINAL_INSTANCE_STATES else None
        )
        if not self.started_at or not end:
            return None
        try:
            delta = datetime.fromisoformat(end) - datetime.fromisoformat(self.started_at)
        except ValueError:
            return None
        return max(0.0, delta.total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "template": self.template,
            "state": self.state,
            "progress": {"completed": self.completed, "total": self.total},
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "updated_at": self.updated_at,
            "duration": None if self.duration is None else round(self.duration, 3),
            **({"error": self.error} if self.error else {}),
        }


def summarize(state: State) -> InstanceSummary:
    tasks = state["tasks"].values()
    starts = [t["started_at"] for t in tasks if t.get("started_at")]
    return InstanceSummary(
        id=state.get("id") or "",
        template=state.get("template"),
        state=state["state"],
        completed=sum(1 for t in tasks if t["state"] == "completed"),
        total=len(state["tasks"]),
        created_at=state.get("created_at"),
        started_at=min(starts) if starts else None,  # type: ignore[type-var]
        finished_at=state.get("finished_at"),
        updated_at=state.get("updated_at"),
    )


def _cached_state(folder: str) -> State | None:
    """The state cache of the instance in `folder`, when it stands for its whole journal:
    the cache's own checksum holds, the journal is exactly as long as the cache says and
    its bytes are the ones the cache was made from."""
    cached = read_state_cache(Path(folder, STATE_FILE))
    if cached is None:
        return None
    state, digest = cached
    try:
        with open(os.path.join(folder, JOURNAL_FILE), "rb") as handle:
            data = handle.read(state["offset"] + 1)
    except OSError:
        return None
    if len(data) != state["offset"] or hashlib.sha256(data).hexdigest() != digest:
        return None
    return state


def instance_summaries(workspace: Workspace, clock: Clock) -> list[InstanceSummary]:
    """A summary of every instance (in id order); one that cannot be read is listed with
    its error rather than stopping the listing."""
    summaries = []
    base = str(workspace.instances_dir)
    for instance_id in workspace.instance_ids():
        state = _cached_state(os.path.join(base, instance_id))
        if state is None:
            try:
                state = load_state(open_journal(workspace, instance_id, clock))
            except WorkflowCliError as exc:
                summaries.append(_unreadable(instance_id, exc.message, int(exc.exit_code)))
                continue
        summaries.append(summarize(state))
    return summaries


def _unreadable(instance_id: str, why: str, code: int) -> InstanceSummary:
    return InstanceSummary(
        instance_id, None, "unreadable", 0, 0, None, None, None, None, error=why, error_code=code
    )
