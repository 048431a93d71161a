"""Creating an instance: what is on disk, and made durable, before the new instance
folder is renamed into place."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import write_definition

from workflow_cli.definition.templates import fill_values, read_template
from workflow_cli.engine.lifecycle import create_from_template
from workflow_cli.store.workspace import Workspace


def now() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def tasks(count: int) -> dict[str, object]:
    found: dict[str, object] = {
        f"t{i}": {"action": "agent_task", "agent_id": "echo", "parameters": {"i": i}}
        for i in range(count)
    }
    return found


@pytest.mark.parametrize("count", [3, 1000])  # 1,000 tasks: a status cache too
def test_create_syncs_its_files_and_folder_before_the_rename(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """The definition and the journal are synced, then the new folder (once), before it
    is renamed into place; then the instances folder. The sealed caches are not synced
    (one lost is rebuilt from the journal)."""
    path = write_definition(workspace, tasks(count))
    template = read_template(path)
    ws = Workspace.at(workspace)
    order: list[tuple[str, str]] = []
    real_fsync, real_fdatasync, real_rename = os.fsync, os.fdatasync, os.rename

    def named(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def fsync(fd: int) -> None:
        order.append(("sync", named(fd)))
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        order.append(("sync", named(fd)))
        real_fdatasync(fd)

    def rename(source: object, target: object) -> None:
        order.append(("rename", str(source)))
        real_rename(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "rename", rename)
    instance_id = create_from_template(ws, template, fill_values(template, {}), now)
    staging = str(ws.instances_dir / f".new-{instance_id}")
    assert order == [
        ("sync", f"{staging}/definition.json"),
        ("sync", f"{staging}/events.jsonl"),
        ("sync", staging),
        ("rename", staging),
        ("sync", str(ws.instances_dir)),
    ]
    folder = ws.instance_dir(instance_id)
    written = {"definition.json", "events.jsonl", "state.json", "logs"}
    if count >= 1000:
        written.add("status.json")
    assert written <= {entry.name for entry in folder.iterdir()}
