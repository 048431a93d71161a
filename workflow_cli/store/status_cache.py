"""The status cache of a large instance: ``status.json``, what ``status`` shows of it.

``state.json`` of a 100,000-task instance is tens of megabytes, and reading it (its
checksum, then JSON) takes most of a second. Beside it, for an instance of at least
`MIN_TASKS` tasks, the state cache keeps ``status.json``: the instance's fields as
``status`` shows them, how many tasks are in each state, and the first `KEPT_TASKS`
tasks not completed or skipped, in definition order. It stands for the same journal
bytes as ``state.json`` (their digest and size) and carries its own checksum, so it
is used only when it is whole and the journal has not grown since it was written;
otherwise the reader folds the state as always.

While a run goes on, the runner writes it again a second or more after the journal
grew (at most 2.5% of the run's time goes to it), between the rarer writes of the whole
state; `status` of a running instance shows the runner's latest brief, and how old it
is, rather than reading the whole state.

Checking the digest reads and hashes the whole journal (30 MB at 100,000 tasks), so the
cache also notes the journal file as it was when the cache was written (its inode,
size and modification time, as git's index does): when the file shows the same, it has
not been written since and the digest is not computed again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

from workflow_cli.errors import WorkspaceError
from workflow_cli.store.files import open_binary, seal_tail, unseal
from workflow_cli.store.journal import Journal
from workflow_cli.store.state import DONE_TASK_STATES, State, TaskRecord, items_done

STATUS_FILE = "status.json"
MIN_TASKS = 1000  # smaller instances have no status cache: their state.json is small
KEPT_TASKS = 200  # tasks not completed or skipped that the cache lists
LISTED_STATES = frozenset({"completed", "skipped"})  # states listed only as counts
# How old a running instance's brief may be and still be shown by `status` (the runner
# writes it at least every second, and at most 5% of the run's time goes to it).
BEHIND_SECONDS = 60.0


class StatusBrief(TypedDict):
    """What ``status`` shows of an instance without listing every task."""

    view: dict[str, Any]  # the status view without "tasks"
    counts: dict[str, int]  # tasks in each state
    on_dask: bool  # some task ran on a Dask worker
    tasks: dict[str, TaskRecord]  # the first tasks not completed or skipped
    unlisted: int  # tasks not completed or skipped beyond those
    behind: NotRequired[float]  # a running instance's: seconds since the runner wrote it


def status_header(state: State) -> dict[str, Any]:
    """The status view of an instance without its tasks (see `api.status_view`)."""
    tasks = state["tasks"].values()
    done = completed = 0
    for task in tasks:
        name = task["state"]
        if name == "completed":
            completed += 1
            done += 1
        elif name in DONE_TASK_STATES:
            done += 1
    return {
        "id": state.get("id", ""),
        "template": state.get("template"),
        "state": state["state"],
        "reason": state.get("reason"),
        "progress": {"done": done, "total": len(state["tasks"]), "completed": completed},
        "created_at": state.get("created_at"),
        "updated_at": state.get("updated_at"),
        "finished_at": state.get("finished_at"),
        "parent": state.get("parent"),
        "children": state.get("children", {}),
        "params": state.get("params", {}),
        "approvals": state.get("approvals", []),
        "groups": state.get("groups", {}),
        "gate_events": state.get("gate_events", []),
        "timers": [dict(timer) for timer in state.get("timers", {}).values()],
        "signals": [dict(signal) for signal in state.get("signals", {}).values()],
        "requester": state.get("requester"),
    }


def task_view(task: TaskRecord) -> TaskRecord:
    """A task as status shows it: a for_each task's items as counts ("done" of "total"),
    not item by item."""
    if "items" not in task:
        return task
    items = task["items"]
    counts = {
        "total": items["total"],
        "done": items_done(items),
        "completed": items["completed"],
        "failed": items["failed"],
        "skipped": items["skipped"],
    }
    return {**task, "items": counts}  # type: ignore[typeddict-item]


def brief_of(view: dict[str, Any], tasks: dict[str, TaskRecord], limit: int) -> StatusBrief:
    """The brief of a status view's tasks: counts, and the first `limit` tasks not
    completed or skipped."""
    counts: dict[str, int] = {}
    on_dask = False
    listed: dict[str, TaskRecord] = {}
    unlisted = 0
    for task_id, task in tasks.items():
        name = task["state"]
        counts[name] = counts.get(name, 0) + 1
        if not on_dask and task.get("worker"):
            on_dask = True
        if name in LISTED_STATES:
            continue
        if len(listed) < limit:
            listed[task_id] = task_view(task)
        else:
            unlisted += 1
    header = {key: value for key, value in view.items() if key != "tasks"}
    return {
        "view": header,
        "counts": counts,
        "on_dask": on_dask,
        "tasks": listed,
        "unlisted": unlisted,
    }


def file_mark(journal: Journal) -> list[int] | None:
    """The journal file's inode, size and modification time, when its size is what the
    journal has read (nothing was appended since); None otherwise."""
    try:
        found = os.stat(journal.path)
    except OSError:
        return None
    if found.st_size != journal.offset:
        return None
    return [found.st_ino, found.st_size, found.st_mtime_ns]


def cache_bytes(state: State, digest: str, mark: list[int] | None) -> bytes | None:
    """``status.json`` for `state` (the fold of the journal bytes with `digest`; `mark`
    is `file_mark` of the journal then), or None for an instance too small to need
    one."""
    if len(state["tasks"]) < MIN_TASKS:
        return None
    brief = brief_of(status_header(state), state["tasks"], KEPT_TASKS)
    body = {
        "offset": state["offset"],
        "seq": state["seq"],
        "journal": digest,
        "file": mark,
        **brief,
    }
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")[:-1]
    return raw + seal_tail(raw)


def read_status_cache(
    journal: Journal, running: Callable[[], bool] | None = None
) -> StatusBrief | None:
    """The brief ``status.json`` holds, when it is whole and stands for the journal as it
    is now (the same bytes, nothing appended since); None otherwise. With `running` (is
    a runner executing the instance?), a brief the runner wrote at most `BEHIND_SECONDS`
    ago for a beginning of the journal is taken too, while `running()` says so: the run
    goes on, and the brief says how far behind it is (``behind``, seconds)."""
    path = journal.path.with_name(STATUS_FILE)
    try:
        with open_binary(path) as handle:
            age = time.time() - os.fstat(handle.fileno()).st_mtime
            data = handle.read()
        found = journal.path.stat()
    except (OSError, WorkspaceError):  # a folder or a pipe in its place: no brief
        return None
    value = unseal(data)
    if value is None or not _well_formed(value):
        return None
    behind = value["offset"] != found.st_size
    if behind and not (
        running is not None
        and value["offset"] < found.st_size
        and 0 <= age <= BEHIND_SECONDS
        and running()
    ):
        return None
    unchanged = value.get("file") == [found.st_ino, found.st_size, found.st_mtime_ns]
    if not unchanged and not journal.skip_to(value["offset"], value["seq"], value["journal"]):
        return None
    brief: StatusBrief = {
        "view": value["view"],
        "counts": value["counts"],
        "on_dask": value["on_dask"],
        "tasks": value["tasks"],
        "unlisted": value["unlisted"],
    }
    if behind:
        brief["behind"] = round(age, 1)
    return brief


_FIELDS: tuple[tuple[str, type], ...] = (
    ("offset", int),
    ("seq", int),
    ("journal", str),
    ("view", dict),
    ("counts", dict),
    ("on_dask", bool),
    ("tasks", dict),
    ("unlisted", int),
)


def _well_formed(value: dict[str, Any]) -> bool:
    return all(isinstance(value.get(key), kind) for key, kind in _FIELDS)
