"""Checkpoints: named snapshots of an instance's state at a position of its journal.

Each is one file, ``checkpoints/ID/NNNN-KIND.json``, written atomically and never
changed; its ``checksum`` (SHA-256 of the rest of the file's content, as canonical
JSON) tells a whole checkpoint from a damaged one. A damaged checkpoint is listed as
such and never loaded.

Kinds: ``start`` (a run began), ``auto`` (every N completed tasks, or after a while),
``milestone`` (after a milestone task), ``manual``, ``error`` (a task failed for good),
``stop`` (a run was stopped), ``pre-rollback`` (the state just before a rollback),
``resource`` (a critical resource threshold was crossed).

The frequent kinds (``start`` and ``auto``) are light (format 2): instead of a copy of
the state they hold the digest of the journal bytes up to their offset, and their state
is the fold of those bytes, checked against the digest when the checkpoint is loaded.
Writing one costs the same however large the instance, so checkpoints can be taken by
default; the others (format 1) keep a whole copy of the state a person can read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import (
    CheckpointCorruptError,
    NotFoundError,
    UsageError,
    WorkspaceError,
)
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.files import fsync_dir, open_binary, read_bytes, write_json_atomic
from workflow_cli.store.instances import JOURNAL_FILE
from workflow_cli.store.journal import decode_line
from workflow_cli.store.state import IN_FLIGHT_TASK_STATES, TASK_STATES, State, fold
from workflow_cli.store.workspace import Workspace

CHECKPOINT_KINDS = (
    "start",
    "auto",
    "milestone",
    "manual",
    "error",
    "stop",
    "pre-rollback",
    "resource",
)
LIGHT_KINDS = frozenset({"start", "auto"})
FORMAT = 1  # a copy of the state
LIGHT_FORMAT = 2  # the digest of the journal up to the checkpoint
# Patterns are compiled when first used (and kept in re's cache), not on import.
_NAME_RE = r"^(\d{4,})-([a-z-]+)\.json$"
_FIELDS = ("format", "id", "instance", "kind", "label", "time", "seq", "offset", "state")
_LIGHT_FIELDS = (*_FIELDS, "journal")


@readonly_dataclass
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
    fields = _LIGHT_FIELDS if document.get("format") == LIGHT_FORMAT else _FIELDS
    body = {key: document.get(key) for key in fields}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def snapshot(state: State) -> dict[str, Any]:
    """What a checkpoint keeps of a state: instance state, tasks (with their outputs),
    approvals, children and parameter overrides."""
    keep = ("id", "state", "reason", "tasks", "approvals", "children", "overrides", "seq")
    whole: dict[str, Any] = dict(state)
    return copy.deepcopy({key: whole[key] for key in keep if key in whole})


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
    journal_digest: str | None = None,
    number: int | None = None,
) -> dict[str, Any]:
    """Write a checkpoint of `state` (folded up to ``state['seq']`` / ``state['offset']``)
    and return it. The caller holds the instance's journal lock, which makes the next
    number unique. A light kind with `journal_digest` (of the journal up to the offset)
    is written light, and not synced: it stands for journal bytes that are.

    `number` is the caller's count of the next number (a run keeps one: finding the
    largest by listing the folder costs as much as the checkpoints taken, which makes a
    long run's checkpoints quadratic); it is taken when no checkpoint has it already,
    else the folder is listed (and stale temporary files in it removed)."""
    if kind not in CHECKPOINT_KINDS:
        raise UsageError(f"unknown checkpoint kind '{kind}'")
    folder = checkpoint_dir(workspace, state["id"])
    try:
        workspace.private_folder(folder)
    except OSError as exc:
        raise WorkspaceError(f"cannot create {folder}: {exc}") from exc
    if number is None or number < 1 or _taken(folder, number):
        number = max((_number(p.name) for p in _files(folder)), default=0) + 1
        clean = True
    else:
        clean = False  # stale temporary files were looked for when the count was made
    light = kind in LIGHT_KINDS and journal_digest is not None
    document: dict[str, Any] = {
        "format": LIGHT_FORMAT if light else FORMAT,
        "id": f"{number:04d}-{kind}",
        "instance": state["id"],
        "kind": kind,
        "label": label,
        "time": now.isoformat(timespec="milliseconds"),
        "seq": state["seq"],
        "offset": state["offset"],
        "state": None if light else snapshot(state),
    }
    if light:
        document["journal"] = journal_digest
    document["checksum"] = checksum(document)
    path = folder / f"{document['id']}.json"
    write_json_atomic(path, document, indent=None, durable=not light, clean=clean)
    return document


def _taken(folder: Path, number: int) -> bool:
    """Whether a checkpoint numbered `number` exists (one look per kind)."""
    return any(os.path.lexists(folder / f"{number:04d}-{kind}.json") for kind in CHECKPOINT_KINDS)


def _files(folder: Path) -> list[Path]:
    try:
        return [folder / e.name for e in os.scandir(folder) if re.match(_NAME_RE, e.name)]
    except FileNotFoundError:
        return []


def _number(name: str) -> int:
    match = re.match(_NAME_RE, name)
    return int(match.group(1)) if match else 0


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's content, checked whole; CheckpointCorruptError if it is not."""
    try:
        document = json.loads(read_bytes(path))
    except FileNotFoundError:
        raise NotFoundError(f"no checkpoint file {path}") from None
    except WorkspaceError as exc:  # a folder or a named pipe in its place
        raise CheckpointCorruptError(f"checkpoint {path.name}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointCorruptError(f"checkpoint {path.name} cannot be read: {exc}") from exc
    if not isinstance(document, dict) or not all(key in document for key in _FIELDS):
        raise CheckpointCorruptError(f"checkpoint {path.name} is incomplete")
    if document.get("checksum") != checksum(document):
        raise CheckpointCorruptError(f"checkpoint {path.name} does not match its checksum")
    if document["format"] == LIGHT_FORMAT:
        if not isinstance(document.get("journal"), str) or document["state"] is not None:
            raise CheckpointCorruptError(f"checkpoint {path.name} is incomplete")
        return document
    saved = document["state"]
    if not isinstance(saved, dict) or not isinstance(saved.get("tasks"), dict):
        raise CheckpointCorruptError(f"checkpoint {path.name} holds no task states")
    for task_id, task in saved["tasks"].items():
        if not isinstance(task, dict) or task.get("state") not in TASK_STATES:
            raise CheckpointCorruptError(
                f"checkpoint {path.name}: task '{task_id}' has no valid state"
            )
    return document


def check_checkpoint_fits(document: dict[str, Any], tasks: Iterable[str]) -> None:
    """Refuse a checkpoint whose tasks are not exactly the instance's (CheckpointCorruptError):
    one made for another definition, or edited and given a new checksum."""
    saved, expected = set(document["state"]["tasks"]), set(tasks)
    if saved != expected:
        missing = ", ".join(sorted(expected - saved)) or "none"
        unknown = ", ".join(sorted(saved - expected)) or "none"
        raise CheckpointCorruptError(
            f"checkpoint {document['id']} does not fit instance {document['instance']}: "
            f"tasks missing: {missing}; tasks it does not have: {unknown}"
        )


def list_checkpoints(workspace: Workspace, instance_id: str) -> list[CheckpointInfo]:
    """Every checkpoint of an instance, newest first, damaged ones included (marked)."""
    infos = []
    for path in _files(checkpoint_dir(workspace, instance_id)):
        match = re.match(_NAME_RE, path.name)
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
    """A checkpoint's checked content, with its state (a light one's folded from the
    journal); a damaged one raises CheckpointCorruptError."""
    info = find_checkpoint(workspace, instance_id, given)
    if not info.valid:
        raise CheckpointCorruptError(
            f"checkpoint {info.id} of {instance_id} is damaged and cannot be used: {info.problem}"
        )
    document = read_checkpoint(info.path)
    if document["instance"] != instance_id:
        raise CheckpointCorruptError(
            f"checkpoint {info.id} in {instance_id}'s folder was taken of {document['instance']}"
        )
    if document["format"] == LIGHT_FORMAT:
        document["state"] = _state_at(workspace, document)
    return document


def _state_at(workspace: Workspace, document: dict[str, Any]) -> dict[str, Any]:
    """The state a light checkpoint stands for: the fold of the journal bytes it names,
    which must still be the ones it was taken at."""
    path = workspace.instance_dir(document["instance"]) / JOURNAL_FILE
    offset = document["offset"]
    try:
        with open_binary(path) as handle:
            prefix = handle.read(offset)
    except OSError as exc:
        raise CheckpointCorruptError(f"checkpoint {document['id']}: {exc}") from exc
    if len(prefix) != offset or hashlib.sha256(prefix).hexdigest() != document["journal"]:
        raise CheckpointCorruptError(
            f"checkpoint {document['id']} stands for journal bytes that are no longer there"
        )
    lines = prefix.splitlines(keepends=True)
    events = [decode_line(line, f"{path} line {n}") for n, line in enumerate(lines, 1)]
    return snapshot(fold(events))


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
