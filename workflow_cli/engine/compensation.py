"""Compensation (saga): undo completed tasks, newest completion first.

A task may declare ``compensate: {action, agent_id?, parameters?, timeout_seconds?,
retry_count?, retry_delay?}``. Its parameters are expressions like a task's, and also
see ``task.id`` and ``task.output`` (the output of the task being undone).

Compensations run when a workflow with ``on_failure: compensate`` fails or is
cancelled, and for the tasks a rollback puts back to pending. Each attempt is run by
`engine.attempt` like a task's and recorded (``compensation_started`` / ``_completed``
/ ``_failed``); a failing compensation is retried per its own policy (the delay
doubling from ``retry_delay``, capped, with jitter), and when it still fails it is
reported, never dropped.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from workflow_cli.definition.model import CompensationSpec, WorkflowSpec
from workflow_cli.engine.actions import get_action
from workflow_cli.engine.actions.base import ActionFailed, AwaitDecision
from workflow_cli.engine.attempt import (
    Attempt,
    Ended,
    build_context,
    error_of,
    prepare_call,
    retry_delay,
    run_call,
)
from workflow_cli.errors import WorkflowCliError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events
from workflow_cli.store.journal import Journal, Record
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

# How often a wait between compensation attempts looks whether it should end early.
_WAIT_POLL = 0.1


@readonly_dataclass
class CompensationOutcome:
    task: str
    state: str  # completed | failed
    attempts: int
    error: str | None = None


def compensation_order(
    workflow: WorkflowSpec, state: State, tasks: Iterable[str] | None = None
) -> list[str]:
    """Completed tasks that declare a compensation not yet done, newest completion first
    (only those in `tasks`, when given)."""
    chosen = set(tasks) if tasks is not None else None
    done = state.get("compensations", {})
    found = [
        (task.get("completed_seq") or 0, task_id)
        for task_id, task in state["tasks"].items()
        if task["state"] == "completed"
        and task_id in workflow.tasks
        and workflow.tasks[task_id].compensate is not None
        and (chosen is None or task_id in chosen)
        and done.get(task_id, {}).get("state") != "completed"
    ]
    return [task_id for _, task_id in sorted(found, reverse=True)]


def run_compensations(
    workspace: Workspace,
    workflow: WorkflowSpec,
    state: State,
    record: Callable[[list[Record]], None],
    *,
    services: Any = None,
    tasks: Iterable[str] | None = None,
    stop: Callable[[], bool] = lambda: False,
    rng: random.Random | None = None,
) -> list[CompensationOutcome]:
    """Run the compensations `compensation_order` names, one at a time; `record` writes
    the events (and folds them into `state`). `stop` ends the series early, also while
    it waits before a retry."""
    rng = rng or random.Random()
    outcomes = []
    for task_id in compensation_order(workflow, state, tasks):
        if stop():
            break
        spec = workflow.tasks[task_id].compensate
        assert spec is not None
        outcomes.append(
            _compensate(workspace, task_id, spec, workflow, state, record, services, stop, rng)
        )
    return outcomes


def _compensate(
    workspace: Workspace,
    task_id: str,
    spec: CompensationSpec,
    workflow: WorkflowSpec,
    state: State,
    record: Callable[[list[Record]], None],
    services: Any,
    stop: Callable[[], bool],
    rng: random.Random,
) -> CompensationOutcome:
    number = 0
    while True:
        number += 1
        record([ev.compensation_started(task_id, number)])
        context = build_context(workflow.params, state)
        context["task"] = {"id": task_id, "output": state["tasks"][task_id].get("output")}
        attempt = Attempt(workspace, state["id"], task_id, number, context, services)
        ended = _run(attempt, spec)
        duration = round(ended.duration, 6)
        if not isinstance(ended.result, ActionFailed):
            record([ev.compensation_completed(task_id, number, duration, ended.result)])
            return CompensationOutcome(task_id, "completed", number)
        failure = ended.result
        delay = retry_delay(spec.retry, number, failure, rng)
        final = delay is None
        record([ev.compensation_failed(task_id, number, duration, error_of(failure), final=final)])
        if delay is None or _interrupted_wait(delay, stop):
            return CompensationOutcome(task_id, "failed", number, failure.message)


def _run(attempt: Attempt, spec: CompensationSpec) -> Ended:
    try:
        action = get_action(spec.action)
    except WorkflowCliError as exc:
        failure = ActionFailed(f"compensation: {exc.message}", kind="expression", retryable=False)
        return Ended(failure, 0.0)
    ended = run_call(action, prepare_call(attempt, spec))
    if isinstance(ended.result, AwaitDecision):
        failure = ActionFailed("a compensation cannot wait for a decision", retryable=False)
        return Ended(failure, ended.duration)
    return ended


def _interrupted_wait(seconds: float, stop: Callable[[], bool]) -> bool:
    """Wait `seconds`, or less when `stop` comes true (then True)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stop():
            return True
        time.sleep(min(left, _WAIT_POLL))
    return stop()


def compensate_without_runner(
    workspace: Workspace,
    journal: Journal,
    workflow: WorkflowSpec,
    state: State,
    *,
    tasks: Iterable[str] | None = None,
    services: Any = None,
) -> list[CompensationOutcome]:
    """Run compensations from a command that holds the run lock (cancel with no live
    runner, rollback): each event is appended under the journal lock as it happens."""

    def record(events: list[Record]) -> None:
        state.update(append_events(journal, lambda _state: events))

    return run_compensations(workspace, workflow, state, record, services=services, tasks=tasks)
