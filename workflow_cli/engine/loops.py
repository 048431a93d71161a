"""Loops: a task with ``repeat`` runs again until its ``until`` holds over its last output.

Each iteration is an attempt (with the task's retries of its own) whose parameters see
``iteration`` (from 1). When one completes, ``until`` is evaluated with its ``output``
and ``iteration``: it holds → the task completes with that output; it does not and
``max_iterations`` are done → the task fails, saying so; else the task runs again after
``delay_seconds``. Every iteration is recorded (``task_iterated``), so a run that resumes
goes on from the iteration it was at.

A named group of tasks (``groups: {NAME: {tasks, repeat}}``) loops the same way, all of
it: once every task of it has settled, ``until`` sees ``output`` (each task's output by
id) and ``iteration``; it holds → the group is over and the tasks after it go on; it
does not → its tasks go back to pending and run again (``group_iterated``); past
``max_iterations`` its last tasks (those nothing else in it depends on) fail, saying so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workflow_cli.definition.expressions import evaluate_condition
from workflow_cli.definition.model import TaskSpec
from workflow_cli.errors import ExpressionError
from workflow_cli.store import events as ev
from workflow_cli.store.journal import Record

if TYPE_CHECKING:
    from workflow_cli.engine.runner import Runner


def iteration_context(
    spec: TaskSpec, task: Mapping[str, Any], context: Mapping[str, Any]
) -> Mapping[str, Any]:
    """What an attempt of `spec` sees: for a repeating task, `context` with ``iteration``."""
    if spec.repeat is None:
        return context
    return {**context, "iteration": int(task.get("iteration", 0)) + 1}


def attempt_in_iteration(task: Mapping[str, Any], number: int) -> int:
    """Which attempt of its iteration attempt `number` is (retries count per iteration)."""
    return number - int(task.get("iteration_attempt", 0))


def iteration_events(
    spec: TaskSpec,
    number: int,
    duration: float,
    output: Any,
    *,
    task: Mapping[str, Any],
    context: Mapping[str, Any],
) -> tuple[list[Record], float | None]:
    """The events of an iteration that completed with `output`, and the delay before the
    next one (None: the task is done, completed or failed)."""
    repeat = spec.repeat
    assert repeat is not None
    iteration = int(task.get("iteration", 0)) + 1
    try:
        held = evaluate_condition(
            repeat.until, {**context, "output": output, "iteration": iteration}
        )
    except ExpressionError as exc:
        done = ev.task_iterated(spec.id, iteration, number, duration, output, held=False, delay=0)
        failure = {"message": f"repeat.until: {exc.message}", "kind": "expression"}
        return [done, ev.task_failed(spec.id, number, duration, failure)], None
    if held:
        done = ev.task_iterated(spec.id, iteration, number, duration, output, held=True, delay=0)
        return [done, ev.task_completed(spec.id, number, duration, output)], None
    if iteration >= repeat.max_iterations:
        done = ev.task_iterated(spec.id, iteration, number, duration, output, held=False, delay=0)
        error: dict[str, Any] = {
            "message": f"repeat: 'until' did not hold after {iteration} iterations"
            f" (max_iterations {repeat.max_iterations}): {repeat.until}",
            "kind": "repeat",
            "iterations": iteration,
        }
        return [done, ev.task_failed(spec.id, number, duration, error)], None
    delay = repeat.delay
    again = ev.task_iterated(spec.id, iteration, number, duration, output, held=False, delay=delay)
    return [again], delay


def end_group_iteration(run: Runner, group: str) -> None:
    """Every task of `group` settled: evaluate its ``until``, then let the tasks after it
    go, or run it again, or (no iterations left) fail its last tasks."""
    spec = run.workflow.groups[group]
    iteration = int(run.state.get("groups", {}).get(group, {}).get("iteration", 0)) + 1
    tasks = run.state["tasks"]
    output = {task_id: tasks[task_id]["output"] for task_id in spec.tasks}
    problem = None
    try:
        seen = {**run.context, "output": output, "iteration": iteration}
        held = evaluate_condition(spec.repeat.until, seen)
    except ExpressionError as exc:
        held, problem = False, f"group '{group}': repeat.until: {exc.message}"
    if held or (problem is None and iteration < spec.repeat.max_iterations):
        again = [] if held else list(spec.tasks)
        delay = 0.0 if held else spec.repeat.delay
        run.recorder.record(
            ev.group_iterated(group, iteration, held=held, again=again, delay=delay)
        )
        if held:
            run.scheduler.group_done(group)
        else:
            run.scheduler.reopen(group, run.monotonic() + delay)
        return
    run.recorder.record(ev.group_iterated(group, iteration, held=False, again=[], delay=0.0))
    error: dict[str, Any] = {
        "message": problem
        or f"group '{group}': repeat: 'until' did not hold after {iteration} iterations"
        f" (max_iterations {spec.repeat.max_iterations}): {spec.repeat.until}",
        "kind": "expression" if problem else "repeat",
        "group": group,
        "iterations": iteration,
    }
    dependents = run.workflow.graph.dependents
    last = [t for t in spec.tasks if not any(d in spec.tasks for d in dependents[t])]
    for task_id in last:
        run.recorder.record(ev.task_failed(task_id, tasks[task_id]["attempts"], 0.0, error))
        run.recorder.settled(task_id, failed=True, milestone=False)
    run.scheduler.group_done(group)
