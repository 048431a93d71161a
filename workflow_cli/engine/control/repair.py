"""Repairs by hand: retry a task, skip one, or change a task's parameters.

Each is planned first (`plan_retry`, `plan_skip`, `plan_parameters`, shown with
``--dry-run``), then applied under the run lock as journaled events; a plan made
before another change to the same tasks is refused rather than applied to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workflow_cli.definition.loader import loads_json
from workflow_cli.definition.model import parse_workflow
from workflow_cli.engine.control.guards import no_runner, refuse_cancelled, refuse_if_running
from workflow_cli.engine.control.rollback import TaskChange, side_effect
from workflow_cli.errors import NotFoundError, StateError, UsageError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, load_definition, load_state, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import DONE_TASK_STATES, State
from workflow_cli.store.workspace import Workspace


@dataclass
class ResetPlan:
    instance_id: str
    reset: list[TaskChange]
    skip: str | None = None
    # for_each tasks of which only these items go back (the others keep their ends)
    items: dict[str, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance_id,
            "reset": [vars(change) for change in self.reset],
            "items": self.items,
            "skip": self.skip,
        }


def _task_exists(state: State, instance_id: str, task_id: str) -> dict[str, Any]:
    task = state["tasks"].get(task_id)
    if task is None:
        known = ", ".join(list(state["tasks"])[:8])
        raise NotFoundError(f"instance {instance_id} has no task '{task_id}' (tasks: {known})")
    return dict(task)


def plan_retry(
    workspace: Workspace,
    instance_id: str,
    task_id: str | None,
    *,
    downstream: bool,
    clock: Clock,
    item: int | None = None,
) -> ResetPlan:
    """Which tasks a retry puts back to pending. Named: that task (failed, completed or
    skipped), the tasks after it that were skipped or cancelled (they depend on it), and
    with `downstream` every task after it. Unnamed: every failed task, likewise.

    A failed for_each task goes back with only its failed items (its completed items
    keep their outputs); with `item`, only that item of the named task, whatever it
    came to."""
    refuse_if_running(workspace, instance_id, "retry")
    state = load_state(open_journal(workspace, instance_id, clock))
    refuse_cancelled(instance_id, state)
    workflow = parse_workflow(load_definition(workspace, instance_id))
    if task_id is not None:
        task = _task_exists(state, instance_id, task_id)
        if task["state"] not in ("failed", "completed", "skipped"):
            raise StateError(
                f"task '{task_id}' is {task['state']}; only a failed, completed or skipped "
                "task can be retried"
            )
        roots = [task_id]
    else:
        if item is not None:
            raise UsageError("--item needs --task: the for_each task the item belongs to")
        roots = [t for t, task in state["tasks"].items() if task["state"] == "failed"]
        if not roots:
            raise StateError(f"instance {instance_id} has no failed task to retry")
    items = _items_to_retry(state, roots, task_id, item)
    reset = list(roots)
    for dependent in workflow.graph.downstream(roots):
        now = state["tasks"][dependent]["state"]
        if now in ("skipped", "cancelled") or (downstream and now in DONE_TASK_STATES):
            reset.append(dependent)
    changes = []
    for name in reset:
        now = state["tasks"][name]["state"]
        changes.append(TaskChange(name, now, "pending", side_effect(workflow, name, now)))
    return ResetPlan(instance_id, changes, items=items)


def _items_to_retry(
    state: State, roots: list[str], task_id: str | None, item: int | None
) -> dict[str, list[int]]:
    """The items a retry puts back, for each for_each task it retries item by item."""
    found: dict[str, list[int]] = {}
    for root in roots:
        task = state["tasks"][root]
        records = task.get("items", {}).get("records")
        if item is not None and root == task_id:
            if records is None:
                raise UsageError(f"task '{root}' has no items (--item is for a for_each task)")
            if not 0 <= item < len(records):
                raise NotFoundError(
                    f"task '{root}' has no item {item} (it has {len(records)}: 0 to"
                    f" {len(records) - 1})"
                )
            if records[item]["state"] not in ("failed", "completed", "skipped"):
                raise StateError(
                    f"item {item} of '{root}' is {records[item]['state']}; only a failed,"
                    " completed or skipped item can be retried"
                )
            found[root] = [item]
        elif records is not None and task["state"] == "failed":
            found[root] = [i for i, r in enumerate(records) if r["state"] == "failed"]
    return found


def retry(
    workspace: Workspace, instance_id: str, plan: ResetPlan, *, by: str, clock: Clock
) -> State:
    with no_runner(workspace, instance_id, "retry"):
        tasks = [change.task for change in plan.reset if change.task not in plan.items]
        events: list[Record] = [
            ev.items_reset(task_id, indices, by, "retry") for task_id, indices in plan.items.items()
        ]
        if tasks:
            events.append(ev.tasks_reset(tasks, by, "retry"))
        return append_events(
            open_journal(workspace, instance_id, clock),
            lambda state: _checked(state, plan, events),
        )


def plan_skip(
    workspace: Workspace, instance_id: str, task_id: str, clock: Clock, *, force: bool = False
) -> ResetPlan:
    """Skipping a failed or waiting task; the tasks after it that were skipped or
    cancelled go back to pending so that they see it as skipped. An approval gate is
    skipped only with `force` (who skipped it is recorded)."""
    refuse_if_running(workspace, instance_id, "skip a task")
    state = load_state(open_journal(workspace, instance_id, clock))
    refuse_cancelled(instance_id, state)
    task = _task_exists(state, instance_id, task_id)
    if task["state"] not in ("failed", "waiting", "pending"):
        raise StateError(
            f"task '{task_id}' is {task['state']}; only a failed, waiting or pending task "
            "can be skipped"
        )
    workflow = parse_workflow(load_definition(workspace, instance_id))
    if workflow.tasks[task_id].action == "approval_gate" and not force:
        raise StateError(
            f"task '{task_id}' is an approval gate; skipping it walks past the people who "
            "decide it: use 'skip --force' (who skipped it is recorded), or decide it "
            "with 'approve'/'reject'"
        )
    changes = [
        TaskChange(dependent, state["tasks"][dependent]["state"], "pending")
        for dependent in workflow.graph.downstream([task_id])
        if state["tasks"][dependent]["state"] in ("skipped", "cancelled")
    ]
    return ResetPlan(instance_id, changes, skip=task_id)


def skip(
    workspace: Workspace, instance_id: str, plan: ResetPlan, *, by: str, clock: Clock
) -> State:
    assert plan.skip is not None
    with no_runner(workspace, instance_id, "skip a task"):
        events: list[Record] = []
        if plan.reset:
            events.append(ev.tasks_reset([change.task for change in plan.reset], by, "skip"))
        events.append(ev.task_skipped(plan.skip, f"skipped by {by}", by=by))
        return append_events(
            open_journal(workspace, instance_id, clock), lambda state: _checked(state, plan, events)
        )


def _checked(state: State, plan: ResetPlan, events: list[Record]) -> list[Record]:
    """The events, unless the tasks changed since the plan was made."""
    for change in plan.reset:
        if state["tasks"][change.task]["state"] != change.now:
            raise StateError(f"task '{change.task}' changed meanwhile; look again and retry")
    return events


@readonly_dataclass
class ParameterChange:
    task: str
    name: str
    old: Any
    new: Any


def parse_assignments(values: list[str]) -> list[tuple[str, str, Any]]:
    """``TASK.NAME=VALUE`` → (task, name, value); a value that parses as JSON is that
    JSON value, anything else is the string as given."""
    parsed = []
    for text in values:
        target, sep, raw = text.partition("=")
        task_id, dot, name = target.partition(".")
        if not sep or not dot or not task_id or not name:
            raise UsageError(f"--set '{text}' is not TASK.PARAMETER=VALUE")
        try:
            value: Any = loads_json(raw)
        except ValueError:
            value = raw
        parsed.append((task_id, name, value))
    return parsed


def plan_parameters(
    workspace: Workspace, instance_id: str, assignments: list[str], clock: Clock
) -> list[ParameterChange]:
    """Check `assignments` against the tasks; the changes they make."""
    refuse_if_running(workspace, instance_id, "change its parameters")
    state = load_state(open_journal(workspace, instance_id, clock))
    refuse_cancelled(instance_id, state)
    workflow = parse_workflow(load_definition(workspace, instance_id))
    changes = []
    for task_id, name, value in parse_assignments(assignments):
        task = _task_exists(state, instance_id, task_id)
        if task["state"] == "completed":
            raise StateError(
                f"task '{task_id}' is completed; retry or roll it back to change its parameters"
            )
        parameters = workflow.tasks[task_id].parameters
        if name not in parameters:
            known = ", ".join(parameters) or "none"
            raise UsageError(f"task '{task_id}' has no parameter '{name}' (it has: {known})")
        old = (state.get("overrides", {}).get(task_id) or {}).get(name, parameters[name])
        changes.append(ParameterChange(task_id, name, old, value))
    return changes


def set_parameters(
    workspace: Workspace,
    instance_id: str,
    changes: list[ParameterChange],
    *,
    by: str,
    clock: Clock,
) -> State:
    with no_runner(workspace, instance_id, "change its parameters"):
        events: list[Record] = [ev.parameter_set(c.task, c.name, c.new, by) for c in changes]
        return append_events(open_journal(workspace, instance_id, clock), lambda _s: events)
