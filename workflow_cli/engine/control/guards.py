"""What every control operation shares: who may change an instance now, and the
checkpoint a person or a command takes by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workflow_cli.errors import LockHeldError, StateError
from workflow_cli.store import events as ev
from workflow_cli.store.checkpoints import write_checkpoint
from workflow_cli.store.instances import append_events, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.runlock import RunLock, runner_alive
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


@contextmanager
def no_runner(workspace: Workspace, instance_id: str, doing: str) -> Iterator[None]:
    """Hold the instance's run lock for an operation that changes tasks; refused (exit 4)
    while a runner executes the instance."""
    lock = RunLock(workspace.instance_dir(instance_id))
    try:
        lock.acquire(instance_id)
    except LockHeldError:
        raise busy(instance_id, doing) from None
    try:
        yield
    finally:
        lock.release()


def refuse_if_running(workspace: Workspace, instance_id: str, doing: str) -> None:
    if runner_alive(workspace.instance_dir(instance_id)):
        raise busy(instance_id, doing)


def busy(instance_id: str, doing: str) -> LockHeldError:
    return LockHeldError(
        f"instance {instance_id} is busy: it is being run (stop it first with "
        f"'workflow_cli stop {instance_id}') or another command is changing it; "
        f"then {doing}"
    )


def live_runner(instance_dir: Path, state: State, instance_id: str, doing: str) -> bool:
    """Whether a runner executes the instance (and so is to be asked). The run lock held
    while the instance is not running means another command is changing it: busy."""
    if not runner_alive(instance_dir):
        return False
    if state["state"] != "running":
        raise busy(instance_id, doing)
    return True


def refuse_cancelled(instance_id: str, state: State) -> None:
    if state["state"] == "cancelled":
        raise StateError(f"instance {instance_id} was cancelled; it cannot be changed")


def take_checkpoint(
    workspace: Workspace, instance_id: str, *, kind: str, label: str | None, clock: Clock
) -> dict[str, Any]:
    """Write a checkpoint of the instance as its journal stands now (a runner may be
    executing it) and note it in the journal; the checkpoint."""
    journal = open_journal(workspace, instance_id, clock)
    written: list[dict[str, Any]] = []

    def decide(state: State) -> list[Record]:
        document = write_checkpoint(workspace, state, kind=kind, label=label, now=clock())
        written.append(document)
        return [ev.checkpoint_created(document["id"], kind, label, document["seq"])]

    append_events(journal, decide)
    return written[0]
