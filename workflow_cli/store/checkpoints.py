"""Checkpoints: named snapshots of an instance's state at a position of its journal.

Each is one file, ``checkpoints/ID/NNNN-KIND.json``, written atomically and never
changed; its ``checksum`` (SHA-256 of the rest of the file's content, as canonical
JSON) tells a whole checkpoint from a damaged one. A damaged checkpoint is listed as
such and never loaded.

Kinds: ``auto`` (every N completed tasks), ``milestone`` (after a milestone task),
``manual``, ``error`` (a task failed for good), ``stop`` (a run was stopped),
``pre-rollback`` (the state just before a rollback), ``resource`` (a critical
resource threshold was crossed).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import (
    CheckpointCorruptError,
    NotFoundError,
    UsageError,
    WorkspaceError,
)
from workflow_cli.store.files import fsync_dir, write_json_atomic
from workflow_cli.store.state import IN_FLIGHT_TASK_STATES, State
from workflow_cli.store.workspace import Workspace

CHECKPOINT_KINDS = ("auto", "milestone", "manual", "error", "stop", "pre-rollback", "resource")
FORMAT = 1
_NAME_RE = re.compile(r"^(\d{4,})-([a-z-]+)\.json$")
_FIELDS = ("format", "id", "instance", "kind", "label", "time", "seq", "offset", "state")


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint as listed: what it is, or why it cannot be used."""

    id: str
    path: Path
    kind: str
    label: str | None
    time: str | None
    seq: int | None
    valid: bool
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "time": self.time,
            "seq": self.seq,
            "valid": self.valid,
            "problem": self.problem,
            "file": str(self.path),
        }


def checksum(document: dict[str, Any]) -> str:
    body = {key: document.get(key) for key in _FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def snapshot(state: State) -> dict[str, Any]:
    """What a checkpoint keeps of a state: instance state, tasks (with their outputs),
    approvals, children and parameter overrides."""
    keep = ("id", "state", "reason", "tasks", "approvals", "children", "overrides", "seq")
    return copy.deepcopy({key: state[key] for key in keep if key in state})


def restorable_tasks(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's task states as they go back into a state: a task that was in flight
    when the checkpoint was taken is pending again, its unfinished attempt not counted."""
    tasks: dict[str, Any] = copy.deepcopy(saved["tasks"])
    for task in tasks.values():
        if task["state"] in IN_FLIGHT_TASK_STATES:
            attempts = max(0, task.get("attempts", 0) - 1)
            task.update(state="pending", finished_at=None, attempts=attempts)
    return tasks


def checkpoint_dir(workspace: Workspace, instance_id: str) -> Path:
    workspace.instance_dir(instance_id)  # checks the id
    return workspace.checkpoints_dir / instance_id


def write_checkpoint(
    workspace: Workspace,
    state: State,
    *,
    kind: str,
    label: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Write a checkpoint of `state` (folded up to ``state['seq']`` / ``state['offset']``)
    and return it. The caller holds the instance's journal lock, which makes the next
    number unique."""
    if kind not in CHECKPOINT_KINDS:
        raise UsageError(f"unknown checkpoint kind '{kind}'")
    folder = checkpoint_dir(workspace, state["id"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(f"cannot create {folder}: {exc}") from exc
    number = max((_number(p.name) for p in _files(folder)), default=0) + 1
    document: dict[str, Any] = {
        "format": FORMAT,
        "id": f"{number:04d}-{kind}",
        "instance": state["id"],
        "kind": kind,
        "label": label,
        "time": now.isoformat(timespec="milliseconds"),
        "seq": state["seq"],
        "offset": state["offset"],
        "state": snapshot(state),
    }
    document["checksum"] = checksum(document)
    path = folder / f"{document['id']}.json"
    write_json_atomic(path, document, indent=None)
    return document


def _files(folder: Path) -> list[Path]:
    try:
        return [folder / e.name for e in os.scandir(folder) if _NAME_RE.match(e.name)]
    except FileNotFoundError:
        return []


def _number(name: str) -> int:
    match = _NAME_RE.match(name)
    return int(match.group(1)) if match else 0


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's content, checked whole; CheckpointCorruptError if it is not."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFoundError(f"no checkpoint file {path}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointCorruptError(f"checkpoint {path.name} cannot be read: {exc}") from exc
    if not isinstance(document, dict) or not all(key in document for key in _FIELDS):
        raise CheckpointCorruptError(f"checkpoint {path.name} is incomplete")
    if document.get("checksum") != checksum(document):
        raise CheckpointCorruptError(f"checkpoint {path.name} does not match its checksum")
    saved = document["state"]
    if not isinstance(saved, dict) or not isinstance(saved.get("tasks"), dict):
        raise CheckpointCorruptError(f"checkpoint {path.name} holds no task states")
    return document


def list_checkpoints(workspace: Workspace, instance_id: str) -> list[CheckpointInfo]:
    """Every checkpoint of an instance, newest first, damaged ones included (marked)."""
    infos = []
    for path in _files(checkpoint_dir(workspace, instance_id)):
        match = _NAME_RE.match(path.name)
        assert match is not None
        try:
            document = read_checkpoint(path)
        except (CheckpointCorruptError, NotFoundError) as exc:
            kind = match.group(2)
            damaged = CheckpointInfo(path.stem, path, kind, None, None, None, False, exc.message)
            infos.append(damaged)
            continue
        infos.append(
            CheckpointInfo(
                document["id"],
                path,
                document["kind"],
                document["label"],
                document["time"],
                document["seq"],
                True,
            )
        )
    infos.sort(key=lambda info: _number(info.path.name), reverse=True)
    return infos


def find_checkpoint(workspace: Workspace, instance_id: str, given: str) -> CheckpointInfo:
    """The checkpoint that `given` names: its id, its number, or a unique prefix."""
    infos = list_checkpoints(workspace, instance_id)
    for info in infos:
        if info.id == given:
            return info
    # A number names the checkpoint of that number: ASCII digits of a sane length only
    # ("²" is a digit to str.isdigit, and int() refuses thousands of digits).
    if given.isascii() and given.isdigit() and len(given) <= 18:
        for info in infos:
            if _number(info.path.name) == int(given):
                return info
    matches = [info for info in infos if info.id.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(info.id for info in infos[:5]) or "none yet"
        raise NotFoundError(f"instance {instance_id} has no checkpoint '{given}' (newest: {known})")
    raise UsageError(f"'{given}' names {len(matches)} checkpoints; give more of the id")


def load_checkpoint(workspace: Workspace, instance_id: str, given: str) -> dict[str, Any]:
    """A checkpoint's checked content; a damaged one raises CheckpointCorruptError."""
    info = find_checkpoint(workspace, instance_id, given)
    if not info.valid:
        raise CheckpointCorruptError(
            f"checkpoint {info.id} of {instance_id} is damaged and cannot be used: {info.problem}"
        )
    return read_checkpoint(info.path)


def delete_checkpoints(infos: list[CheckpointInfo]) -> int:
    """Delete these checkpoint files; how many went."""
    deleted = 0
    folders = set()
    for info in infos:
        try:
            info.path.unlink()
        except FileNotFoundError:
            continue
        deleted += 1
        folders.add(info.path.parent)
    for folder in folders:
        fsync_dir(folder)
    return deleted
