"""One attempt of a task or of its compensation — the one place an attempt is run.

`prepare_call` builds what the action is given: its parameters rendered against the
expression context, then values set by hand (``resume --set``) applied on top as data,
never rendered. `run_call` runs the action and times it; every way it can end is a
value. `task_events` turns what an attempt came to into the journal's events and, by
the task's `RetryPolicy` (cap, jitter, ``retry_on``), whether and when it runs again.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field
from functools import lru_cache
from pathlib import Path
from typing import Any

from workflow_cli.definition.expressions import evaluate_condition, loop_names, render_value
from workflow_cli.definition.model import CompensationSpec, RetryPolicy, TaskSpec
from workflow_cli.definition.retry_policy import retry_allowed
from workflow_cli.engine.actions.base import (
    Action,
    ActionFailed,
    AwaitDecision,
    TaskCall,
    invoke_action,
)
from workflow_cli.engine.executor import CancelFlag
from workflow_cli.engine.loops import attempt_in_iteration, iteration_events
from workflow_cli.engine.scheduler import Fail, Skip
from workflow_cli.errors import ExpressionError, WorkflowCliError
from workflow_cli.readonly import mutable_dataclass, readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.events import ErrorInfo
from workflow_cli.store.files import open_regular
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.secrets import Masker
from workflow_cli.store.state import DONE_TASK_STATES, State
from workflow_cli.store.workspace import Workspace

# How long past its own timeout an attempt may run before the runner gives up on it
# (actions enforce their timeout themselves; this is the backstop).
TIMEOUT_GRACE = 2.0

# -- what expressions see ------------------------------------------------------------------


def step_of(task: Mapping[str, Any]) -> dict[str, Any]:
    """What expressions see of a finished task as ``steps.ID``."""
    step = {"state": task["state"], "output": task.get("output")}
    if task.get("error"):
        step["error"] = task["error"]
    return step


class StepsView(Mapping[str, dict[str, Any]]):
    """``steps``: the finished tasks of a state, read live from its task records."""

    def __init__(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        self._tasks = tasks

    def __getitem__(self, task_id: str) -> dict[str, Any]:
        task = self._tasks[task_id]
        if task["state"] not in DONE_TASK_STATES:
            raise KeyError(task_id)
        return step_of(task)

    def __iter__(self) -> Iterator[str]:
        return (t for t, task in self._tasks.items() if task["state"] in DONE_TASK_STATES)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def build_context(
    params: Mapping[str, Any], state: State, secrets: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The values expressions see: ``params``, ``steps`` (finished tasks, live from
    `state`), ``instance`` (its ``id``, and its ``requester``: who created it) and
    ``secrets``."""
    return {
        "params": params,
        "steps": StepsView(state["tasks"]),
        "instance": {"id": state["id"], "requester": state.get("requester")},
        "secrets": secrets or {},
    }


ATTEMPT_MARKER = "=== attempt "


def attempt_marker(number: int) -> str:
    """The line a task's log has before what attempt `number` wrote (``logs --attempt``
    finds an attempt's lines by it)."""
    return f"{ATTEMPT_MARKER}{number} ===\n"


class TaskLog:
    """A task's log file (readable by its owner only), opened only when something is
    written to it. With a `masker`, a run's secret values never reach it: what is written
    is masked, and command agents send their stderr through `write` rather than
    straight to the file."""

    def __init__(
        self, path: Path, masker: Masker | None = None, attempt: int | None = None
    ) -> None:
        self.path = path
        self.masker = masker if masker else None
        self.attempt = attempt  # marked at the top of what this attempt writes
        self._handle: Any = None

    def _open(self) -> Any:
        if self._handle is None:
            fd = open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, doing="write")
            self._handle = open(fd, "a", encoding="utf-8")  # noqa: SIM115
            if self.attempt is not None:  # before anything a child process writes to it
                self._handle.write(attempt_marker(self.attempt))
                self._handle.flush()
        return self._handle

    def write(self, text: str, /) -> int:
        if self.masker is not None:
            text = self.masker.text(text)
        return int(self._open().write(text))

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def fileno(self) -> int:
        return int(self._open().fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


# -- running one ---------------------------------------------------------------------------


@mutable_dataclass
class Attempt:
    """Who is attempted, and what the attempt may consult."""

    workspace: Workspace
    instance_id: str
    task_id: str
    number: int
    context: Mapping[str, Any]
    services: Any = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    waiting_for: dict[str, Any] | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    cancel: CancelFlag = field(default_factory=CancelFlag)
    masker: Masker | None = None
    cache_clock: Clock | None = None  # None: the result cache is neither read nor written
    item: int | None = None  # an item of a for_each task: its index
    agents: Mapping[str, Any] | None = None  # declared agents, as read (TaskCall.agents)


@lru_cache(maxsize=64)
def _log_folder(workspace: Workspace, instance_id: str) -> Path:
    """Where an instance's task logs go, its folder checked once per process (a run
    holds the instance's lock; checking the folder again for every attempt costs a
    tenth of a small task's overhead)."""
    return workspace.instance_dir(instance_id) / "logs"


def prepare_call(
    attempt: Attempt,
    spec: TaskSpec | CompensationSpec,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> TaskCall | ActionFailed:
    """What the action of `spec` is given for `attempt`, or the failure of an attempt
    whose parameters do not render."""
    compensating = isinstance(spec, CompensationSpec)
    try:
        parameters = render_value(dict(spec.parameters), attempt.context)
    except ExpressionError as exc:
        where = "compensation" if compensating else "parameters"
        return ActionFailed(f"{where}: {exc.message}", kind="expression", retryable=False)
    parameters.update(overrides or {})
    plan = None
    if isinstance(spec, TaskSpec) and spec.cache is not None and attempt.cache_clock is not None:
        from workflow_cli.engine.cache import cache_key  # tasks with ``cache`` only

        try:
            key = cache_key(attempt.workspace, spec, parameters, attempt.context)
        except ActionFailed as failure:
            return failure
        plan = CachePlan(key, spec.cache.ttl, attempt.masker, attempt.cache_clock)
    suffix = ".compensate.log" if compensating else ".log"
    log = TaskLog(
        _log_folder(attempt.workspace, attempt.instance_id) / f"{attempt.task_id}{suffix}",
        attempt.masker,
        attempt.number,
    )
    return TaskCall(
        workspace=attempt.workspace,
        instance_id=attempt.instance_id,
        task_id=attempt.task_id,
        attempt=attempt.number,
        agent_id=spec.agent_id,
        parameters=parameters,
        timeout=spec.timeout,
        log=log,
        log_path=log.path,
        cancel=attempt.cancel,
        context=attempt.context,
        decisions=attempt.decisions,
        waiting_for=attempt.waiting_for,
        deliveries=attempt.deliveries,
        services=attempt.services,
        cache=plan,
        item=attempt.item,
        agents=attempt.agents,
    )


@readonly_dataclass
class CachePlan:
    """How an attempt's result is looked up in and kept in the result cache."""

    key: str
    ttl: float | None
    masker: Masker | None
    clock: Clock


@readonly_dataclass
class Ended:
    """What one attempt came to: its output, an `ActionFailed` or an `AwaitDecision`;
    for an output reused from the cache, where it came from."""

    result: Any
    duration: float
    cached: dict[str, Any] | None = None
    worker: str | None = None  # the address of the Dask worker that ran it


class AttemptLost(Exception):
    """The Dask worker running an attempt died under it (its result never came)."""

    def __init__(self, worker: str, reason: str) -> None:
        super().__init__(reason)
        self.worker = worker
        self.reason = reason


# How an attempt is run where it runs: its result (an output, an `ActionFailed`, an
# `AwaitDecision` or an `AttemptLost`) and the Dask worker that ran it (None: here).
Invoke = Callable[[Action, TaskCall], tuple[Any, str | None]]


def invoke_here(action: Action, call: TaskCall) -> tuple[Any, str | None]:
    return invoke_action(action, call), None


def run_call(action: Action, call: TaskCall | ActionFailed, invoke: Invoke = invoke_here) -> Ended:
    """Run one attempt (a call that could not be prepared ends at once, failed), in this
    process or, through `invoke`, on a Dask worker."""
    if isinstance(call, ActionFailed):
        return Ended(call, 0.0)
    plan: CachePlan | None = call.cache
    if plan is not None:
        from workflow_cli.engine import cache  # tasks with ``cache`` only

        hit = cache.lookup(call.workspace, plan.key, now=plan.clock(), ttl=plan.ttl)
        if hit is not None:
            call.log.close()
            return Ended(hit.output, 0.0, cached=hit.origin())
    started = time.perf_counter()
    try:
        result, worker = invoke(action, call)
    finally:
        call.log.close()
    ended = Ended(result, time.perf_counter() - started, worker=worker)
    if plan is not None and not isinstance(result, ActionFailed | AwaitDecision | AttemptLost):
        output = plan.masker.stored(result) if plan.masker else result
        when = plan.clock().isoformat(timespec="seconds")
        entry = cache.CacheEntry(plan.key, output, call.instance_id, call.unit, when)
        with contextlib.suppress(OSError, WorkflowCliError):  # a cache that cannot be kept
            cache.store(call.workspace, entry)  # costs a later run, never this one
    return ended


# -- what it leaves behind -------------------------------------------------------------------


def check_conditions(
    spec: TaskSpec, context: Mapping[str, Any], *, per_item: bool = False
) -> Skip | Fail | None:
    """The verdict on a task's conditions once its dependencies let it run: None when
    they hold, a skip naming the first that does not, a failure when one cannot be
    evaluated. A for_each task's conditions that read ``item`` or ``index`` are checked
    for each item (`per_item`), the others once for the task."""
    conditions = [
        c
        for c in spec.conditions
        if spec.for_each is None or per_item == bool(loop_names(c, bare=True))
    ]
    try:
        false = [c for c in conditions if not evaluate_condition(c, context)]
    except ExpressionError as exc:
        return Fail(spec.id, f"condition: {exc.message}")
    return Skip(spec.id, f"condition is false: {false[0]}") if false else None


def attempt_inputs(
    spec: TaskSpec, context: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> Any:
    """The parameters an attempt of `spec` was given, kept with a failure for good (a
    dead letter's inputs); None when they do not render."""
    try:
        parameters = render_value(dict(spec.parameters), context)
    except ExpressionError:
        return None
    parameters.update(overrides or {})
    return parameters


def abandoned(timeout: float, spent: float) -> Ended:
    """An attempt the runner gave up on after its timeout (and a grace)."""
    failure = ActionFailed(
        f"timed out after {timeout:g}s (the attempt was abandoned)", kind="timeout"
    )
    return Ended(failure, spent)


def error_of(failure: ActionFailed) -> ErrorInfo:
    return {"message": failure.message, "kind": failure.kind, **failure.details}


def retry_delay(
    policy: RetryPolicy, attempt: int, failure: ActionFailed, rng: random.Random
) -> float | None:
    """Seconds to wait before trying again after failed attempt number `attempt`, or
    None when the policy does not try again: ``delay * backoff^(n-1)``, capped, ±10 %."""
    if policy.retry_on is None:
        allowed = failure.retryable
    else:
        allowed = retry_allowed(policy.retry_on, error_of(failure))
    if not allowed or attempt > policy.count:
        return None
    delay = min(policy.delay * policy.backoff ** (attempt - 1), policy.max_delay)
    return max(0.0, min(delay * rng.uniform(0.9, 1.1), policy.max_delay))


def child_of(result: Any) -> str | None:
    """The child instance a workflow_trigger attempt names, whatever its outcome."""
    if isinstance(result, AwaitDecision):
        found = result.waiting_for.get("child_instance")
    elif isinstance(result, ActionFailed):
        found = result.details.get("child_instance")
    else:
        found = result.get("child_instance") if isinstance(result, dict) else None
    return found if isinstance(found, str) else None


@readonly_dataclass
class Seen:
    """What the account of an attempt may consult: the task's record as folded, the
    context its parameters were rendered in, and values set by hand."""

    task: Mapping[str, Any]
    context: Mapping[str, Any]
    overrides: Mapping[str, Any] | None = None


@readonly_dataclass
class Outcome:
    """The events an attempt leaves, and when to retry it (None: no retry)."""

    events: list[Record]
    retry_after: float | None = None


def task_events(
    spec: TaskSpec,
    number: int,
    ended: Ended,
    *,
    may_retry: bool,
    rng: random.Random,
    linked_child: str | None,
    seen: Seen | None = None,
    interrupted: int = 0,
) -> Outcome:
    """The journal's account of attempt `number` of `spec`'s task: a repeating task's
    iteration, a failure for good with its inputs (when `seen` tells them). `interrupted`
    earlier attempts were cut short by a stop: they do not count against its retries."""
    task_id, result, worker = spec.id, ended.result, ended.worker
    duration = round(ended.duration, 6)
    recorded: list[Record] = []
    if isinstance(result, AttemptLost):  # not the task's failure: it runs again at once
        recorded.append(ev.task_lost(task_id, number, duration, result.worker, result.reason))
        return Outcome(recorded, 0.0 if may_retry else None)
    child = child_of(result)
    if child and child != linked_child:
        recorded.append(ev.child_linked(task_id, child))
    if isinstance(result, AwaitDecision):
        recorded.append(ev.task_waiting(task_id, result.waiting_for))
        return Outcome(recorded)
    if not isinstance(result, ActionFailed) and spec.repeat is not None and seen is not None:
        events, again = iteration_events(
            spec, number, duration, result, task=seen.task, context=seen.context
        )
        return Outcome(recorded + events, again)
    if not isinstance(result, ActionFailed):
        recorded.append(
            ev.task_completed(task_id, number, duration, result, cached=ended.cached, worker=worker)
        )
        return Outcome(recorded)
    tried = attempt_in_iteration(seen.task, number) if seen is not None else number
    delay = retry_delay(spec.retry, tried - interrupted, result, rng) if may_retry else None
    if delay is not None:
        error = error_of(result)
        recorded.append(
            ev.task_retrying(task_id, number, duration, error, round(delay, 3), worker=worker)
        )
        return Outcome(recorded, delay)
    inputs = attempt_inputs(spec, seen.context, seen.overrides) if seen is not None else None
    recorded.append(
        ev.task_failed(task_id, number, duration, error_of(result), inputs=inputs, worker=worker)
    )
    return Outcome(recorded)


def item_events(
    spec: TaskSpec,
    index: int,
    number: int,
    ended: Ended,
    *,
    may_retry: bool,
    rng: random.Random,
    seen: Seen,
    linked_child: str | None = None,
) -> Outcome:
    """The journal's account of attempt `number` of item `index` of a for_each task
    (retried by the task's policy, item by item); a child instance an item triggered is
    linked as ``TASK.K``."""
    task_id, result = spec.id, ended.result
    duration = round(ended.duration, 6)
    recorded: list[Record] = []
    if isinstance(result, AttemptLost):  # its worker died: the item runs again at once
        lost = {"message": result.reason, "kind": "lost", "worker": result.worker}
        recorded.append(ev.item_retrying(task_id, index, number, duration, lost, 0.0))
        return Outcome(recorded, 0.0 if may_retry else None)
    child = child_of(result)
    if child and child != linked_child:
        recorded.append(ev.child_linked(f"{task_id}.{index}", child))
    if isinstance(result, AwaitDecision):
        result = ActionFailed(
            "an item of a for_each task cannot wait (for a decision or a child instance)",
            kind="usage",
            retryable=False,
        )
    if not isinstance(result, ActionFailed):
        completed = ev.item_completed(task_id, index, number, duration, result, cached=ended.cached)
        recorded.append(completed)
        return Outcome(recorded)
    delay = retry_delay(spec.retry, number, result, rng) if may_retry else None
    error = error_of(result)
    if delay is not None:
        recorded.append(ev.item_retrying(task_id, index, number, duration, error, round(delay, 3)))
        return Outcome(recorded, delay)
    inputs = attempt_inputs(spec, seen.context, seen.overrides)
    recorded.append(ev.item_failed(task_id, index, number, duration, error, inputs=inputs))
    return Outcome(recorded)
