"""Result caching: a completed task's output kept under a key and reused by a later run.

A task with ``cache: true`` is keyed by its action, agent and rendered parameters; with
``cache: {key: EXPR}`` by the expression's value instead. Either way the digests of the
workspace files it names in ``cache.files`` are part of the key, so a changed input
file misses. A hit completes the task without running it and records where the output
came from; ``ttl_seconds`` bounds an entry's age. Only completed outputs are stored (as
written to the journal: a run's secrets masked), each entry a file
``cache/KEY.json`` written atomically. ``run --no-cache`` neither reads nor writes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workflow_cli.definition.expressions import render_value
from workflow_cli.definition.model import TaskSpec
from workflow_cli.engine.actions.base import ActionFailed
from workflow_cli.engine.paths import read_file
from workflow_cli.errors import ExpressionError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.files import read_bytes, write_json_atomic
from workflow_cli.store.workspace import Workspace

CACHE_FOLDER = "cache"
# The largest file whose digest goes into a key.
MAX_KEYED_FILE = 1024 * 1024 * 1024


@readonly_dataclass
class CacheEntry:
    """A stored output: its key, where it came from and when."""

    key: str
    output: Any
    instance: str
    task: str
    created_at: str

    def age(self, now: datetime) -> float:
        return (now - datetime.fromisoformat(self.created_at)).total_seconds()

    def origin(self) -> dict[str, Any]:
        """What a task completed from this entry records about it."""
        return {
            "key": self.key,
            "instance": self.instance,
            "task": self.task,
            "created_at": self.created_at,
        }


def cache_key(
    workspace: Workspace, spec: TaskSpec, parameters: Mapping[str, Any], context: Any
) -> str:
    """The key of a task's output for these (rendered) parameters; ActionFailed when a
    key expression or a named file cannot be read."""
    assert spec.cache is not None
    if spec.cache.key is None:
        basis: dict[str, Any] = {
            "action": spec.action,
            "agent": spec.agent_id,
            "parameters": parameters,
        }
    else:
        try:
            basis = {"key": render_value(spec.cache.key, context)}
        except ExpressionError as exc:
            raise ActionFailed(f"cache key: {exc.message}", kind="expression") from exc
    basis["files"] = {
        name: hashlib.sha256(read_file(workspace, name, MAX_KEYED_FILE)).hexdigest()
        for name in spec.cache.files
    }
    text = json.dumps(basis, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _path(workspace: Workspace, key: str) -> Any:
    return workspace.root / CACHE_FOLDER / f"{key}.json"


def lookup(
    workspace: Workspace, key: str, *, now: datetime, ttl: float | None
) -> CacheEntry | None:
    """The entry stored under `key`, if there is a whole one young enough."""
    entry = _read(_path(workspace, key))
    if entry is None or entry.key != key:
        return None
    if ttl is not None and entry.age(now) > ttl:
        return None
    return entry


def store(workspace: Workspace, entry: CacheEntry) -> None:
    """Keep a completed output (atomically; the last write of a key wins)."""
    workspace.private_folder(workspace.root / CACHE_FOLDER)
    document = {
        "key": entry.key,
        "instance": entry.instance,
        "task": entry.task,
        "created_at": entry.created_at,
        "output": entry.output,
    }
    write_json_atomic(_path(workspace, entry.key), document, durable=False, indent=None)


def _read(path: Any) -> CacheEntry | None:
    try:
        value = json.loads(read_bytes(path))
        return CacheEntry(
            str(value["key"]),
            value["output"],
            str(value["instance"]),
            str(value["task"]),
            str(value["created_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or damaged: a miss, overwritten by the next store


def list_entries(workspace: Workspace) -> list[CacheEntry]:
    """Every whole entry, newest first."""
    folder = workspace.root / CACHE_FOLDER
    try:
        names = [e.name for e in os.scandir(folder) if e.name.endswith(".json")]
    except FileNotFoundError:
        return []
    found = [entry for name in names if (entry := _read(folder / name)) is not None]
    return sorted(found, key=lambda e: e.created_at, reverse=True)


def clear(workspace: Workspace, *, before: datetime | None = None) -> list[CacheEntry]:
    """Delete entries (only those made before `before`, when given); them."""
    gone = []
    for entry in list_entries(workspace):
        if before is None or datetime.fromisoformat(entry.created_at) < before:
            _path(workspace, entry.key).unlink(missing_ok=True)
            gone.append(entry)
    return gone
