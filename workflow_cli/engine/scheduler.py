"""The scheduler: which tasks start, which are skipped, and when to wake for a retry.

It is handed the workflow (tasks and graph) and a live view of the tasks' states — the
folded journal, read only — and is told when a task settles, when an attempt lets go of
its worker slot and when a retry is due. `Scheduler.next` returns decisions: `Start`,
`Skip` or `Fail`. It never runs anything, reads no file and no clock of its own, and
never calls the runner: the runner carries the decisions out, records them, and tells
the scheduler what happened (the pattern of pydoit's task dispatcher).

Ordering: a task becomes ready the moment its last dependency is settled and starts as
soon as a worker slot is free, highest ``priority`` first, then definition order; a
``sequential`` task runs alone.

What a failed task does to the rest (``on_failure``):

- ``fail`` (default): a ``critical`` task (the default) fails the workflow: nothing new
  starts, tasks in flight finish, the instance ends ``failed``. A non-critical one only
  skips the tasks that depend on it.
- ``skip``: the tasks that depend on it are skipped; the workflow goes on.
- ``continue``: the tasks that depend on it run (they see ``steps.ID.state == "failed"``).
- ``pause``: the run stops for a person (so does a critical ``fail`` in a workflow whose
  own ``on_failure`` is ``pause``).

A task whose ``conditions`` are false is skipped; a task whose dependencies were all
skipped is skipped too, unless it sets ``run_if_dependencies_skipped``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workflow_cli.definition.model import TaskSpec, WorkflowSpec

DONE_STATES = frozenset({"completed", "failed", "skipped", "cancelled"})
# A live view of each task's record; the scheduler reads only its "state" and "error".
TaskStates = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Start:
    """Run an attempt of the task now (it holds a worker slot until released)."""

    task: str


@dataclass(frozen=True)
class Skip:
    task: str
    reason: str


@dataclass(frozen=True)
class Fail:
    """The task fails without running (its conditions cannot be evaluated)."""

    task: str
    message: str


Decision = Start | Skip | Fail
# Checks a task's conditions once its dependencies allow it to run: None when they hold.
ConditionCheck = Callable[[TaskSpec], Skip | Fail | None]


class Scheduler:
    """Decides the order of one run of an instance."""

    def __init__(
        self,
        workflow: WorkflowSpec,
        tasks: TaskStates,
        *,
        max_workers: int,
        check_conditions: ConditionCheck,
    ) -> None:
        self.workflow = workflow
        self.tasks = tasks
        self.max_workers = max_workers
        self.check_conditions = check_conditions
        self.running: set[str] = set()
        self.failing: str | None = None  # the run fails once the tasks in flight finish
        self.pausing: str | None = None  # a failure waits for a person
        self.stopping: str | None = None
        self.cancelling: str | None = None
        self._ready: list[tuple[int, int, str]] = []
        self._timers: list[tuple[float, int, str]] = []
        self._to_resolve: list[str] = []
        graph = workflow.graph
        self._remaining = {
            task_id: sum(1 for dep in graph.dependencies[task_id] if not self._done(dep))
            for task_id in graph
        }
        for task_id in graph:
            if self._state(task_id) == "failed":
                self._failure_consequence(task_id)
            if self._state(task_id) == "pending" and self._remaining[task_id] == 0:
                self._to_resolve.append(task_id)
        self._to_resolve.reverse()  # resolved in definition order (popped from the end)

    # -- what the runner tells it --------------------------------------------------------

    def settled(self, task_id: str) -> None:
        """`task_id` is done (completed, failed, skipped or cancelled in the view)."""
        self.running.discard(task_id)
        if self._state(task_id) == "failed":
            self._failure_consequence(task_id)
        for dependent in self.workflow.graph.dependents[task_id]:
            self._remaining[dependent] -= 1
            if self._remaining[dependent] == 0:
                self._to_resolve.append(dependent)

    def claim(self, task_id: str) -> None:
        """A task is run outside the order (a waiting task looked at again): it holds a
        worker slot until it settles or is released."""
        self.running.add(task_id)

    def released(self, task_id: str) -> None:
        """The task's attempt let go of its slot without settling it (it waits, is to be
        retried, or was interrupted)."""
        self.running.discard(task_id)

    def retry_at(self, task_id: str, when: float) -> None:
        """Start the task again at `when` (on the runner's monotonic clock)."""
        self.running.discard(task_id)
        heapq.heappush(self._timers, (when, self.workflow.tasks[task_id].order, task_id))

    def stop(self, reason: str) -> None:
        """Nothing new starts; tasks in flight finish."""
        self.stopping = self.stopping or reason

    def cancel(self, reason: str) -> None:
        """Nothing new starts, nothing waits for a retry."""
        self.cancelling = self.cancelling or reason
        self._ready.clear()
        self._timers.clear()

    # -- what it answers -----------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """Nothing new starts: the run is failing, pausing, stopping or cancelling."""
        return bool(self.failing or self.pausing or self.stopping or self.cancelling)

    @property
    def wake_at(self) -> float | None:
        """When the next retry is due, if one is waiting and the run goes on."""
        return self._timers[0][0] if self._timers and not self.halted else None

    @property
    def finished(self) -> bool:
        """Nothing runs and nothing more can start."""
        if self.running:
            return False
        return self.halted or not (self._ready or self._timers or self._to_resolve)

    def next(self, now: float) -> list[Decision]:
        """The decisions due now: tasks to skip or fail without running, then tasks to
        start while worker slots are free."""
        decisions: list[Decision] = []
        if self.halted:
            self._to_resolve.clear()
            return decisions
        while self._timers and self._timers[0][0] <= now:
            _, _, task_id = heapq.heappop(self._timers)
            self._push_ready(task_id)
        while self._to_resolve:
            task_id = self._to_resolve.pop()
            if self._state(task_id) == "pending":
                decision = self._resolve(self.workflow.tasks[task_id])
                if decision is None:
                    self._push_ready(task_id)
                else:
                    decisions.append(decision)
        specs = self.workflow.tasks
        while self._ready and len(self.running) < self.max_workers:
            if any(specs[t].execution_mode == "sequential" for t in self.running):
                break
            task_id = self._ready[0][2]
            if specs[task_id].execution_mode == "sequential" and self.running:
                break
            heapq.heappop(self._ready)
            self.running.add(task_id)
            decisions.append(Start(task_id))
        return decisions

    def final_state(self) -> tuple[str, str | None]:
        """The instance's state (and why) once the run has nothing left to do."""
        if self.cancelling:
            return "cancelled", self.cancelling
        if self.failing:
            return "failed", self.failing
        if self.pausing:
            return "paused", self.pausing
        states = {task_id: self._state(task_id) for task_id in self.workflow.tasks}
        if self.stopping and any(s not in DONE_STATES for s in states.values()):
            return "paused", self.stopping
        waiting = [t for t, s in states.items() if s == "waiting"]
        if waiting:
            return "waiting", self._waiting_reason(waiting)
        stuck = [t for t, s in states.items() if s not in DONE_STATES]
        if stuck:
            return "failed", f"tasks could not be scheduled: {', '.join(stuck)}"
        return "completed", None

    @property
    def needs_person(self) -> bool:
        """Whether the run ends paused on a failure that waits for a person."""
        return bool(self.pausing) and not self.stopping and self.final_state()[0] == "paused"

    # -- inside --------------------------------------------------------------------------

    def _state(self, task_id: str) -> str:
        state: str = self.tasks[task_id]["state"]
        return state

    def _done(self, task_id: str) -> bool:
        return self._state(task_id) in DONE_STATES

    def _waiting_reason(self, waiting: list[str]) -> str:
        """What the waiting tasks wait for: approvals, and each mailbox agent."""
        reasons: dict[str, list[str]] = {}
        for task_id in waiting:
            waiting_for = self.tasks[task_id].get("waiting_for") or {}
            if waiting_for.get("kind") == "mailbox":
                label = f"agent {waiting_for.get('agent')}"
            else:
                label = "approval"
            reasons.setdefault(label, []).append(task_id)
        return "; ".join(f"waiting for {label}: {', '.join(t)}" for label, t in reasons.items())

    def _push_ready(self, task_id: str) -> None:
        spec = self.workflow.tasks[task_id]
        heapq.heappush(self._ready, (-spec.priority, spec.order, task_id))

    def _resolve(self, spec: TaskSpec) -> Skip | Fail | None:
        """All of a task's dependencies are settled: skip it, fail it, or None to run it."""
        for dep in spec.dependencies:
            if self._state(dep) == "failed" and self.workflow.tasks[dep].on_failure != "continue":
                return Skip(spec.id, f"dependency '{dep}' failed")
        if (
            spec.dependencies
            and not spec.run_if_dependencies_skipped
            and all(self._state(dep) in ("skipped", "cancelled") for dep in spec.dependencies)
        ):
            return Skip(spec.id, "all its dependencies were skipped")
        return self.check_conditions(spec) if spec.conditions else None

    def _failure_consequence(self, task_id: str) -> None:
        """A task failed for good: fail the run, pause it for a person, or neither."""
        spec = self.workflow.tasks[task_id]
        error = self.tasks[task_id].get("error") or {}
        message = f"task '{task_id}' failed: {error.get('message', 'no message')}"
        if spec.on_failure == "pause" or (
            spec.stops_run_on_failure and self.workflow.on_failure == "pause"
        ):
            self.pausing = self.pausing or f"{message}; retry it, skip it, roll back or cancel"
        elif spec.stops_run_on_failure:
            self.failing = self.failing or message
