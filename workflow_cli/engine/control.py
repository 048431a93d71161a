"""Control of an instance from another terminal: stop, cancel, checkpoint, rollback,
retry, skip and setting a task's parameters.

Commands never edit state: they append events under the journal lock. A live runner
picks up ``stop_requested`` and ``cancel_requested`` itself. The operations that change
tasks (rollback, retry, skip, set, and stop or cancel with no live runner) hold the
instance's run lock while they work, so no runner can start meanwhile, and are refused
while a runner is executing the instance.

Every change can be planned first (``plan_*``) and shown with ``--dry-run``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow_cli.definition.model import parse_workflow
from workflow_cli.engine.compensation import (
    CompensationOutcome,
    compensation_order,
    run_compensations,
)
from workflow_cli.errors import LockHeldError, NotFoundError, StateError, UsageError
from workflow_cli.store.checkpoints import (
    CheckpointInfo,
    list_checkpoints,
    load_checkpoint,
    restorable_tasks,
    write_checkpoint,
)
from workflow_cli.store.instances import (
    append_events,
    load_definition,
    load_state,
    open_journal,
)
from workflow_cli.store.journal import Clock, Event, Journal, Record
from workflow_cli.store.runlock import RunLock, runner_alive
from workflow_cli.store.state import DONE_TASK_STATES, State
from workflow_cli.store.workspace import Workspace

# What running a task again does to the world, by action (for rollback and retry plans).
SIDE_EFFECTS = {
    "agent_task": "runs its agent again",
    "file_operation": "does its file operation again",
    "api_call": "sends its HTTP request again",
    "workflow_trigger": "reuses its finished child instance (the child is not run again)",
    "approval_gate": "asks for an approval again",
}
# How long stop and cancel wait, at most, for a live runner to end.
RUNNER_EXIT_POLL = 0.05


@contextmanager
def no_runner(workspace: Workspace, instance_id: str, doing: str) -> Iterator[None]:
    """Hold the instance's run lock for an operation that changes tasks; refused (exit 4)
    while a runner executes the instance."""
    lock = RunLock(workspace.instance_dir(instance_id))
    try:
        lock.acquire(instance_id)
    except LockHeldError:
        raise _busy(instance_id, doing) from None
    try:
        yield
    finally:
        lock.release()


def refuse_if_running(workspace: Workspace, instance_id: str, doing: str) -> None:
    if runner_alive(workspace.instance_dir(instance_id)):
        raise _busy(instance_id, doing)


def _busy(instance_id: str, doing: str) -> LockHeldError:
    return LockHeldError(
        f"instance {instance_id} is busy: it is being run (stop it first with "
        f"'workflow_cli stop {instance_id}') or another command is changing it; "
        f"then {doing}"
    )


# -- checkpoints -------------------------------------------------------------------


def take_checkpoint(
    workspace: Workspace, instance_id: str, *, kind: str, label: str | None, clock: Clock
) -> dict[str, Any]:
    """Write a checkpoint of the instance as its journal stands now (a runner may be
    executing it) and note it in the journal; the checkpoint."""
    journal = open_journal(workspace, instance_id, clock)
    written: list[dict[str, Any]] = []

    def decide(state: State) -> list[Event]:
        document = write_checkpoint(workspace, state, kind=kind, label=label, now=clock())
        written.append(document)
        return [
            {
                "type": "checkpoint_created",
                "checkpoint": document["id"],
                "kind": kind,
                "label": label,
                "at_seq": document["seq"],
            }
        ]

    append_events(journal, decide)
    return written[0]


# -- stop and cancel -----------------------------------------------------------------


@dataclass
class StopOutcome:
    instance_id: str
    state: str
    requested: bool  # a live runner was asked (else the command did it itself)
    runner_ended: bool
    message: str
    compensations: list[CompensationOutcome] = field(default_factory=list)


def stop(
    workspace: Workspace,
    instance_id: str,
    *,
    by: str,
    grace: float | None,
    wait: float,
    clock: Clock,
) -> StopOutcome:
    """Pause an instance. A live runner is asked to stop (nothing new starts; tasks in
    flight finish, or are interrupted after `grace` seconds); with none, the instance
    is paused here. Waits up to `wait` seconds for the runner to end."""
    journal = open_journal(workspace, instance_id, clock)
    state = load_state(journal)
    _refuse_final(instance_id, state, "stop")
    if state["state"] == "paused":
        return StopOutcome(instance_id, "paused", False, True, "already paused")
    if state["state"] == "created":
        raise StateError(f"instance {instance_id} has not started; there is nothing to stop")
    instance_dir = workspace.instance_dir(instance_id)
    if _live_runner(instance_dir, state, instance_id, "stop it"):
        append_events(journal, lambda _s: [{"type": "stop_requested", "by": by, "grace": grace}])
        return _await_runner(workspace, instance_id, wait, clock, requested="stop")
    with no_runner(workspace, instance_id, "stop it"):
        from workflow_cli.engine.agents import kill_orphan_agents

        kill_orphan_agents(instance_dir)
        take_checkpoint(workspace, instance_id, kind="stop", label=f"stopped by {by}", clock=clock)
        state = append_events(
            journal,
            lambda _s: [{"type": "run_ended", "state": "paused", "reason": f"stopped by {by}"}],
        )
    return StopOutcome(instance_id, state["state"], False, True, "paused (no runner was alive)")


def cancel(
    workspace: Workspace,
    instance_id: str,
    *,
    by: str,
    wait: float,
    clock: Clock,
    services: Any = None,
) -> StopOutcome:
    """Cancel an instance for good: tasks in flight are ended (whole process groups),
    the rest are cancelled, compensations run if the workflow asks for them."""
    journal = open_journal(workspace, instance_id, clock)
    state = load_state(journal)
    _refuse_final(instance_id, state, "cancel")
    instance_dir = workspace.instance_dir(instance_id)
    if _live_runner(instance_dir, state, instance_id, "cancel it"):
        append_events(journal, lambda _s: [{"type": "cancel_requested", "by": by}])
        return _await_runner(workspace, instance_id, wait, clock, requested="cancel")
    with no_runner(workspace, instance_id, "cancel it"):
        from workflow_cli.engine.agents import kill_orphan_agents

        kill_orphan_agents(instance_dir)
        reason = f"cancelled by {by}"
        definition = load_definition(workspace, instance_id)

        def cancel_tasks(state: State) -> list[Event]:
            return [
                {"type": "task_cancelled", "task": task_id, "reason": reason}
                for task_id, task in state["tasks"].items()
                if task["state"] not in DONE_TASK_STATES
            ]

        state = append_events(journal, cancel_tasks)
        outcomes = []
        if definition.get("on_failure") == "compensate":
            outcomes = _compensate(workspace, journal, definition, state, None, services)
        state = append_events(
            journal, lambda _s: [{"type": "run_ended", "state": "cancelled", "reason": reason}]
        )
    return StopOutcome(instance_id, "cancelled", False, True, reason, outcomes)


def _live_runner(instance_dir: Path, state: State, instance_id: str, doing: str) -> bool:
    """Whether a runner executes the instance (and so is to be asked). The run lock held
    while the instance is not running means another command is changing it: busy."""
    if not runner_alive(instance_dir):
        return False
    if state["state"] != "running":
        raise _busy(instance_id, doing)
    return True


def _refuse_final(instance_id: str, state: State, doing: str) -> None:
    if state["state"] == "cancelled":
        raise StateError(f"instance {instance_id} was cancelled already; it cannot be changed")
    if state["state"] in ("completed", "failed"):
        raise StateError(f"instance {instance_id} is {state['state']}; there is nothing to {doing}")


def _await_runner(
    workspace: Workspace, instance_id: str, wait: float, clock: Clock, *, requested: str
) -> StopOutcome:
    instance_dir = workspace.instance_dir(instance_id)
    deadline = time.monotonic() + wait
    while runner_alive(instance_dir) and time.monotonic() < deadline:
        time.sleep(RUNNER_EXIT_POLL)
    ended = not runner_alive(instance_dir)
    state = load_state(open_journal(workspace, instance_id, clock))
    if ended:
        message = state.get("reason") or state["state"]
    else:
        message = f"{requested} requested; the runner is still finishing the tasks in flight"
    return StopOutcome(instance_id, state["state"], True, ended, message)


def _compensate(
    workspace: Workspace,
    journal: Journal,
    definition: dict[str, Any],
    state: State,
    tasks: list[str] | None,
    services: Any,
) -> list[CompensationOutcome]:
    def record(events: list[Record]) -> None:
        state.update(append_events(journal, lambda _state: events))

    workflow = parse_workflow(definition)
    return run_compensations(workspace, workflow, state, record, services=services, tasks=tasks)


# -- rollback ------------------------------------------------------------------------


@dataclass
class TaskChange:
    task: str
    now: str
    then: str
    side_effect: str | None = None  # what running it again does, when it goes back


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
    definition = load_definition(workspace, instance_id)
    info = _choose_checkpoint(workspace, instance_id, checkpoint, state)
    saved = load_checkpoint(workspace, instance_id, info.id)["state"]
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
            action = definition["tasks"][task_id]["action"]
            effect = SIDE_EFFECTS.get(action)
        changes.append(TaskChange(task_id, task["state"], then, effect))
    kept = {json.dumps(a, sort_keys=True) for a in saved.get("approvals", [])}
    undone = [a for a in state.get("approvals", []) if json.dumps(a, sort_keys=True) not in kept]
    order = compensation_order(parse_workflow(definition), state, back)
    return RollbackPlan(instance_id, info, changes, order, undone)


def _choose_checkpoint(
    workspace: Workspace, instance_id: str, given: str | None, state: State
) -> CheckpointInfo:
    if given is not None:
        from workflow_cli.store.checkpoints import find_checkpoint

        return find_checkpoint(workspace, instance_id, given)
    infos = list_checkpoints(workspace, instance_id)
    for info in infos:
        if info.valid and info.kind != "pre-rollback" and (info.seq or 0) < state["seq"]:
            saved = load_checkpoint(workspace, instance_id, info.id)["state"]
            if restorable_tasks(saved) != _comparable(state["tasks"]):
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
        definition = load_definition(workspace, instance_id)
        state = load_state(journal)
        outcomes = _compensate(workspace, journal, definition, state, plan.compensations, services)
        event: Event = {
            "type": "rolled_back",
            "checkpoint": plan.checkpoint.id,
            "pre_rollback": pre["id"],
            "by": by,
            "tasks": restorable_tasks(saved),
            "approvals": saved.get("approvals", []),
        }
        state = append_events(journal, lambda _s: [event])
    return RollbackOutcome(plan, pre["id"], outcomes, state["state"])


# -- retry, skip, set ------------------------------------------------------------------


@dataclass
class ResetPlan:
    instance_id: str
    reset: list[TaskChange]
    skip: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance_id,
            "reset": [vars(change) for change in self.reset],
            "skip": self.skip,
        }


def _dependents(definition: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {task_id: [] for task_id in definition["tasks"]}
    for task_id, task in definition["tasks"].items():
        for dep in task.get("dependencies") or []:
            found[dep].append(task_id)
    return found


def _downstream(definition: dict[str, Any], roots: list[str]) -> list[str]:
    dependents = _dependents(definition)
    seen: list[str] = []
    stack = list(roots)
    while stack:
        for dependent in dependents[stack.pop()]:
            if dependent not in seen:
                seen.append(dependent)
                stack.append(dependent)
    return seen


def _task_exists(state: State, instance_id: str, task_id: str) -> dict[str, Any]:
    task = state["tasks"].get(task_id)
    if task is None:
        known = ", ".join(list(state["tasks"])[:8])
        raise NotFoundError(f"instance {instance_id} has no task '{task_id}' (tasks: {known})")
    return dict(task)


def _usable(instance_id: str, state: State) -> None:
    if state["state"] == "cancelled":
        raise StateError(f"instance {instance_id} was cancelled; it cannot be changed")


def plan_retry(
    workspace: Workspace,
    instance_id: str,
    task_id: str | None,
    *,
    downstream: bool,
    clock: Clock,
) -> ResetPlan:
    """Which tasks a retry puts back to pending. Named: that task (failed, completed or
    skipped), the tasks after it that were skipped or cancelled (they depend on it), and
    with `downstream` every task after it. Unnamed: every failed task, likewise."""
    refuse_if_running(workspace, instance_id, "retry")
    state = load_state(open_journal(workspace, instance_id, clock))
    _usable(instance_id, state)
    definition = load_definition(workspace, instance_id)
    if task_id is not None:
        task = _task_exists(state, instance_id, task_id)
        if task["state"] not in ("failed", "completed", "skipped"):
            raise StateError(
                f"task '{task_id}' is {task['state']}; only a failed, completed or skipped "
                "task can be retried"
            )
        roots = [task_id]
    else:
        roots = [t for t, task in state["tasks"].items() if task["state"] == "failed"]
        if not roots:
            raise StateError(f"instance {instance_id} has no failed task to retry")
    reset = list(roots)
    for dependent in _downstream(definition, roots):
        now = state["tasks"][dependent]["state"]
        if now in ("skipped", "cancelled") or (downstream and now in DONE_TASK_STATES):
            reset.append(dependent)
    changes = []
    for name in reset:
        effect = None
        if state["tasks"][name]["state"] == "completed":
            effect = SIDE_EFFECTS.get(definition["tasks"][name]["action"])
        changes.append(TaskChange(name, state["tasks"][name]["state"], "pending", effect))
    return ResetPlan(instance_id, changes)


def retry(
    workspace: Workspace, instance_id: str, plan: ResetPlan, *, by: str, clock: Clock
) -> State:
    with no_runner(workspace, instance_id, "retry"):
        tasks = [change.task for change in plan.reset]
        return append_events(
            open_journal(workspace, instance_id, clock),
            lambda state: _checked(
                state, plan, [{"type": "tasks_reset", "tasks": tasks, "by": by, "why": "retry"}]
            ),
        )


def plan_skip(workspace: Workspace, instance_id: str, task_id: str, clock: Clock) -> ResetPlan:
    """Skipping a failed or waiting task; the tasks after it that were skipped or
    cancelled go back to pending so that they see it as skipped."""
    refuse_if_running(workspace, instance_id, "skip a task")
    state = load_state(open_journal(workspace, instance_id, clock))
    _usable(instance_id, state)
    task = _task_exists(state, instance_id, task_id)
    if task["state"] not in ("failed", "waiting", "pending"):
        raise StateError(
            f"task '{task_id}' is {task['state']}; only a failed, waiting or pending task "
            "can be skipped"
        )
    definition = load_definition(workspace, instance_id)
    changes = [
        TaskChange(dependent, state["tasks"][dependent]["state"], "pending")
        for dependent in _downstream(definition, [task_id])
        if state["tasks"][dependent]["state"] in ("skipped", "cancelled")
    ]
    return ResetPlan(instance_id, changes, skip=task_id)


def skip(
    workspace: Workspace, instance_id: str, plan: ResetPlan, *, by: str, clock: Clock
) -> State:
    assert plan.skip is not None
    with no_runner(workspace, instance_id, "skip a task"):
        events: list[Event] = []
        if plan.reset:
            tasks = [change.task for change in plan.reset]
            events.append({"type": "tasks_reset", "tasks": tasks, "by": by, "why": "skip"})
        events.append(
            {"type": "task_skipped", "task": plan.skip, "reason": f"skipped by {by}", "by": by}
        )
        return append_events(
            open_journal(workspace, instance_id, clock), lambda state: _checked(state, plan, events)
        )


def _checked(state: State, plan: ResetPlan, events: list[Event]) -> list[Event]:
    """The events, unless the tasks changed since the plan was made."""
    for change in plan.reset:
        if state["tasks"][change.task]["state"] != change.now:
            raise StateError(f"task '{change.task}' changed meanwhile; look again and retry")
    return events


@dataclass(frozen=True)
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
            value: Any = json.loads(raw)
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
    _usable(instance_id, state)
    definition = load_definition(workspace, instance_id)
    changes = []
    for task_id, name, value in parse_assignments(assignments):
        task = _task_exists(state, instance_id, task_id)
        if task["state"] == "completed":
            raise StateError(
                f"task '{task_id}' is completed; retry or roll it back to change its parameters"
            )
        parameters = definition["tasks"][task_id].get("parameters") or {}
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
        events: list[Event] = [
            {"type": "parameter_set", "task": c.task, "name": c.name, "value": c.new, "by": by}
            for c in changes
        ]
        return append_events(open_journal(workspace, instance_id, clock), lambda _s: events)
