"""The book of what each schedule handled (``schedules/book.json``), the record of every
firing (``schedules/firings.jsonl``) and the lock ticks take (``schedules/tick.lock``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import LockHeldError
from workflow_cli.store.files import open_regular, read_text, write_json_atomic
from workflow_cli.store.workspace import Workspace

# How long a tick waits for another one to finish before giving up.
LOCK_WAIT_SECONDS = 30.0


def schedules_folder(workspace: Workspace) -> Path:
    return workspace.private_folder(workspace.root / "schedules")


def _book_path(workspace: Workspace) -> Path:
    return workspace.root / "schedules" / "book.json"


def firings_path(workspace: Workspace) -> Path:
    return workspace.root / "schedules" / "firings.jsonl"


def read_book(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """Each schedule's record: what it last handled, its instances still going."""
    path = _book_path(workspace)
    try:
        document = json.loads(read_text(path))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        from workflow_cli.errors import WorkspaceError

        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
    schedules = document.get("schedules") if isinstance(document, dict) else None
    return schedules if isinstance(schedules, dict) else {}


def save_book(workspace: Workspace, book: dict[str, dict[str, Any]]) -> None:
    write_json_atomic(_book_path(workspace), {"version": 1, "schedules": book})


def note(workspace: Workspace, firing: dict[str, Any], now: datetime) -> None:
    """Add one firing to ``schedules/firings.jsonl`` (made durable at once)."""
    line = json.dumps({"time": iso(now), **firing}, ensure_ascii=False) + "\n"
    fd = open_regular(
        firings_path(workspace), os.O_WRONLY | os.O_CREAT | os.O_APPEND, doing="write"
    )
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_firings(workspace: Workspace) -> list[dict[str, Any]]:
    """Every firing recorded, oldest first (a torn last line is left out)."""
    try:
        text = read_text(firings_path(workspace))
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found


@contextlib.contextmanager
def tick_lock(workspace: Workspace, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    fd = open_regular(
        schedules_folder(workspace) / "tick.lock", os.O_RDWR | os.O_CREAT, doing="lock"
    )
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeldError(
                        "another tick is firing schedules in this workspace; try again"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
