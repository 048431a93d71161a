"""Compensation (saga): undo completed tasks, newest completion first.

A task may declare ``compensate: {action, agent_id?, parameters?, timeout_seconds?,
retry_count?, retry_delay?}``. Its parameters are expressions like a task's, and also
see ``task.id`` and ``task.output`` (the output of the task being undone).

Compensations run when a workflow with ``on_failure: compensate`` fails or is
cancelled, and for the tasks a rollback puts back to pending. Each attempt is recorded
(``compensation_started`` / ``_completed`` / ``_failed``); a failing compensation is
retried per its own ``retry_count`` (delay doubling from ``retry_delay``), and when it
still fails it is reported, never dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from workflow_cli.definition.expressions import render_value
from workflow_cli.engine.actions import get_action
from workflow_cli.engine.actions.base import ActionFailed, AwaitDecision, TaskCall, invoke_action
from workflow_cli.engine.attempts import TaskLog, build_context
from workflow_cli.errors import ExpressionError, WorkflowCliError
from workflow_cli.store.journal import Event
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


@dataclass(frozen=True)
class CompensationOutcome:
    task: str
    state: str  # completed | failed
    attempts: int
    error: str | None = None


def compensation_order(
    definition: dict[str, Any], state: State, tasks: Iterable[str] | None = None
) -> list[str]:
    """Completed tasks that declare a compensation not yet done, newest completion first
    (only those in `tasks`, when given)."""
    chosen = set(tasks) if tasks is not None else None
    done = state.get("compensations", {})
    found = [
        (task.get("completed_seq") or 0, task_id)
        for task_id, task in state["tasks"].items()
        if task["state"] == "completed"
        and definition["tasks"].get(task_id, {}).get("compensate")
        and (chosen is None or task_id in chosen)
        and done.get(task_id, {}).get("state") != "completed"
    ]
    return [task_id for _, task_id in sorted(found, reverse=True)]


def run_compensations(
    workspace: Workspace,
    definition: dict[str, Any],
    state: State,
    record: Callable[[list[Event]], None],
    *,
    services: Any = None,
    tasks: Iterable[str] | None = None,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> list[CompensationOutcome]:
    """Run the compensations `compensation_order` names, one at a time; `record` writes
    the events (and folds them into `state`). `stop` ends the series early."""
    outcomes = []
    for task_id in compensation_order(definition, state, tasks):
        if stop():
            break
        spec = definition["tasks"][task_id]["compensate"]
        outcomes.append(
            _compensate(workspace, task_id, spec, definition, state, record, services, sleep)
        )
    return outcomes


def _compensate(
    workspace: Workspace,
    task_id: str,
    spec: dict[str, Any],
    definition: dict[str, Any],
    state: State,
    record: Callable[[list[Event]], None],
    services: Any,
    sleep: Callable[[float], None],
) -> CompensationOutcome:
    attempts = int(spec.get("retry_count", 0)) + 1
    delay = float(spec.get("retry_delay", 1.0))
    log_path = workspace.instance_dir(state["id"]) / "logs" / f"{task_id}.compensate.log"
    message = "not run"
    for attempt in range(1, attempts + 1):
        record([{"type": "compensation_started", "task": task_id, "attempt": attempt}])
        started = time.perf_counter()
        context = build_context(definition, state)
        context["task"] = {"id": task_id, "output": state["tasks"][task_id].get("output")}
        log = TaskLog(log_path)
        try:
            result = _attempt(workspace, task_id, attempt, spec, context, log, services)
        finally:
            log.close()
        duration = round(time.perf_counter() - started, 6)
        if not isinstance(result, ActionFailed):
            record(
                [
                    {
                        "type": "compensation_completed",
                        "task": task_id,
                        "attempt": attempt,
                        "duration": duration,
                        "output": result,
                    }
                ]
            )
            return CompensationOutcome(task_id, "completed", attempt)
        message = result.message
        final = attempt == attempts or not result.retryable
        error = {"message": result.message, "kind": result.kind, **result.details}
        record(
            [
                {
                    "type": "compensation_failed",
                    "task": task_id,
                    "attempt": attempt,
                    "duration": duration,
                    "error": error,
                    "final": final,
                }
            ]
        )
        if final:
            return CompensationOutcome(task_id, "failed", attempt, message)
        sleep(delay * 2 ** (attempt - 1))  # the backoff before the next attempt
    return CompensationOutcome(task_id, "failed", attempts, message)


def _attempt(
    workspace: Workspace,
    task_id: str,
    attempt: int,
    spec: dict[str, Any],
    context: dict[str, Any],
    log: TaskLog,
    services: Any,
) -> Any:
    try:
        action = get_action(spec["action"])
        parameters = render_value(spec.get("parameters") or {}, context)
    except (ExpressionError, WorkflowCliError) as exc:
        return ActionFailed(f"compensation: {exc.message}", kind="expression", retryable=False)
    call = TaskCall(
        workspace=workspace,
        instance_id=context["instance"]["id"],
        task_id=task_id,
        attempt=attempt,
        agent_id=spec.get("agent_id"),
        parameters=parameters,
        timeout=spec.get("timeout_seconds"),
        log=log,
        log_path=log.path,
        context=context,
        services=services,
    )
    result = invoke_action(action, call)
    if isinstance(result, AwaitDecision):
        return ActionFailed("a compensation cannot wait for a decision", retryable=False)
    return result
