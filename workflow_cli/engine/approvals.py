"""Approval decisions: a person approves or rejects a waiting approval gate.

The decision is appended to the journal under its lock; a live runner picks it up at
once, otherwise ``resume`` does. Only a listed approver may decide, once per gate.
"""

from __future__ import annotations

from workflow_cli.errors import NotFoundError, StateError, UsageError
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


def record_decision(
    workspace: Workspace,
    instance_id: str,
    task_id: str | None,
    *,
    decision: str,
    by: str,
    comment: str | None,
    clock: Clock,
) -> tuple[str, State]:
    """Record an approval or rejection for a waiting approval gate; the gate's id and the
    state after it. With no `task_id`, the instance must have exactly one waiting gate."""
    if decision not in ("approved", "rejected"):
        raise UsageError(f"unknown decision '{decision}'")
    if not by.strip():
        raise UsageError("--as needs a name")
    journal = open_journal(workspace, instance_id, clock)
    chosen: list[str] = []

    def decide(state: State) -> list[Record]:
        waiting = [t for t, s in state["tasks"].items() if s["state"] == "waiting"]
        if task_id is None:
            if not waiting:
                raise StateError(f"instance {instance_id} has no task waiting for approval")
            if len(waiting) > 1:
                raise UsageError(
                    f"instance {instance_id} has {len(waiting)} tasks waiting "
                    f"({', '.join(waiting)}); name one"
                )
            target = waiting[0]
        else:
            if task_id not in state["tasks"]:
                raise NotFoundError(f"instance {instance_id} has no task '{task_id}'")
            if task_id not in waiting:
                raise StateError(
                    f"task '{task_id}' is {state['tasks'][task_id]['state']}, "
                    "not waiting for approval"
                )
            target = task_id
        earlier = [a for a in state.get("approvals", []) if a["task"] == target]
        if earlier:
            raise StateError(
                f"task '{target}' was already {earlier[-1]['decision']} by "
                f"{earlier[-1]['by']}; the decision takes effect when the run goes on"
            )
        approvers = (state["tasks"][target].get("waiting_for") or {}).get("approvers") or []
        if by not in approvers:
            raise UsageError(
                f"'{by}' may not decide '{target}' (approvers: {', '.join(approvers)})"
            )
        chosen.append(target)
        return [ev.approval_recorded(target, decision, by, comment)]

    state = append_events(journal, decide)
    return chosen[0], state
