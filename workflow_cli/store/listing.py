"""Every instance of a workspace in brief, read fast: what ``list`` (and completion) show.

A summary comes from the instance's state cache (``state.json``) when the cache is whole
and its journal has not grown since; else from `load_state`, which folds the journal.
Each summary is then kept in ``instances/.summaries.json`` with the identity of the
journal it was read from (inode, size, modification and change times): the next listing
reads only the instances whose journal changed since, and a ``stat`` for each of the
others. The file is a cache: deleted or damaged, it is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import WorkflowCliError, WorkspaceError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.files import open_binary, read_bytes, write_atomic
from workflow_cli.store.instances import (
    JOURNAL_FILE,
    STATE_FILE,
    load_state,
    open_journal,
    read_state_cache,
)
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State, completed, progress
from workflow_cli.store.workspace import Workspace


@readonly_dataclass
class InstanceSummary:
    """One instance in brief."""

    id: str
    template: str | None
    state: str
    completed: int  # tasks completed (not failed, skipped or cancelled)
    done: int  # tasks finished: completed, failed, skipped or cancelled
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
        completed=completed(state),
        done=progress(state)[0],
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
        with open_binary(os.path.join(folder, JOURNAL_FILE)) as handle:
            data = handle.read(state["offset"] + 1)
    except (OSError, WorkspaceError):  # the journal's own reading says what is wrong
        return None
    if len(data) != state["offset"] or hashlib.sha256(data).hexdigest() != digest:
        return None
    return state


INDEX_FILE = ".summaries.json"  # in the instances folder
_FIELDS = (
    "id",
    "template",
    "state",
    "completed",
    "done",
    "total",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
)


# The kept summaries as this process last read or wrote them, by index path: the file's
# identity, then each instance's journal key and its summary. A long-lived process (the
# server) lists again for a stat of each journal, without reading the file again.
_Kept = dict[str, tuple[list[int], InstanceSummary]]
_MEMO: dict[str, tuple[tuple[int, ...] | None, _Kept]] = {}


def instance_summaries(workspace: Workspace, clock: Clock) -> list[InstanceSummary]:
    """A summary of every instance (in id order); one that cannot be read is listed with
    its error rather than stopping the listing."""
    base = str(workspace.instances_dir)
    index_path = os.path.join(base, INDEX_FILE)
    kept = _kept(index_path)
    fresh: _Kept = {}
    summaries = []
    changed = damaged = False
    for instance_id in workspace.instance_ids():
        folder = f"{base}/{instance_id}"
        try:
            info = os.stat(f"{folder}/{JOURNAL_FILE}")
            key = [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
        except OSError:
            key = None
        entry = kept.get(instance_id)
        if entry is not None and entry[0] == key:
            summary = entry[1]
        else:
            changed = True
            state = _cached_state(folder)
            if state is None:
                try:
                    state = load_state(open_journal(workspace, instance_id, clock))
                except WorkflowCliError as exc:
                    summaries.append(_unreadable(instance_id, exc.message, int(exc.exit_code)))
                    damaged = True
                    continue
            summary = summarize(state)
        if key is not None:
            # The journal was looked at before it was read, and it only grows: the summary
            # is at least as new as the key it is kept under.
            fresh[instance_id] = (key, summary)
        summaries.append(summary)
    # A listing that meets a damaged instance writes nothing: what it finds is reported,
    # and the workspace is left as it was for whoever repairs it.
    if (changed or len(fresh) != len(kept)) and not damaged:
        _write_index(index_path, fresh)
    return summaries


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _kept(path: str) -> _Kept:
    """The kept summaries: from this process's memory while the file is the one it read
    or wrote, else read from the file (entries that are not whole are left out)."""
    identity = _identity(path)
    memo = _MEMO.get(path)
    if memo is not None and identity is not None and memo[0] == identity:
        return memo[1]
    kept: _Kept = {}
    try:
        value = json.loads(read_bytes(path))
    except (OSError, ValueError, WorkspaceError):  # an index that cannot be read is rebuilt
        value = None
    entries = value.get("instances") if isinstance(value, dict) else None
    for name, entry in (entries if isinstance(entries, dict) else {}).items():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], list):
            summary = _from_entry(entry[1])
            if summary is not None:
                kept[name] = (entry[0], summary)
    _MEMO[path] = (identity, kept)
    return kept


def _from_entry(fields: Any) -> InstanceSummary | None:
    """The summary kept in an index entry, or None for one that is not whole."""
    if not isinstance(fields, list) or len(fields) != len(_FIELDS):
        return None
    values = dict(zip(_FIELDS, fields, strict=True))
    if not isinstance(values["id"], str) or not isinstance(values["state"], str):
        return None
    if not all(type(values[name]) is int for name in ("completed", "done", "total")):
        return None
    texts = ("template", "created_at", "started_at", "finished_at", "updated_at")
    if not all(values[name] is None or isinstance(values[name], str) for name in texts):
        return None
    return InstanceSummary(**values)


def _write_index(path: str, kept: _Kept) -> None:
    """Keep the summaries for the next listing; a listing that cannot write them (a
    read-only workspace, a full disk) is not the worse for it."""
    index = {
        name: [key, [getattr(summary, field) for field in _FIELDS]]
        for name, (key, summary) in kept.items()
    }
    data = json.dumps({"instances": index}, separators=(",", ":")).encode()
    with contextlib.suppress(OSError, WorkflowCliError):
        write_atomic(Path(path), data, durable=False)
    _MEMO[path] = (_identity(path), kept)


def _unreadable(instance_id: str, why: str, code: int) -> InstanceSummary:
    return InstanceSummary(
        instance_id, None, "unreadable", 0, 0, 0, None, None, None, None, error=why, error_code=code
    )
