"""Fan-out: the items of ``for_each`` tasks in one run — fixed, started, finished.

When a for_each task may run (the scheduler's `Expand`), its list is evaluated once and
recorded (``items_planned``): item K means the same value on every run after. Each item
is then an attempt of its own (``item_started`` … ``item_completed`` | ``item_retrying``
| ``item_failed``), retried by the task's policy, seeing ``item`` and ``index`` in its
parameters and conditions. When every item has ended the task completes with the list of
the items' outputs in order (null for a skipped item), or fails naming the items that
failed. A run that resumes starts only the items that had not ended: a completed item
never runs again unless a person retries it (``retry --task T --item K``).

Items of one task all end before it settles, even when one failed for good; the task
then fails and its failed items can be retried alone.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workflow_cli.definition.expressions import render_value
from workflow_cli.engine.actions.base import ActionFailed
from workflow_cli.engine.attempt import (
    TIMEOUT_GRACE,
    Attempt,
    Ended,
    Seen,
    check_conditions,
    item_events,
    prepare_call,
    run_call,
)
from workflow_cli.engine.executor import InFlight
from workflow_cli.engine.scheduler import Expand, Fail, Skip, StartItem
from workflow_cli.errors import ExpressionError
from workflow_cli.store import events as ev
from workflow_cli.store.state import ITEM_END_STATES, items_done

if TYPE_CHECKING:
    from workflow_cli.engine.runner import Runner

# The most items one for_each task may have.
MAX_ITEMS = 100_000
# How many failed items a task's error names.
_NAMED_FAILURES = 20


def plan_items(for_each: str | list[Any], context: Mapping[str, Any]) -> list[Any] | ActionFailed:
    """The items of a for_each task: its expression's value (a list), or the failure of
    an attempt that cannot have them."""
    try:
        value = render_value(for_each, context)
    except ExpressionError as exc:
        return ActionFailed(f"for_each: {exc.message}", kind="expression", retryable=False)
    if not isinstance(value, list):
        kind = type(value).__name__ if value is not None else "null"
        return ActionFailed(
            f"for_each: expected a list, got {kind}", kind="expression", retryable=False
        )
    if len(value) > MAX_ITEMS:
        return ActionFailed(
            f"for_each: {len(value):,} items; a task may have at most {MAX_ITEMS:,}",
            kind="expression",
            retryable=False,
        )
    return value


def item_context(context: Mapping[str, Any], item: Any, index: int) -> dict[str, Any]:
    """What an item's parameters and conditions see: the run's context with ``item`` and
    ``index``."""
    return {**context, "item": item, "index": index}


class Fanout:
    """The for_each tasks of one run, carried out for the runner that owns them."""

    def __init__(self, runner: Runner) -> None:
        # Not a reference back to its owner: a finished run is then freed at once, not
        # at the next full collection (which a long-lived process, a server, waits for).
        self.runner = weakref.proxy(runner)
        self._began: dict[str, float] = {}  # when each task's items began, this run

    def decide(self, decision: Expand | StartItem) -> None:
        if isinstance(decision, Expand):
            self.expand(decision.task)
        else:
            self.start(decision.task, decision.index)

    def expand(self, task_id: str) -> None:
        """Fix the task's items (once) and hand the scheduler those still to run."""
        run = self.runner
        task = run.state["tasks"][task_id]
        number = task["attempts"] + 1
        if "items" not in task:
            spec = run.workflow.tasks[task_id]
            assert spec.for_each is not None
            items = plan_items(spec.for_each, run.context)
            if isinstance(items, ActionFailed):
                run.recorder.record(ev.task_started(task_id, number))
                run._finish(task_id, number, Ended(items, 0.0))
                return
            run.recorder.record(ev.items_planned(task_id, items))
        run.recorder.record(ev.task_started(task_id, number))
        self._began[task_id] = run.monotonic()
        records = task["items"]["records"]
        left = [i for i, item in enumerate(records) if item["state"] not in ITEM_END_STATES]
        run.scheduler.expanded(task_id, left)
        self._settle_if_done(task_id)

    def start(self, task_id: str, index: int) -> None:
        """Start an attempt of one item (inline actions run here and now)."""
        run = self.runner
        spec, action = run.workflow.tasks[task_id], run.actions[task_id]
        items = run.state["tasks"][task_id]["items"]
        number = items["records"][index]["attempts"] + 1
        context = item_context(run.context, items["values"][index], index)
        verdict = check_conditions(spec, context, per_item=True) if spec.conditions else None
        if isinstance(verdict, Skip):
            run.recorder.record(ev.item_skipped(task_id, index, verdict.reason))
            run.scheduler.item_released(task_id)
            self._settle_if_done(task_id)
            return
        attempt = Attempt(
            run.workspace,
            run.instance_id,
            task_id,
            number,
            context,
            run.services,
            masker=run.recorder.masker,
            cache_clock=run.clock if run.options.use_cache else None,
            item=index,
            agents=run.agents,
        )
        overrides = run.state.get("overrides", {}).get(task_id)
        call = (
            ActionFailed(verdict.message, kind="expression", retryable=False)
            if isinstance(verdict, Fail)
            else prepare_call(attempt, spec, overrides=overrides)
        )
        run.recorder.record(ev.item_started(task_id, index, number))
        if isinstance(call, ActionFailed) or action.inline:
            self.finish(task_id, index, number, run_call(action, call))
            return
        work = run.pool.prepare(
            (task_id, index),
            number,
            run.executor.attempt_work(action, call),  # here, or on a Dask worker
            cancel=attempt.cancel,
            deadline_after=spec.timeout + TIMEOUT_GRACE if spec.timeout else None,
        )
        run.to_submit.append((task_id, work))

    def finish(self, task_id: str, index: int, number: int, ended: Ended) -> None:
        """Record what an item's attempt came to; settle the task after its last item."""
        run = self.runner
        spec = run.workflow.tasks[task_id]
        items = run.state["tasks"][task_id]["items"]
        seen = Seen(
            run.state["tasks"][task_id],
            item_context(run.context, items["values"][index], index),
            run.state.get("overrides", {}).get(task_id),
        )
        outcome = item_events(
            spec,
            index,
            number,
            ended,
            may_retry=not run.scheduler.halted,
            rng=run.rng,
            seen=seen,
            linked_child=run.state.get("children", {}).get(f"{task_id}.{index}"),
        )
        run.recorder.record(*outcome.events)
        if outcome.retry_after is not None:
            run.scheduler.item_retry_at(task_id, index, run.monotonic() + outcome.retry_after)
        else:
            run.scheduler.item_released(task_id)
            self._settle_if_done(task_id)

    def interrupt(self, key: tuple[str, int], attempt: InFlight, *, reason: str) -> None:
        """An item's attempt was given up on (the run stops or is cancelled): the item
        runs again on resume (a cancelled run cancels the task itself)."""
        task_id, index = key
        duration = round(self.runner.monotonic() - attempt.started, 6)
        event = ev.item_interrupted(task_id, index, attempt.number, duration, reason)
        self.runner.recorder.record(event)
        self.runner.scheduler.item_released(task_id)

    def _settle_if_done(self, task_id: str) -> None:
        """Once every item has ended, the task completes with their outputs in order or
        fails naming the items that failed."""
        run = self.runner
        task = run.state["tasks"][task_id]
        items = task["items"]
        if items_done(items) < items["total"] or task["state"] != "running":
            return
        duration = round(run.monotonic() - self._began.get(task_id, run.monotonic()), 6)
        records = items["records"]
        if items["failed"]:
            failed = [i for i, item in enumerate(records) if item["state"] == "failed"]
            first = records[failed[0]].get("error") or {}
            error = {
                "message": f"{len(failed)} of {items['total']} items failed; item {failed[0]}: "
                f"{first.get('message', 'no message')}",
                "kind": "items",
                "failed_items": failed[:_NAMED_FAILURES],
            }
            run.recorder.record(ev.task_failed(task_id, task["attempts"], duration, error))
        else:
            outputs = [item["output"] for item in records]
            run.recorder.record(ev.task_completed(task_id, task["attempts"], duration, outputs))
        spec = run.workflow.tasks[task_id]
        run.scheduler.settled(task_id)
        failed_for_good = task["state"] == "failed"
        run.recorder.settled(task_id, failed=failed_for_good, milestone=spec.milestone)
