"""The runner: executes one instance's tasks, in dependency order and in parallel.

Scheduling is event-driven: a task becomes ready the moment its last dependency is
settled and starts as soon as a worker slot is free, highest ``priority`` first; a
``sequential`` task runs alone. Work is handed to an `Executor`; the scheduler itself
runs on one thread and is the only writer of the journal while it holds the run lock.

Every change is an event in the journal. Completions that arrive together are written
in one batch and fsynced once, before any task that depends on them starts. The runner
never prints: it hands every event it writes to a `Reporter`.

What a failed task does to the rest (``on_failure``):

- ``fail`` (default): a ``critical`` task (the default) fails the workflow: nothing new
  starts, tasks in flight finish, the instance ends ``failed``. A non-critical one only
  skips the tasks that depend on it.
- ``skip``: the tasks that depend on it are skipped; the workflow goes on.
- ``continue``: the tasks that depend on it run (they see ``steps.ID.state == "failed"``).

A task whose ``conditions`` are false is skipped; a task whose dependencies were all
skipped is skipped too, unless it sets ``run_if_dependencies_skipped``.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import queue
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workflow_cli.definition.expressions import evaluate_condition, render_value
from workflow_cli.definition.validation import conditions_of
from workflow_cli.engine.actions import get_action
from workflow_cli.engine.actions.base import Action, ActionFailed, AwaitDecision, TaskCall
from workflow_cli.engine.executor import Executor, ThreadExecutor
from workflow_cli.errors import (
    ExitCode,
    ExpressionError,
    StateError,
    WorkflowCliError,
)
from workflow_cli.store.instances import (
    load_definition,
    load_state,
    open_journal,
    save_state_cache,
)
from workflow_cli.store.journal import Clock, Event, Journal
from workflow_cli.store.runlock import RunLock
from workflow_cli.store.state import DONE_TASK_STATES, FINAL_INSTANCE_STATES, State, fold
from workflow_cli.store.workspace import Workspace

# Events after which nothing may act before they are on disk.
_DURABLE_EVENTS = frozenset(
    {
        "task_completed",
        "task_failed",
        "task_retrying",
        "task_waiting",
        "task_skipped",
        "run_started",
        "run_ended",
    }
)
_DEFAULTS: dict[str, Any] = {
    "timeout_seconds": None,
    "retry_count": 0,
    "retry_delay": 1.0,
    "retry_backoff": 2.0,
    "max_retry_delay": 300.0,
    "execution_mode": "parallel",
    "critical": True,
    "on_failure": "fail",
    "priority": 0,
}
# How long past its own timeout an attempt may run before the runner gives up on it
# (actions enforce their timeout themselves; this is the backstop).
_TIMEOUT_GRACE = 2.0


class Reporter(Protocol):
    """Receives every event the runner writes, with the state after them."""

    def on_events(self, events: list[Event], state: State) -> None: ...


class NullReporter:
    def on_events(self, events: list[Event], state: State) -> None:
        pass


@dataclass(frozen=True)
class RunOptions:
    max_workers: int = 4
    poll_interval: float = 0.2
    state_cache_interval: float = 1.0


@dataclass(frozen=True)
class RunOutcome:
    instance_id: str
    state: str
    reason: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.state == "completed":
            return ExitCode.OK
        if self.state == "waiting":
            return ExitCode.WAITING
        if self.state == "paused":
            return ExitCode.INTERRUPTED
        return ExitCode.WORKFLOW_FAILED


@dataclass
class TaskPlan:
    """A task's definition with the workflow's defaults filled in."""

    id: str
    order: int
    action: Action
    agent_id: str | None
    parameters: dict[str, Any]
    dependencies: list[str]
    conditions: list[str]
    timeout: float | None
    retry_count: int
    retry_delay: float
    retry_backoff: float
    max_retry_delay: float
    execution_mode: str
    critical: bool
    on_failure: str
    priority: int
    run_if_dependencies_skipped: bool

    def retry_delay_for(self, attempt: int, rng: random.Random) -> float:
        """Delay before the attempt after `attempt`: delay * backoff^(n-1), capped, ±10%."""
        delay = self.retry_delay * self.retry_backoff ** (attempt - 1)
        delay = min(delay, self.max_retry_delay)
        return max(0.0, min(delay * rng.uniform(0.9, 1.1), self.max_retry_delay))


def plan_tasks(definition: dict[str, Any]) -> dict[str, TaskPlan]:
    defaults = {**_DEFAULTS, **(definition.get("defaults") or {})}
    plans = {}
    for order, (task_id, task) in enumerate(definition["tasks"].items()):
        setting = {**defaults, **{k: v for k, v in task.items() if k in _DEFAULTS}}
        plans[task_id] = TaskPlan(
            id=task_id,
            order=order,
            action=get_action(task["action"]),
            agent_id=task.get("agent_id"),
            parameters=task.get("parameters") or {},
            dependencies=list(task.get("dependencies") or []),
            conditions=conditions_of(task),
            timeout=setting["timeout_seconds"],
            retry_count=setting["retry_count"],
            retry_delay=setting["retry_delay"],
            retry_backoff=setting["retry_backoff"],
            max_retry_delay=setting["max_retry_delay"],
            execution_mode=setting["execution_mode"],
            critical=setting["critical"],
            on_failure=setting["on_failure"],
            priority=setting["priority"],
            run_if_dependencies_skipped=bool(task.get("run_if_dependencies_skipped", False)),
        )
    return plans


class TaskLog:
    """A task's log file, opened only when something is written to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def _open(self) -> Any:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return self._handle

    def write(self, text: str, /) -> int:
        return int(self._open().write(text))

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def fileno(self) -> int:
        return int(self._open().fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


@dataclass
class _Attempt:
    attempt: int
    started: float
    deadline: float | None
    cancel: threading.Event = field(default_factory=threading.Event)


_Result = tuple[str, int, Any, float]  # task, attempt, output | ActionFailed | AwaitDecision, s


class Runner:
    """Runs one instance until it completes, fails, or waits for a person."""

    def __init__(
        self,
        workspace: Workspace,
        instance_id: str,
        *,
        clock: Clock,
        reporter: Reporter | None = None,
        options: RunOptions | None = None,
        executor: Executor | None = None,
        services: Any = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.instance_id = instance_id
        self.clock = clock
        self.reporter = reporter or NullReporter()
        self.options = options or RunOptions()
        self.executor = executor or ThreadExecutor()
        self.services = services
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.instance_dir = workspace.instance_dir(instance_id)
        self.results: queue.SimpleQueue[_Result] = queue.SimpleQueue()

    # -- entry ----------------------------------------------------------------------

    def run(self) -> RunOutcome:
        lock = RunLock(self.instance_dir)
        lock.acquire(self.instance_id)
        try:
            return self._run_locked()
        finally:
            lock.release()
            self.executor.shutdown()
            if hasattr(self, "journal"):
                self.journal.close()

    def _run_locked(self) -> RunOutcome:
        self.journal: Journal = open_journal(self.workspace, self.instance_id, self.clock)
        self.state: State = load_state(self.journal, use_cache=False)
        if self.state["state"] in FINAL_INSTANCE_STATES:
            raise StateError(
                f"instance {self.instance_id} is {self.state['state']}; there is nothing to run"
            )
        definition = load_definition(self.workspace, self.instance_id)
        self.plans = plan_tasks(definition)
        self.context: dict[str, Any] = {
            "params": definition.get("params") or {},
            "steps": {},
            "instance": {"id": self.instance_id},
        }
        self.records: list[Event] = []
        self.to_submit: list[tuple[str, Callable[[], None]]] = []
        self.batch_settled: set[str] = set()  # settled since the last write
        self.running: dict[str, _Attempt] = {}
        self.ready: list[tuple[int, int, str]] = []
        self.timers: list[tuple[float, str]] = []
        self.settled: list[str] = []
        self.failing: str | None = None
        self.last_cache = self.monotonic()
        self.status: dict[str, str] = {}  # filled once run_started is folded, below
        self._record(
            {
                "type": "run_started",
                "pid": os.getpid(),
                "recovered": self.state["state"] == "running",
            }
        )
        self._flush()  # folds run_started: tasks that were in flight are pending again
        tasks = self.state["tasks"]
        self.status = {t: tasks[t]["state"] for t in self.plans}
        self.attempts = {t: tasks[t]["attempts"] for t in self.plans}
        self.dependents: dict[str, list[str]] = {t: [] for t in self.plans}
        self.remaining: dict[str, int] = {}
        for task_id, plan in self.plans.items():
            if self.status[task_id] in DONE_TASK_STATES:
                self._set_step(task_id, tasks[task_id])
            for dep in plan.dependencies:
                self.dependents[dep].append(task_id)
            self.remaining[task_id] = sum(
                1 for dep in plan.dependencies if self.status[dep] not in DONE_TASK_STATES
            )
        for task_id in self.plans:
            if self.status[task_id] == "waiting":
                self._start(task_id)  # a decision may have come while no runner ran
            elif self.status[task_id] == "pending" and self.remaining[task_id] == 0:
                self._resolve(task_id)
        try:
            self._loop()
            state, reason = self._final_state()
        except KeyboardInterrupt:
            for attempt in self.running.values():
                attempt.cancel.set()
            state, reason = "paused", "interrupted"
        self._record({"type": "run_ended", "state": state, "reason": reason})
        self._flush()
        save_state_cache(self.journal, self.state, durable=True)
        return RunOutcome(self.instance_id, state, reason)

    # -- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._propagate()
            self._fire_timers()
            self._launch_ready()
            self._flush()
            if not self.running and (self.failing or not (self.timers or self._launchable())):
                return
            now = self.monotonic()
            wake = now + self.options.poll_interval
            if self.timers:
                wake = min(wake, self.timers[0][0])
            for attempt in self.running.values():
                if attempt.deadline is not None:
                    wake = min(wake, attempt.deadline)
            try:
                batch = [self.results.get(timeout=max(0.0, wake - now))]
            except queue.Empty:
                batch = []
                if not self.records:
                    self._poll_external()
            while True:
                try:
                    batch.append(self.results.get_nowait())
                except queue.Empty:
                    break
            for task_id, attempt_no, result, duration in batch:
                current = self.running.get(task_id)
                if current is None or current.attempt != attempt_no:
                    continue  # an attempt already given up on (timed out)
                del self.running[task_id]
                self._finish(task_id, attempt_no, result, duration)
            self._expire_deadlines()

    def _launchable(self) -> bool:
        return bool(self.ready) or bool(self.settled)

    def _propagate(self) -> None:
        """Settle the dependents of tasks that have just finished."""
        while self.settled:
            task_id = self.settled.pop()
            for dependent in self.dependents[task_id]:
                self.remaining[dependent] -= 1
                if (
                    self.remaining[dependent] == 0
                    and self.status[dependent] == "pending"
                    and not self.failing
                ):
                    self._resolve(dependent)

    def _resolve(self, task_id: str) -> None:
        """All of `task_id`'s dependencies are settled: skip it, fail it, or make it ready."""
        plan = self.plans[task_id]
        for dep in plan.dependencies:
            if self.status[dep] == "failed" and self.plans[dep].on_failure != "continue":
                self._skip(task_id, f"dependency '{dep}' failed")
                return
        if (
            plan.dependencies
            and not plan.run_if_dependencies_skipped
            and all(self.status[dep] in ("skipped", "cancelled") for dep in plan.dependencies)
        ):
            self._skip(task_id, "all its dependencies were skipped")
            return
        try:
            false = [c for c in plan.conditions if not evaluate_condition(c, self.context)]
        except ExpressionError as exc:
            failure = ActionFailed(f"condition: {exc.message}", kind="expression", retryable=False)
            self._finish(task_id, self.attempts[task_id] + 1, failure, 0.0)
            return
        if false:
            self._skip(task_id, f"condition is false: {false[0]}")
            return
        heapq.heappush(self.ready, (-plan.priority, plan.order, task_id))

    def _launch_ready(self) -> None:
        while self.ready and not self.failing:
            if len(self.running) >= self.options.max_workers:
                return
            if any(self.plans[t].execution_mode == "sequential" for t in self.running):
                return
            task_id = self.ready[0][2]
            if self.plans[task_id].execution_mode == "sequential" and self.running:
                return
            heapq.heappop(self.ready)
            self._start(task_id)
            self._propagate()  # inline tasks finish at once and may make others ready

    def _fire_timers(self) -> None:
        now = self.monotonic()
        while self.timers and self.timers[0][0] <= now and not self.failing:
            _, task_id = heapq.heappop(self.timers)
            plan = self.plans[task_id]
            heapq.heappush(self.ready, (-plan.priority, plan.order, task_id))

    def _expire_deadlines(self) -> None:
        now = self.monotonic()
        for task_id, attempt in list(self.running.items()):
            if attempt.deadline is not None and now >= attempt.deadline:
                attempt.cancel.set()
                del self.running[task_id]
                timeout = self.plans[task_id].timeout
                failure = ActionFailed(
                    f"timed out after {timeout:g}s (the attempt was abandoned)", kind="timeout"
                )
                self._finish(task_id, attempt.attempt, failure, now - attempt.started)

    # -- one task -------------------------------------------------------------------

    def _start(self, task_id: str) -> None:
        plan = self.plans[task_id]
        attempt_no = self.attempts[task_id] + 1
        try:
            parameters = render_value(plan.parameters, self.context)
        except ExpressionError as exc:
            failure = ActionFailed(f"parameters: {exc.message}", kind="expression", retryable=False)
            self._finish(task_id, attempt_no, failure, 0.0)
            return
        log = TaskLog(self.instance_dir / "logs" / f"{task_id}.log")
        if plan.action.inline:
            call = self._call(task_id, attempt_no, plan, parameters, log, threading.Event())
            started = time.perf_counter()
            result = _invoke(plan.action, call)
            log.close()
            if not isinstance(result, AwaitDecision):
                self._record({"type": "task_started", "task": task_id, "attempt": attempt_no})
                self.attempts[task_id] = attempt_no
            self._finish(task_id, attempt_no, result, time.perf_counter() - started)
            return
        self._record({"type": "task_started", "task": task_id, "attempt": attempt_no})
        self.status[task_id] = "running"
        self.attempts[task_id] = attempt_no
        now = self.monotonic()
        deadline = now + plan.timeout + _TIMEOUT_GRACE if plan.timeout else None
        attempt = _Attempt(attempt_no, now, deadline)
        self.running[task_id] = attempt
        call = self._call(task_id, attempt_no, plan, parameters, log, attempt.cancel)
        results = self.results

        def work() -> None:
            started = time.perf_counter()
            try:
                result = _invoke(plan.action, call)
            finally:
                log.close()
            results.put((task_id, attempt_no, result, time.perf_counter() - started))

        self.to_submit.append((task_id, work))

    def _call(
        self,
        task_id: str,
        attempt: int,
        plan: TaskPlan,
        parameters: dict[str, Any],
        log: TaskLog,
        cancel: threading.Event,
    ) -> TaskCall:
        decisions = [a for a in self.state.get("approvals", []) if a["task"] == task_id]
        return TaskCall(
            workspace=self.workspace,
            instance_id=self.instance_id,
            task_id=task_id,
            attempt=attempt,
            agent_id=plan.agent_id,
            parameters=parameters,
            timeout=plan.timeout,
            log=log,
            log_path=log.path,
            cancel=cancel,
            context=self.context,
            decisions=decisions,
            services=self.services,
        )

    def _finish(self, task_id: str, attempt: int, result: Any, duration: float) -> None:
        plan = self.plans[task_id]
        rounded = round(duration, 6)
        child = _child_of(result)
        if child and self.state.get("children", {}).get(task_id) != child:
            self._record({"type": "child_linked", "task": task_id, "child": child})
        if isinstance(result, AwaitDecision):
            self.status[task_id] = "waiting"
            self._record(
                {"type": "task_waiting", "task": task_id, "waiting_for": result.waiting_for}
            )
            return
        if not isinstance(result, ActionFailed):
            self.status[task_id] = "completed"
            self._record(
                {
                    "type": "task_completed",
                    "task": task_id,
                    "attempt": attempt,
                    "duration": rounded,
                    "output": result,
                }
            )
            self.context["steps"][task_id] = {"state": "completed", "output": result}
            self._settle(task_id)
            return
        error = {"message": result.message, "kind": result.kind, **result.details}
        if result.retryable and attempt <= plan.retry_count and not self.failing:
            delay = plan.retry_delay_for(attempt, self.rng)
            self.status[task_id] = "retrying"
            self._record(
                {
                    "type": "task_retrying",
                    "task": task_id,
                    "attempt": attempt,
                    "duration": rounded,
                    "error": error,
                    "delay": round(delay, 3),
                }
            )
            heapq.heappush(self.timers, (self.monotonic() + delay, task_id))
            return
        self.status[task_id] = "failed"
        self._record(
            {
                "type": "task_failed",
                "task": task_id,
                "attempt": attempt,
                "duration": rounded,
                "error": error,
            }
        )
        self.context["steps"][task_id] = {"state": "failed", "output": None, "error": error}
        if plan.on_failure == "fail" and plan.critical and not self.failing:
            self.failing = f"task '{task_id}' failed: {result.message}"
        self._settle(task_id)

    def _skip(self, task_id: str, reason: str) -> None:
        self.status[task_id] = "skipped"
        self._record({"type": "task_skipped", "task": task_id, "reason": reason})
        self.context["steps"][task_id] = {"state": "skipped", "output": None}
        self._settle(task_id)

    def _settle(self, task_id: str) -> None:
        self.settled.append(task_id)
        self.batch_settled.add(task_id)

    def _set_step(self, task_id: str, task: dict[str, Any]) -> None:
        step = {"state": task["state"], "output": task.get("output")}
        if task.get("error"):
            step["error"] = task["error"]
        self.context["steps"][task_id] = step

    def _final_state(self) -> tuple[str, str | None]:
        if self.failing:
            return "failed", self.failing
        waiting = [t for t, s in self.status.items() if s == "waiting"]
        if waiting:
            return "waiting", f"waiting for approval: {', '.join(waiting)}"
        stuck = [t for t, s in self.status.items() if s not in DONE_TASK_STATES]
        if stuck:
            return "failed", f"tasks could not be scheduled: {', '.join(stuck)}"
        return "completed", None

    # -- the journal ----------------------------------------------------------------

    def _record(self, record: Event) -> None:
        self.records.append(record)

    def _flush(self) -> None:
        """Write the records gathered so far in one batch, then hand out the work.

        Every task's start is written before it runs. A task that depends on something
        settled in this batch starts only once the batch is synced to disk; any other
        task may start while the sync is under way."""
        submit, self.to_submit = self.to_submit, []
        settled, self.batch_settled = self.batch_settled, set()
        records, self.records = self.records, []
        durable = any(r["type"] in _DURABLE_EVENTS for r in records)
        written: list[Event] = []
        if records:
            external, written = self.journal.append(records, durable=False)
            self._take_external(external)
            fold(written, self.state)
        later = []
        for task_id, work in submit:
            if settled.isdisjoint(self.plans[task_id].dependencies):
                self.executor.submit(work)
            else:
                later.append(work)
        if durable:
            self.journal.sync()
        if written:
            self.reporter.on_events(written, self.state)
        for work in later:
            self.executor.submit(work)
        now = self.monotonic()
        if now - self.last_cache >= self.options.state_cache_interval:
            self.last_cache = now
            save_state_cache(self.journal, self.state)

    def _poll_external(self) -> None:
        try:
            size = os.stat(self.journal.path).st_size
        except OSError:
            return
        if size != self.journal.offset:
            with self.journal.locked():
                self._take_external(self.journal.read_new())

    def _take_external(self, events: list[Event]) -> None:
        """Fold what other commands appended; a decision wakes its waiting task."""
        if not events:
            return
        fold(events, self.state)
        self.reporter.on_events(events, self.state)
        for event in events:
            task_id = event.get("task")
            if (
                event["type"] == "approval_recorded"
                and task_id in self.status
                and self.status[task_id] == "waiting"
            ):
                self._start(task_id)


def _child_of(result: Any) -> str | None:
    """The child instance a workflow_trigger attempt names, whatever its outcome."""
    if isinstance(result, AwaitDecision):
        found = result.waiting_for.get("child_instance")
    elif isinstance(result, ActionFailed):
        found = result.details.get("child_instance")
    else:
        found = result.get("child_instance") if isinstance(result, dict) else None
    return found if isinstance(found, str) else None


def _invoke(action: Action, call: TaskCall) -> Any:
    """Run one attempt; every way it can end becomes a value, never an escaping exception."""
    try:
        output = action.run(call)
    except (ActionFailed, AwaitDecision) as exc:
        return exc
    except WorkflowCliError as exc:
        return ActionFailed(exc.message, kind=type(exc).__name__, retryable=False)
    except Exception as exc:
        with contextlib.suppress(OSError):
            call.log.write(traceback.format_exc())
        return ActionFailed(f"{type(exc).__name__}: {exc}", kind="error")
    try:
        json.dumps(output)
    except (TypeError, ValueError) as exc:
        return ActionFailed(
            f"the output is not JSON data: {exc}", kind="bad_output", retryable=False
        )
    return output
