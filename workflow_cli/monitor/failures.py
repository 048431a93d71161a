"""Dead letters: the tasks (and items of for_each tasks) that failed for good, after
their retries, in every instance of the workspace that can still go on.

Each is kept in its instance's journal with the parameters its last attempt was given
(``inputs``) and its last error; `dead_letters` gathers them, oldest failure first, each
with the ``retry`` command that runs it again in its instance. A task that was retried,
skipped or rolled back since is no longer one; cancelled instances are left out (they
cannot run again).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


@readonly_dataclass
class DeadLetter:
    instance: str
    template: str | None
    instance_state: str
    task: str
    item: int | None  # the index of a for_each task's item, else None
    attempts: int
    failed_at: str | None
    error: dict[str, Any]
    inputs: Any  # the parameters of its last attempt (None when not known)
    retry: str  # the command that runs it again

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dead_letters(workspace: Workspace, clock: Clock) -> list[DeadLetter]:
    """Every task or item that failed for good, across the workspace, oldest first."""
    found: list[DeadLetter] = []
    for instance_id in workspace.instance_ids():
        state = load_state(open_journal(workspace, instance_id, clock))
        if state["state"] != "cancelled":
            found.extend(instance_dead_letters(state))
    found.sort(key=lambda d: (d.failed_at or "", d.instance, d.task, d.item or 0))
    return found


def instance_dead_letters(state: State) -> list[DeadLetter]:
    """The tasks and items of one instance that failed for good."""
    instance_id = state.get("id", "")
    letters = []

    def letter(task_id: str, index: int | None, failed: Any, at: Any, retry: str) -> DeadLetter:
        """`failed` (a task's or an item's record) as a dead letter."""
        return DeadLetter(
            instance_id,
            state.get("template"),
            state["state"],
            task_id,
            index,
            failed["attempts"],
            at,
            failed.get("error") or {},
            failed.get("inputs"),
            retry,
        )

    for task_id, task in state["tasks"].items():
        retry = f"workflow_cli retry {instance_id} --task {task_id}"
        items = task.get("items")
        if items is not None and items["failed"]:
            for index, item in enumerate(items["records"]):
                if item["state"] == "failed":
                    at = item.get("failed_at")
                    letters.append(letter(task_id, index, item, at, f"{retry} --item {index}"))
        elif task["state"] == "failed" and items is None:
            letters.append(letter(task_id, None, task, task.get("finished_at"), retry))
    return letters
