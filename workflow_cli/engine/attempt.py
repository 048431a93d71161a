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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from workflow_cli.definition.expressions import evaluate_condition, render_value
from workflow_cli.definition.model import CompensationSpec, RetryPolicy, TaskSpec
from workflow_cli.definition.retry_policy import retry_allowed
from workflow_cli.engine import cache
from workflow_cli.engine.actions.base import (
    Action,
    ActionFailed,
    AwaitDecision,
    TaskCall,
    invoke_action,
)
from workflow_cli.engine.cache import cache_key
from workflow_cli.engine.executor import CancelFlag
from workflow_cli.engine.scheduler import Fail, Skip
from workflow_cli.errors import ExpressionError, WorkflowCliError
from workflow_cli.store import events as ev
from workflow_cli.store.events import ErrorInfo
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.secrets import Masker
from workflow_cli.store.state import DONE_TASK_STATES, State
from workflow_cli.store.workspace import Workspace

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
    `state`), ``instance`` and ``secrets``."""
    return {
        "params": params,
        "steps": StepsView(state["tasks"]),
        "instance": {"id": state["id"]},
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
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
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


@dataclass
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
    )


@dataclass(frozen=True)
class CachePlan:
    """How an attempt's result is looked up in and kept in the result cache."""

    key: str
    ttl: float | None
    masker: Masker | None
    clock: Clock


@dataclass(frozen=True)
class Ended:
    """What one attempt came to: its output, an `ActionFailed` or an `AwaitDecision`;
    for an output reused from the cache, where it came from."""

    result: Any
    duration: float
    cached: dict[str, Any] | None = None


def run_call(action: Action, call: TaskCall | ActionFailed) -> Ended:
    """Run one attempt (a call that could not be prepared ends at once, failed)."""
    if isinstance(call, ActionFailed):
        return Ended(call, 0.0)
    plan: CachePlan | None = call.cache
    if plan is not None:
        hit = cache.lookup(call.workspace, plan.key, now=plan.clock(), ttl=plan.ttl)
        if hit is not None:
            call.log.close()
            return Ended(hit.output, 0.0, cached=hit.origin())
    started = time.perf_counter()
    try:
        result = invoke_action(action, call)
    finally:
        call.log.close()
    ended = Ended(result, time.perf_counter() - started)
    if plan is not None and not isinstance(result, ActionFailed | AwaitDecision):
        output = plan.masker.stored(result) if plan.masker else result
        when = plan.clock().isoformat(timespec="seconds")
        entry = cache.CacheEntry(plan.key, output, call.instance_id, call.task_id, when)
        with contextlib.suppress(OSError, WorkflowCliError):  # a cache that cannot be kept
            cache.store(call.workspace, entry)  # costs a later run, never this one
    return ended


# -- what it leaves behind -------------------------------------------------------------------


def check_conditions(spec: TaskSpec, context: Mapping[str, Any]) -> Skip | Fail | None:
    """The verdict on a task's conditions once its dependencies let it run: None when
    they hold, a skip naming the first that does not, a failure when one cannot be
    evaluated."""
    try:
        false = [c for c in spec.conditions if not evaluate_condition(c, context)]
    except ExpressionError as exc:
        return Fail(spec.id, f"condition: {exc.message}")
    return Skip(spec.id, f"condition is false: {false[0]}") if false else None


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


@dataclass(frozen=True)
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
    interrupted: int = 0,
) -> Outcome:
    """The journal's account of attempt `number` of `spec`'s task. `interrupted` earlier
    attempts were cut short by a stop: they do not count against its retries."""
    task_id, result = spec.id, ended.result
    duration = round(ended.duration, 6)
    recorded: list[Record] = []
    child = child_of(result)
    if child and child != linked_child:
        recorded.append(ev.child_linked(task_id, child))
    if isinstance(result, AwaitDecision):
        recorded.append(ev.task_waiting(task_id, result.waiting_for))
        return Outcome(recorded)
    if not isinstance(result, ActionFailed):
        recorded.append(ev.task_completed(task_id, number, duration, result, cached=ended.cached))
        return Outcome(recorded)
    delay = retry_delay(spec.retry, number - interrupted, result, rng) if may_retry else None
    if delay is not None:
        recorded.append(
            ev.task_retrying(task_id, number, duration, error_of(result), round(delay, 3))
        )
        return Outcome(recorded, delay)
    recorded.append(ev.task_failed(task_id, number, duration, error_of(result)))
    return Outcome(recorded)
