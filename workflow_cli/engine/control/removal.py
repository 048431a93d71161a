"""Removing instances: one by hand (`delete`), or the old ones at once (`prune`).

An instance goes with everything kept about it: its folder (journal, state, logs,
resource samples), its checkpoints and its health record. One whose runner is alive is
never removed: `delete` refuses it (exit 4), `prune` passes it over. The run lock is
held while the instance goes, so no runner can start meanwhile; the folder is first
renamed out of sight, so the instance disappears whole even if the removal is cut short.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from workflow_cli.engine.control.guards import busy
from workflow_cli.errors import LockHeldError, WorkflowCliError
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.runlock import RunLock, runner_alive
from workflow_cli.store.state import FINAL_INSTANCE_STATES
from workflow_cli.store.workspace import Workspace

# What prune removes when no --state is given: instances that have ended.
PRUNED_BY_DEFAULT = tuple(sorted(FINAL_INSTANCE_STATES))


@dataclass
class Removal:
    """One instance removed (or that would be, in a dry run)."""

    instance_id: str
    state: str
    ended_at: str | None  # when it finished, or its last event
    paths: list[str] = field(default_factory=list)  # what goes, relative to the workspace
    size: int = 0  # bytes freed

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.instance_id,
            "state": self.state,
            "ended_at": self.ended_at,
            "paths": self.paths,
            "bytes": self.size,
        }


@dataclass
class PrunePlan:
    removals: list[Removal]
    passed_over: list[str]  # matched, but a runner is alive


def _owned_paths(workspace: Workspace, instance_id: str) -> list[Path]:
    return [
        workspace.instance_dir(instance_id),
        workspace.checkpoints_dir / instance_id,
        workspace.monitoring_dir / "instances" / f"{instance_id}.json",
    ]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def describe_removal(workspace: Workspace, instance_id: str, clock: Clock) -> Removal:
    """What removing `instance_id` would remove."""
    try:
        state = load_state(open_journal(workspace, instance_id, clock))
        name, ended = state["state"], state.get("finished_at") or state.get("updated_at")
    except WorkflowCliError:
        name, ended = "unreadable", None
    removal = Removal(instance_id, name, ended)
    for path in _owned_paths(workspace, instance_id):
        if path.exists():
            removal.paths.append(str(path.relative_to(workspace.root)))
            removal.size += _size(path)
    return removal


def delete_instance(workspace: Workspace, instance_id: str, clock: Clock) -> Removal:
    """Remove one instance and what is kept about it; LockHeldError (exit 4) while its
    runner is alive."""
    removal = describe_removal(workspace, instance_id, clock)
    folder = workspace.instance_dir(instance_id)
    lock = RunLock(folder)
    try:
        lock.acquire(instance_id)
    except LockHeldError:
        raise busy(instance_id, f"delete it with 'workflow_cli delete {instance_id}'") from None
    try:
        hidden = workspace.instances_dir / f".deleted-{instance_id}-{secrets.token_hex(3)}"
        os.rename(folder, hidden)  # gone from every listing at once
        for path in _owned_paths(workspace, instance_id)[1:]:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        shutil.rmtree(hidden)
    finally:
        lock.release()
    return removal


def plan_prune(
    workspace: Workspace, clock: Clock, *, before: datetime, states: Collection[str]
) -> PrunePlan:
    """The instances in one of `states` that ended (or last changed) before `before`."""
    from workflow_cli.store.listing import instance_summaries

    plan = PrunePlan([], [])
    for summary in instance_summaries(workspace, clock):
        if summary.state not in states:
            continue
        moment = summary.finished_at or summary.updated_at
        try:
            ended = datetime.fromisoformat(moment) if moment else None
        except ValueError:
            ended = None
        if ended is None or ended >= before:
            continue
        if runner_alive(workspace.instance_dir(summary.id)):
            plan.passed_over.append(summary.id)
            continue
        plan.removals.append(describe_removal(workspace, summary.id, clock))
    return plan


def prune(workspace: Workspace, clock: Clock, plan: PrunePlan) -> PrunePlan:
    """Carry out `plan`: each instance is removed unless a runner took it up meanwhile."""
    done = PrunePlan([], list(plan.passed_over))
    for removal in plan.removals:
        try:
            done.removals.append(delete_instance(workspace, removal.instance_id, clock))
        except LockHeldError:
            done.passed_over.append(removal.instance_id)
    return done
