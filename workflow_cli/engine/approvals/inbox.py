"""The inbox: every approval gate waiting across the workspace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workflow_cli.engine.approvals.deadlines import DEADLINE
from workflow_cli.engine.approvals.gate import counted
from workflow_cli.engine.timers import parse_time
from workflow_cli.errors import WorkflowCliError
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

# -- the inbox ---------------------------------------------------------------------------


def gate_deadline(state: State, task_id: str) -> str | None:
    due = [
        t["due"]
        for t in state.get("timers", {}).values()
        if t["target"] == task_id and t["kind"] == DEADLINE
    ]
    return min(due, key=parse_time) if due else None


def waiting_gates(
    workspace: Workspace,
    clock: Clock,
    *,
    for_name: str | None = None,
    overdue: bool = False,
    instance_ids: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Every gate waiting across the workspace (or in the instances `instance_ids`
    names), oldest first: instance, task, message, approvers, level, decisions so far,
    waiting since, deadline, overdue."""
    folder = workspace.instances_dir
    if not folder.is_dir():
        return []
    now = clock()
    found: list[dict[str, Any]] = []
    if instance_ids is None:
        paths = [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()]
    else:
        paths = [folder / instance_id for instance_id in instance_ids]
    for path in sorted(paths):
        try:
            journal = open_journal(workspace, path.name, clock)
            try:
                state = load_state(journal)
            finally:
                journal.close()
        except WorkflowCliError:
            continue
        for task_id, task in state["tasks"].items():
            waiting = task.get("waiting_for") or {}
            if task["state"] != "waiting" or "approvers" not in waiting:
                continue
            if for_name is not None and for_name not in waiting["approvers"]:
                continue
            deadline = gate_deadline(state, task_id)
            late = deadline is not None and parse_time(deadline) <= now
            if overdue and not late:
                continue
            decisions = counted(
                [a for a in state.get("approvals", []) if a["task"] == task_id],
                waiting.get("digest"),
            )
            found.append(
                {
                    "instance": state.get("id", path.name),
                    "task": task_id,
                    "message": waiting.get("message", ""),
                    "approvers": waiting["approvers"],
                    "required": waiting.get("required", 1),
                    "level": waiting.get("level", 0),
                    "decisions": decisions,
                    "waiting_since": waiting.get("since"),
                    "level_since": waiting.get("level_since"),
                    "deadline": deadline,
                    "overdue": late,
                    "requester": state.get("requester"),
                }
            )
    found.sort(key=lambda g: g["waiting_since"] or "")
    return found
