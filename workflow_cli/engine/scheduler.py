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

A ``for_each`` task that may run is first `Expand`-ed (the runner fixes its items and
hands back those still to run, `expanded`); then each item is a `StartItem` of its own
that holds a worker slot like a task, in the task's place in the order, at most
``max_parallel`` of one task at once (one at a time for a ``sequential`` task). An item
to be retried waits on its own timer (`item_retry_at`).

A task of a repeating group lets the tasks after it outside the group go only once the
group is over. When every task of the group has settled, `EndIteration` asks the runner
to evaluate its ``until``; it answers `group_done` (the group is over) or `reopen` (its
tasks, put back to pending, run again after a delay). A group with a failed or
cancelled task is over too.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Collection, Mapping
from typing import Any

from workflow_cli.definition.model import TaskSpec, WorkflowSpec
from workflow_cli.readonly import readonly_dataclass

DONE_STATES = frozenset({"completed", "failed", "skipped", "cancelled"})
# A live view of each task's record; the scheduler reads only its "state" and "error".
TaskStates = Mapping[str, Mapping[str, Any]]


@readonly_dataclass
class Start:
    """Run an attempt of the task now (it holds a worker slot until released)."""

    task: str


@readonly_dataclass
class Skip:
    task: str
    reason: str


@readonly_dataclass
class Fail:
    """The task fails without running (its conditions cannot be evaluated)."""

    task: str
    message: str


@readonly_dataclass
class Expand:
    """Fix a for_each task's items and hand back those to run (`Scheduler.expanded`)."""

    task: str


@readonly_dataclass
class StartItem:
    """Run an attempt of item `index` of a for_each task now (it holds a worker slot
    until `Scheduler.item_released` or `Scheduler.item_retry_at`)."""

    task: str
    index: int


@readonly_dataclass
class EndIteration:
    """Every task of a repeating group has settled: evaluate its ``until``, then
    `Scheduler.group_done` or `Scheduler.reopen`."""

    group: str


@readonly_dataclass
class TimedOut:
    """The run took longer than the workflow's ``timeout_seconds``: end the tasks in
    flight and the rest; the run fails with `reason`."""

    reason: str


Decision = Start | Skip | Fail | Expand | StartItem | EndIteration | TimedOut
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
        finished_groups: Collection[str] = (),
    ) -> None:
        self.workflow = workflow
        # When this run must end (the workflow's timeout_seconds after the first `next`).
        self.deadline: float | None = None
        self._timing = workflow.timeout is not None
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
        # for_each tasks: items waiting to start, items out, item retry timers, and the
        # tasks with items to start that are in the ready heap
        self._queues: dict[str, deque[int]] = {}
        self._items_out: dict[str, int] = {}
        self.items_running = 0
        self._item_timers: list[tuple[float, int, int, str]] = []
        self._in_ready: set[str] = set()
        # repeating groups: those over, the edges out of each held until it is, the groups
        # whose iteration ended, and the groups to run again (when, order, group)
        self._groups_over = set(finished_groups)
        self._held: dict[str, list[str]] = {}
        self._group_ends: list[str] = []
        self._reopen_timers: list[tuple[float, int, str]] = []
        graph = workflow.graph
        self._remaining: dict[str, int] = {}
        for task_id in graph:
            self._remaining[task_id] = 0
            for dep in graph.dependencies[task_id]:
                if not self._done(dep):
                    self._remaining[task_id] += 1
                elif self._held_back(dep, task_id):
                    self._remaining[task_id] += 1
                    self._held.setdefault(workflow.group_of[dep], []).append(task_id)
        self._group_ends = [name for name in workflow.groups if self._iteration_ended(name)]
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
        group = self.workflow.group_of.get(task_id)
        if group is not None and self._state(task_id) in ("failed", "cancelled"):
            self._release(group)  # the group is over
        for dependent in self.workflow.graph.dependents[task_id]:
            if self._held_back(task_id, dependent):
                self._held.setdefault(self.workflow.group_of[task_id], []).append(dependent)
            else:
                self._let_go(dependent)
        if group is not None and self._iteration_ended(group):
            self._group_ends.append(group)

    def group_done(self, group: str) -> None:
        """A repeating group is over: the tasks after it may go (a task of it that failed
        meanwhile — its loop ran out — has its consequence)."""
        self._release(group)
        for task_id in self.workflow.groups[group].tasks:
            if self._state(task_id) == "failed":
                self._failure_consequence(task_id)

    def reopen(self, group: str, when: float) -> None:
        """The group's tasks are pending again: run them again from `when` on."""
        graph = self.workflow.graph
        self._held[group] = []
        for task_id in self.workflow.groups[group].tasks:
            deps = graph.dependencies[task_id]
            self._remaining[task_id] = sum(1 for dep in deps if not self._done(dep))
        heapq.heappush(self._reopen_timers, (when, 0, group))

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

    def expanded(self, task_id: str, indices: list[int]) -> None:
        """The items of a for_each task still to run, in order."""
        self._queues[task_id] = deque(indices)
        self._offer(task_id)

    def item_released(self, task_id: str) -> None:
        """An item's attempt let go of its slot (the item ended, or was interrupted)."""
        self._items_out[task_id] -= 1
        self.items_running -= 1
        self._offer(task_id)

    def item_retry_at(self, task_id: str, index: int, when: float) -> None:
        """Start item `index` again at `when` (its slot is let go of now)."""
        self.item_released(task_id)
        order = self.workflow.tasks[task_id].order
        heapq.heappush(self._item_timers, (when, order, index, task_id))

    def stop(self, reason: str) -> None:
        """Nothing new starts; tasks in flight finish."""
        self.stopping = self.stopping or reason

    def cancel(self, reason: str) -> None:
        """Nothing new starts, nothing waits for a retry."""
        self.cancelling = self.cancelling or reason
        self._drop_queued()

    def time_out(self, reason: str) -> None:
        """Like `cancel`, but the run ends ``failed``: it took too long."""
        self.failing = reason
        self._drop_queued()

    def _drop_queued(self) -> None:
        self._ready.clear()
        self._timers.clear()
        self._queues.clear()
        self._item_timers.clear()
        self._in_ready.clear()
        self._group_ends.clear()
        self._reopen_timers.clear()

    # -- what it answers -----------------------------------------------------------------

    @property
    def halted(self) -> bool:
        """Nothing new starts: the run is failing, pausing, stopping or cancelling."""
        return bool(self.failing or self.pausing or self.stopping or self.cancelling)

    @property
    def wake_at(self) -> float | None:
        """When the next retry is due (if one is waiting and the run goes on) or the run's
        deadline, whichever comes first."""
        due = []
        if not self.halted:
            heaps = (self._timers, self._item_timers, self._reopen_timers)
            due = [timers[0][0] for timers in heaps if timers]
        if self.deadline is not None:
            due.append(self.deadline)
        return min(due, default=None)

    @property
    def finished(self) -> bool:
        """Nothing runs and nothing more can start."""
        if self.running or self.items_running:
            return False
        return self.halted or not (
            self._ready
            or self._timers
            or self._to_resolve
            or self._item_timers
            or self._group_ends
            or self._reopen_timers
        )

    def next(self, now: float) -> list[Decision]:
        """The decisions due now: tasks to skip or fail without running, then tasks to
        start while worker slots are free."""
        decisions: list[Decision] = []
        if self._timing and self.workflow.timeout is not None:
            self._timing, self.deadline = False, now + self.workflow.timeout
        if self.deadline is not None and now >= self.deadline and not self.cancelling:
            self.deadline = None
            timeout = f"{self.workflow.timeout:g}"
            return [TimedOut(f"the run took longer than the workflow's timeout ({timeout} s)")]
        if self.halted:
            self._to_resolve.clear()
            return decisions
        while self._timers and self._timers[0][0] <= now:
            _, _, task_id = heapq.heappop(self._timers)
            self._push_ready(task_id)
        while self._item_timers and self._item_timers[0][0] <= now:
            _, _, index, task_id = heapq.heappop(self._item_timers)
            self._queues.setdefault(task_id, deque()).appendleft(index)
            self._offer(task_id)
        while self._reopen_timers and self._reopen_timers[0][0] <= now:
            _, _, group = heapq.heappop(self._reopen_timers)
            members = self.workflow.groups[group].tasks
            self._to_resolve.extend(t for t in reversed(members) if self._remaining[t] == 0)
        while self._group_ends:
            decisions.append(EndIteration(self._group_ends.pop(0)))
        while self._to_resolve:
            task_id = self._to_resolve.pop()
            if self._state(task_id) == "pending":
                spec = self.workflow.tasks[task_id]
                decision = self._resolve(spec)
                if decision is not None:
                    decisions.append(decision)
                elif spec.for_each is not None:
                    decisions.append(Expand(task_id))
                else:
                    self._push_ready(task_id)
        specs = self.workflow.tasks
        while self._ready and len(self.running) + self.items_running < self.max_workers:
            if any(specs[t].execution_mode == "sequential" for t in self.running):
                break
            task_id = self._ready[0][2]
            if task_id in self._in_ready:
                item = self._next_item(task_id)
                if item is not None:
                    decisions.append(StartItem(task_id, item))
                continue
            if specs[task_id].execution_mode == "sequential" and (
                self.running or self.items_running
            ):
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

    def _group_over(self, group: str) -> bool:
        tasks = self.workflow.groups[group].tasks
        return group in self._groups_over or any(
            self._state(t) in ("failed", "cancelled") for t in tasks
        )

    def _iteration_ended(self, group: str) -> bool:
        """Every task of the group settled, and the group goes on: its until is due."""
        return (
            group not in self._group_ends
            and not self._group_over(group)
            and all(self._done(t) for t in self.workflow.groups[group].tasks)
        )

    def _held_back(self, dep: str, task_id: str) -> bool:
        """Whether `dep` (settled) still holds `task_id` back: it is in a repeating group
        that `task_id` is not in, and that group is not over."""
        group = self.workflow.group_of.get(dep)
        return (
            group is not None
            and self.workflow.group_of.get(task_id) != group
            and not self._group_over(group)
        )

    def _let_go(self, dependent: str) -> None:
        self._remaining[dependent] -= 1
        if self._remaining[dependent] == 0:
            self._to_resolve.append(dependent)

    def _release(self, group: str) -> None:
        """The group is over: let go of the edges out of it it held."""
        self._groups_over.add(group)
        held, self._held[group] = self._held.get(group, []), []
        for dependent in held:
            self._let_go(dependent)

    def _limit(self, task_id: str) -> int:
        spec = self.workflow.tasks[task_id]
        if spec.execution_mode == "sequential":
            return 1
        return spec.max_parallel or self.max_workers

    def _offer(self, task_id: str) -> None:
        """Put a for_each task in the ready heap if it has items to start and room."""
        queue = self._queues.get(task_id)
        if (
            queue
            and task_id not in self._in_ready
            and self._items_out.get(task_id, 0) < self._limit(task_id)
        ):
            self._in_ready.add(task_id)
            self._push_ready(task_id)

    def _next_item(self, task_id: str) -> int | None:
        """The next item of the for_each task on top of the ready heap, or None (then the
        task leaves the heap until an item of it lets go of its slot)."""
        queue = self._queues[task_id]
        out = self._items_out.get(task_id, 0)
        if not queue or out >= self._limit(task_id):
            heapq.heappop(self._ready)
            self._in_ready.discard(task_id)
            return None
        self._items_out[task_id] = out + 1
        self.items_running += 1
        return queue.popleft()

    def _waiting_reason(self, waiting: list[str]) -> str:
        """What the waiting tasks wait for: approvals, each mailbox agent, each event."""
        reasons: dict[str, list[str]] = {}
        for task_id in waiting:
            waiting_for = self.tasks[task_id].get("waiting_for") or {}
            if waiting_for.get("kind") == "mailbox":
                label = f"agent {waiting_for.get('agent')}"
            elif waiting_for.get("kind") == "event":
                label = f"event {waiting_for.get('event')}"
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
