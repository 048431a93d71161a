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

import heapq
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from workflow_cli.definition.expressions import evaluate_condition, render_value
from workflow_cli.definition.retry_policy import retry_allowed
from workflow_cli.definition.validation import conditions_of
from workflow_cli.engine.actions import get_action
from workflow_cli.engine.actions.base import (
    Action,
    ActionFailed,
    AwaitDecision,
    TaskCall,
    invoke_action,
)
from workflow_cli.engine.agents import kill_orphan_agents
from workflow_cli.engine.attempts import TaskLog, build_context, step_of
from workflow_cli.engine.compensation import run_compensations
from workflow_cli.engine.executor import Executor, ThreadExecutor
from workflow_cli.errors import (
    ExitCode,
    ExpressionError,
    StateError,
)
from workflow_cli.store.checkpoints import write_checkpoint
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
        "task_interrupted",
        "task_cancelled",
        "run_started",
        "run_ended",
        "compensation_completed",
        "compensation_failed",
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
    "retry_on": None,
}
# How long past its own timeout an attempt may run before the runner gives up on it
# (actions enforce their timeout themselves; this is the backstop).
_TIMEOUT_GRACE = 2.0
# How long a run that is ending waits for interrupted attempts to let go (a command
# agent notices within a tenth of a second and has its process group killed).
_DRAIN_SECONDS = 5.0


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
    checkpoint_interval: int | None = None  # overrides the definition's
    handle_signals: bool = True  # SIGINT/SIGTERM stop the run (when on the main thread)


@dataclass(frozen=True)
class RunOutcome:
    instance_id: str
    state: str
    reason: str | None = None
    needs_person: bool = False  # paused on a failure: retry, skip, rollback or cancel

    @property
    def exit_code(self) -> ExitCode:
        if self.state == "completed":
            return ExitCode.OK
        if self.state == "waiting":
            return ExitCode.WAITING
        if self.state in ("paused", "cancelled") and not self.needs_person:
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
    retry_on: list[str] | None
    milestone: bool

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
            retry_on=setting["retry_on"],
            milestone=bool(task.get("milestone", False)),
        )
    return plans


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
        restore = self._handle_signals()
        try:
            return self._run_locked()
        finally:
            for signum, handler in restore:
                signal.signal(signum, handler)
            lock.release()
            self.executor.shutdown()
            if hasattr(self, "journal"):
                self.journal.close()

    def _handle_signals(self) -> list[tuple[int, Any]]:
        """SIGINT (Ctrl-C) and SIGTERM stop the run like ``workflow_cli stop``: nothing new
        starts and tasks in flight finish. A second one interrupts them at once."""
        self.signals = 0
        if not self.options.handle_signals or threading.current_thread() is not (
            threading.main_thread()
        ):
            return []

        def count(signum: int, frame: Any) -> None:
            self.signals += 1

        restore: list[tuple[int, Any]] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            restore.append((signum, signal.signal(signum, count)))
        return restore

    def _run_locked(self) -> RunOutcome:
        self.journal: Journal = open_journal(self.workspace, self.instance_id, self.clock)
        self.state: State = load_state(self.journal, use_cache=False)
        if self.state["state"] in FINAL_INSTANCE_STATES:
            raise StateError(why_not_runnable(self.instance_id, self.state["state"]))
        self.definition = definition = load_definition(self.workspace, self.instance_id)
        self.plans = plan_tasks(definition)
        self.on_failure = definition.get("on_failure", "fail")
        self.checkpoint_interval = self.options.checkpoint_interval or definition.get(
            "checkpoint_interval"
        )
        self.context: dict[str, Any] = build_context(definition, {**self.state, "tasks": {}})
        self.records: list[Event] = []
        self.to_submit: list[tuple[str, Callable[[], None]]] = []
        self.batch_settled: set[str] = set()  # settled since the last write
        self.running: dict[str, _Attempt] = {}
        self.ready: list[tuple[int, int, str]] = []
        self.timers: list[tuple[float, str]] = []
        self.settled: list[str] = []
        self.failing: str | None = None  # the run fails once tasks in flight finish
        self.pausing: str | None = None  # a failure waits for a person (on_failure: pause)
        self.stopping: str | None = None  # stop requested, or Ctrl-C
        self.stop_deadline: float | None = None  # then tasks in flight are interrupted
        self.cancelling: str | None = None
        self.signals_seen = 0
        self.draining: set[tuple[str, int]] = set()  # interrupted attempts not yet returned
        self.checkpoint_requests: list[tuple[str, str | None]] = []
        self.completions = 0
        self.last_cache = self.monotonic()
        orphans = kill_orphan_agents(self.instance_dir)
        self.status: dict[str, str] = {}  # filled once run_started is folded, below
        self._record(
            {
                "type": "run_started",
                "pid": os.getpid(),
                "recovered": self.state["state"] == "running",
                **({"orphans_killed": orphans} if orphans else {}),
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
                self.context["steps"][task_id] = step_of(tasks[task_id])
            if self.status[task_id] == "failed":
                self._consequence_of_failure(task_id, tasks[task_id].get("error") or {})
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
        self._loop()
        self._drain()
        state, reason = self._final_state()
        if self.on_failure == "compensate" and state in ("failed", "cancelled"):
            self._compensate()
        if state == "paused" and self.stopping:
            self.checkpoint_requests.append(("stop", self.stopping))
        self._flush()
        self._record({"type": "run_ended", "state": state, "reason": reason})
        self._flush()
        save_state_cache(self.journal, self.state, durable=True)
        needs_person = state == "paused" and bool(self.pausing) and not self.stopping
        return RunOutcome(self.instance_id, state, reason, needs_person)

    @property
    def halted(self) -> bool:
        """Nothing new starts: the run is failing, pausing, stopping or cancelling."""
        return bool(self.failing or self.pausing or self.stopping or self.cancelling)

    # -- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._poll_external()  # a stop or cancel must be seen before anything new starts
            self._check_stop()
            self._propagate()
            self._fire_timers()
            self._launch_ready()
            self._flush()
            if not self.running and (self.halted or not (self.timers or self._launchable())):
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
            while True:
                try:
                    batch.append(self.results.get_nowait())
                except queue.Empty:
                    break
            for task_id, attempt_no, result, duration in batch:
                current = self.running.get(task_id)
                if current is None or current.attempt != attempt_no:
                    self.draining.discard((task_id, attempt_no))
                    continue  # an attempt already given up on (timed out or interrupted)
                del self.running[task_id]
                self._finish(task_id, attempt_no, result, duration)
            self._expire_deadlines()

    def _check_stop(self) -> None:
        """Act on Ctrl-C / SIGTERM, and interrupt tasks in flight once a stop's grace ends."""
        if self.signals > self.signals_seen:
            first = self.signals_seen == 0
            self.signals_seen = self.signals
            if first and not self.stopping:
                by = "a signal (Ctrl-C or SIGTERM)"
                self._record({"type": "stop_requested", "by": by, "grace": None})
                self._begin_stop(f"stopped by {by}", grace=None)
            else:
                self.stop_deadline = self.monotonic()  # a second one: interrupt at once
        if self.stop_deadline is not None and self.monotonic() >= self.stop_deadline:
            for task_id in list(self.running):
                self._interrupt(task_id, "task_interrupted", "the run was stopped")

    def _begin_stop(self, reason: str, grace: float | None) -> None:
        self.stopping = self.stopping or reason
        if grace is not None:
            deadline = self.monotonic() + grace
            self.stop_deadline = min(self.stop_deadline or deadline, deadline)

    def _cancel(self, reason: str) -> None:
        """End every task that is not finished: in flight (their process groups are
        killed), retrying, waiting or pending."""
        self.cancelling = reason
        for task_id in list(self.running):
            self._interrupt(task_id, "task_cancelled", reason)
        self.ready.clear()
        self.timers.clear()
        for task_id, task_state in self.status.items():
            if task_state not in DONE_TASK_STATES:
                self.status[task_id] = "cancelled"
                self._record({"type": "task_cancelled", "task": task_id, "reason": reason})

    def _interrupt(self, task_id: str, event_type: str, reason: str) -> None:
        attempt = self.running.pop(task_id)
        attempt.cancel.set()
        self.draining.add((task_id, attempt.attempt))
        self.status[task_id] = "pending" if event_type == "task_interrupted" else "cancelled"
        duration = round(self.monotonic() - attempt.started, 6)
        self._record(
            {
                "type": event_type,
                "task": task_id,
                "attempt": attempt.attempt,
                "duration": duration,
                "reason": reason,
            }
        )

    def _drain(self) -> None:
        """Give interrupted attempts a moment to end, so that no agent outlives the run."""
        deadline = self.monotonic() + _DRAIN_SECONDS
        while self.draining:
            wait = deadline - self.monotonic()
            if wait <= 0:
                return
            try:
                task_id, attempt_no, _, _ = self.results.get(timeout=wait)
            except queue.Empty:
                return
            self.draining.discard((task_id, attempt_no))

    def _compensate(self) -> None:
        """Run the compensations of completed tasks, newest completion first."""

        def record(events: list[Event]) -> None:
            for event in events:
                self._record(event)
            self._flush()

        run_compensations(
            self.workspace,
            self.definition,
            self.state,
            record,
            services=self.services,
            stop=lambda: self.signals > 1,  # a second Ctrl-C ends the series
        )

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
                    and not self.halted
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
        while self.ready and not self.halted:
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
        while self.timers and self.timers[0][0] <= now and not self.halted:
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
        # Values set by hand (resume --set) are data: applied after rendering, never rendered.
        parameters.update(self.state.get("overrides", {}).get(task_id) or {})
        log = TaskLog(self.instance_dir / "logs" / f"{task_id}.log")
        if plan.action.inline:
            call = self._call(task_id, attempt_no, plan, parameters, log, threading.Event())
            started = time.perf_counter()
            result = invoke_action(plan.action, call)
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
                result = invoke_action(plan.action, call)
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
            self.completions += 1
            if plan.milestone:
                self.checkpoint_requests.append(("milestone", task_id))
            if self.checkpoint_interval and self.completions % self.checkpoint_interval == 0:
                done = sum(1 for t in self.status.values() if t == "completed")
                self.checkpoint_requests.append(("auto", f"{done} tasks completed"))
            return
        error = {"message": result.message, "kind": result.kind, **result.details}
        retryable = (
            result.retryable if plan.retry_on is None else retry_allowed(plan.retry_on, error)
        )
        if retryable and attempt <= plan.retry_count and not self.halted:
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
        self.checkpoint_requests.append(("error", task_id))
        self._consequence_of_failure(task_id, error)
        self._settle(task_id)

    def _consequence_of_failure(self, task_id: str, error: dict[str, Any]) -> None:
        """A task failed for good: fail the run, pause it for a person, or neither."""
        plan = self.plans[task_id]
        stops_run = plan.on_failure == "fail" and plan.critical
        message = f"task '{task_id}' failed: {error.get('message', 'no message')}"
        if plan.on_failure == "pause" or (stops_run and self.on_failure == "pause"):
            self.pausing = self.pausing or (f"{message}; retry it, skip it, roll back or cancel")
        elif stops_run:
            self.failing = self.failing or message

    def _skip(self, task_id: str, reason: str) -> None:
        self.status[task_id] = "skipped"
        self._record({"type": "task_skipped", "task": task_id, "reason": reason})
        self.context["steps"][task_id] = {"state": "skipped", "output": None}
        self._settle(task_id)

    def _settle(self, task_id: str) -> None:
        self.settled.append(task_id)
        self.batch_settled.add(task_id)

    def _final_state(self) -> tuple[str, str | None]:
        if self.cancelling:
            return "cancelled", self.cancelling
        if self.failing:
            return "failed", self.failing
        if self.pausing:
            return "paused", self.pausing
        if self.stopping and any(s not in DONE_TASK_STATES for s in self.status.values()):
            return "paused", self.stopping
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
        if self.checkpoint_requests:
            self._write_checkpoints(durable)
        for work in later:
            self.executor.submit(work)
        now = self.monotonic()
        if now - self.last_cache >= self.options.state_cache_interval:
            self.last_cache = now
            save_state_cache(self.journal, self.state)

    def _write_checkpoints(self, synced: bool) -> None:
        """Write the checkpoints asked for; each stands for the journal as written so far
        (made durable first) and is noted in the journal's next batch."""
        requests, self.checkpoint_requests = self.checkpoint_requests, []
        if not synced:
            self.journal.sync()
        self.state["offset"] = self.journal.offset
        with self.journal.locked():
            for kind, label in requests:
                document = write_checkpoint(
                    self.workspace, self.state, kind=kind, label=label, now=self.clock()
                )
                self._record(
                    {
                        "type": "checkpoint_created",
                        "checkpoint": document["id"],
                        "kind": kind,
                        "label": label,
                        "at_seq": document["seq"],
                    }
                )

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
            if event["type"] == "stop_requested":
                by = event.get("by") or "another process"
                self._begin_stop(f"stopped by {by}", event.get("grace"))
            elif event["type"] == "cancel_requested" and not self.cancelling:
                self._cancel(f"cancelled by {event.get('by') or 'another process'}")
            elif (
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


def why_not_runnable(instance_id: str, state: str) -> str:
    """Why an instance in a final state cannot run."""
    if state == "cancelled":
        return f"instance {instance_id} was cancelled; a cancelled instance cannot be resumed"
    if state == "failed":
        return (
            f"instance {instance_id} failed; to go on, 'workflow_cli retry {instance_id}' "
            f"or 'workflow_cli skip {instance_id} --task T', or roll it back"
        )
    return f"instance {instance_id} is {state}; there is nothing to run"
