"""Stop and cancel, from any terminal.

A live runner is asked through the journal (``stop_requested``, ``cancel_requested``)
and the command waits for it to end; with no live runner the command does the work
itself while holding the run lock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from workflow_cli.definition.model import parse_workflow
from workflow_cli.engine.agents import kill_orphan_agents
from workflow_cli.engine.compensation import CompensationOutcome, compensate_without_runner
from workflow_cli.engine.control.guards import live_runner, no_runner, take_checkpoint
from workflow_cli.engine.hooks import deliver_hooks
from workflow_cli.errors import StateError, UsageError, WorkflowCliError
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, load_definition, load_state, open_journal
from workflow_cli.store.journal import Clock, Event, Record
from workflow_cli.store.runlock import runner_alive
from workflow_cli.store.state import DONE_TASK_STATES, FINAL_INSTANCE_STATES, State
from workflow_cli.store.workspace import Workspace

# How often stop and cancel look whether a live runner has ended.
RUNNER_EXIT_POLL = 0.05


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
    if grace is not None and not math.isfinite(grace):
        # It is journaled: NaN or Infinity would be a line no JSON reader takes.
        raise UsageError(f"the grace must be a number of seconds, not {grace}")
    journal = open_journal(workspace, instance_id, clock)
    state = load_state(journal)
    _refuse_final(instance_id, state, "stop")
    if state["state"] == "paused":
        return StopOutcome(instance_id, "paused", False, True, "already paused")
    if state["state"] == "created":
        raise StateError(f"instance {instance_id} has not started; there is nothing to stop")
    instance_dir = workspace.instance_dir(instance_id)
    if live_runner(instance_dir, state, instance_id, "stop it"):
        append_events(journal, lambda _s: [ev.stop_requested(by, grace)])
        return _await_runner(workspace, instance_id, wait, clock, requested="stop")
    with no_runner(workspace, instance_id, "stop it"):
        kill_orphan_agents(instance_dir)
        take_checkpoint(workspace, instance_id, kind="stop", label=f"stopped by {by}", clock=clock)
        state = append_events(journal, lambda _s: [ev.run_ended("paused", f"stopped by {by}")])
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
    if live_runner(instance_dir, state, instance_id, "cancel it"):
        append_events(journal, lambda _s: [ev.cancel_requested(by)])
        return _await_runner(workspace, instance_id, wait, clock, requested="cancel")
    with no_runner(workspace, instance_id, "cancel it"):
        kill_orphan_agents(instance_dir)
        reason = f"cancelled by {by}"
        workflow = parse_workflow(load_definition(workspace, instance_id))

        def cancel_tasks(state: State) -> list[Record]:
            return [
                ev.task_cancelled(task_id, reason)
                for task_id, task in state["tasks"].items()
                if task["state"] not in DONE_TASK_STATES
            ]

        state = append_events(journal, cancel_tasks)
        outcomes = []
        if workflow.on_failure == "compensate":
            outcomes = compensate_without_runner(
                workspace, journal, workflow, state, services=services
            )
        state = append_events(journal, lambda _s: [ev.run_ended("cancelled", reason)])
    # No runner is there to deliver its hooks: this command does.
    ended: Event = {**ev.run_ended("cancelled", reason), "seq": state["seq"]}
    ended["time"] = state.get("updated_at", "")
    deliver_hooks(workspace, instance_id, [ended], clock=clock)
    for child in (state.get("children") or {}).values():
        _cancel_child(workspace, child, instance_id, by=by, wait=wait, clock=clock)
    return StopOutcome(instance_id, "cancelled", False, True, reason, outcomes)


def _cancel_child(
    workspace: Workspace, child: str, parent: str, *, by: str, wait: float, clock: Clock
) -> None:
    """A child instance still going is cancelled with its parent."""
    try:
        state = load_state(open_journal(workspace, child, clock))
    except WorkflowCliError:
        return  # removed, or unreadable: nothing to cancel here
    if state["state"] not in FINAL_INSTANCE_STATES:
        cancel(workspace, child, by=f"{by}, with its parent {parent}", wait=wait, clock=clock)


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
