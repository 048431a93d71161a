"""Rollback by hand: put every task back as a checkpoint had it.

`plan_rollback` says what would change (and which re-runs have side effects, which
compensations run, which approvals are undone); `rollback` writes a pre-rollback
checkpoint, runs the compensations of the completed tasks that go back, newest first,
and appends one ``rolled_back`` event. The journal is never rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workflow_cli.definition.model import WorkflowSpec, parse_workflow
from workflow_cli.engine.compensation import (
    CompensationOutcome,
    compensate_without_runner,
    compensation_order,
)
from workflow_cli.engine.control.guards import no_runner, refuse_if_running, take_checkpoint
from workflow_cli.errors import NotFoundError, StateError
from workflow_cli.store import events as ev
from workflow_cli.store.checkpoints import (
    CheckpointInfo,
    check_checkpoint_fits,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restorable_tasks,
)
from workflow_cli.store.instances import append_events, load_definition, load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

# What running a task again does to the world, by action (for rollback and retry plans).
SIDE_EFFECTS = {
    "agent_task": "runs its agent again",
    "file_operation": "does its file operation again",
    "api_call": "sends its HTTP request again",
    "workflow_trigger": "reuses its finished child instance (the child is not run again)",
    "approval_gate": "asks for an approval again",
}


@dataclass
class TaskChange:
    task: str
    now: str
    then: str
    side_effect: str | None = None  # what running it again does, when it goes back


def side_effect(workflow: WorkflowSpec, task_id: str, now: str) -> str | None:
    """What putting back a task that is `now` in that state does again when it reruns."""
    return SIDE_EFFECTS.get(workflow.tasks[task_id].action) if now == "completed" else None


@dataclass
class RollbackPlan:
    instance_id: str
    checkpoint: CheckpointInfo
    changes: list[TaskChange]
    compensations: list[str]  # in the order they will run
    approvals_undone: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance_id,
            "checkpoint": self.checkpoint.as_dict(),
            "changes": [vars(change) for change in self.changes],
            "rerun_with_side_effects": [
                {"task": c.task, "side_effect": c.side_effect}
                for c in self.changes
                if c.side_effect
            ],
            "compensations": self.compensations,
            "approvals_undone": self.approvals_undone,
        }


def plan_rollback(
    workspace: Workspace, instance_id: str, checkpoint: str | None, clock: Clock
) -> RollbackPlan:
    """What rolling back to `checkpoint` (default: the newest usable one before the
    current state, not counting pre-rollback ones) would change."""
    refuse_if_running(workspace, instance_id, "roll it back")
    return _plan_rollback(workspace, instance_id, checkpoint, clock)


def _plan_rollback(
    workspace: Workspace, instance_id: str, checkpoint: str | None, clock: Clock
) -> RollbackPlan:
    state = load_state(open_journal(workspace, instance_id, clock))
    if state["state"] == "cancelled":
        raise StateError(f"instance {instance_id} was cancelled; it cannot be rolled back")
    workflow = parse_workflow(load_definition(workspace, instance_id))
    info = _choose_checkpoint(workspace, instance_id, checkpoint, state)
    document = load_checkpoint(workspace, instance_id, info.id)
    check_checkpoint_fits(document, state["tasks"])
    saved = document["state"]
    restored = restorable_tasks(saved)
    changes = []
    back: list[str] = []
    for task_id, task in state["tasks"].items():
        then = restored[task_id]["state"]
        if task["state"] == then and task.get("attempts") == restored[task_id].get("attempts"):
            continue
        effect = None
        if task["state"] == "completed" and then != "completed":
            back.append(task_id)
            effect = side_effect(workflow, task_id, task["state"])
        changes.append(TaskChange(task_id, task["state"], then, effect))
    kept = {json.dumps(a, sort_keys=True) for a in saved.get("approvals", [])}
    undone = [a for a in state.get("approvals", []) if json.dumps(a, sort_keys=True) not in kept]
    order = compensation_order(workflow, state, back)
    return RollbackPlan(instance_id, info, changes, order, undone)


def _choose_checkpoint(
    workspace: Workspace, instance_id: str, given: str | None, state: State
) -> CheckpointInfo:
    if given is not None:
        return find_checkpoint(workspace, instance_id, given)
    infos = list_checkpoints(workspace, instance_id)
    for info in infos:
        if info.valid and info.kind != "pre-rollback" and (info.seq or 0) < state["seq"]:
            saved = load_checkpoint(workspace, instance_id, info.id)["state"]
            fits = set(saved["tasks"]) == set(state["tasks"])
            if fits and restorable_tasks(saved) != _comparable(state["tasks"]):
                return info
    if not infos:
        raise NotFoundError(f"instance {instance_id} has no checkpoints to roll back to")
    raise StateError(
        f"instance {instance_id} has no usable checkpoint that differs from its current "
        "state; name one with --checkpoint"
    )


def _comparable(tasks: dict[str, Any]) -> dict[str, Any]:
    return restorable_tasks({"tasks": tasks})


@dataclass
class RollbackOutcome:
    plan: RollbackPlan
    pre_rollback: str
    compensations: list[CompensationOutcome]
    state: str


def rollback(
    workspace: Workspace,
    instance_id: str,
    checkpoint: str | None,
    *,
    by: str,
    clock: Clock,
    services: Any = None,
) -> RollbackOutcome:
    """Roll back to a checkpoint: a pre-rollback checkpoint first, then the compensations
    of the completed tasks that go back, newest first, then a ``rolled_back`` event that
    puts every task as the checkpoint had it. The instance is left paused."""
    with no_runner(workspace, instance_id, "roll it back"):
        plan = _plan_rollback(workspace, instance_id, checkpoint, clock)
        saved = load_checkpoint(workspace, instance_id, plan.checkpoint.id)["state"]
        pre = take_checkpoint(
            workspace,
            instance_id,
            kind="pre-rollback",
            label=f"before rollback to {plan.checkpoint.id}",
            clock=clock,
        )
        journal = open_journal(workspace, instance_id, clock)
        workflow = parse_workflow(load_definition(workspace, instance_id))
        state = load_state(journal)
        outcomes = compensate_without_runner(
            workspace, journal, workflow, state, tasks=plan.compensations, services=services
        )
        event = ev.rolled_back(
            plan.checkpoint.id,
            pre["id"],
            by,
            restorable_tasks(saved),
            saved.get("approvals", []),
        )
        state = append_events(journal, lambda _s: [event])
    return RollbackOutcome(plan, pre["id"], outcomes, state["state"])
