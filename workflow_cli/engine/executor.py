"""Executors run task attempts away from the scheduler, and `AttemptPool` keeps count
of the attempts out with one.

The scheduler decides what runs and how many at once; an executor only runs the work
it is handed and never blocks the caller. `ThreadExecutor` keeps idle threads for reuse
and starts a new one when none is idle, so an attempt that outlives its timeout (a
Python callable cannot be killed) never takes a slot from the tasks after it.
`DaskExecutor` (``engine.dask_executor``) sends the attempts of agents to a Dask
cluster; `open_executor` picks one from ``--executor`` or the workspace's setting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from workflow_cli.engine.actions.base import Action, ActionFailed, TaskCall
    from workflow_cli.engine.attempt import Ended
    from workflow_cli.store.workspace import Workspace

Work = Callable[[], None]
R = TypeVar("R")
# What an attempt is of: a task (its id) or an item of a for_each task (its id, the index).
Unit = str | tuple[str, int]
AttemptKey = tuple[Unit, int]  # what an attempt is of, and its attempt number


def task_of(unit: Unit) -> str:
    """The task a unit of work belongs to."""
    return unit if isinstance(unit, str) else unit[0]


class Executor(Protocol):
    def submit(self, work: Work) -> None: ...

    def attempt_work(self, action: Action, call: TaskCall | ActionFailed) -> Callable[[], Ended]:
        """What runs one attempt when submitted (here, or on a Dask worker)."""
        ...

    def release(self, attempts: list[AttemptKey]) -> None:
        """The results of `attempts` are in the journal: what held them may let go."""
        ...

    def shutdown(self) -> None: ...


def open_executor(workspace: Workspace, choice: str | None) -> Executor:
    """The executor named by `choice` (``threads``, ``local-dask`` or
    ``dask://HOST:PORT``), else by the workspace's ``executor`` setting, else threads."""
    from workflow_cli.engine.executor_choice import dask_settings

    settings = dask_settings(workspace, choice)
    if settings is None:
        return ThreadExecutor()
    from workflow_cli.engine.dask_executor import DaskExecutor

    return DaskExecutor(settings)


class ThreadExecutor:
    """Runs each piece of work on a pooled daemon thread.

    Work handed in by one of the pool's own threads (a runner's turn taken on the thread
    that brought a result) runs next on that same thread, once its current work returns:
    the first such piece only, and with no other thread woken for it."""

    def __init__(self, name: str = "task") -> None:
        self._name = name
        self._work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._mine = threading.local()  # on a pool thread: the work it runs next

    def submit(self, work: Work) -> None:
        mine = self._mine
        if getattr(mine, "serving", False) and mine.next is None:
            mine.next = work
            return
        with self._lock:
            if self._idle == 0:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                self._idle += 1
                thread.start()
            self._idle -= 1
        self._work.put(work)

    def attempt_work(self, action: Action, call: TaskCall | ActionFailed) -> Callable[[], Ended]:
        from workflow_cli.engine.attempt import run_call

        return lambda: run_call(action, call)

    def release(self, attempts: list[AttemptKey]) -> None:
        """Nothing is held: the results are in this process."""

    def _serve(self) -> None:
        mine = self._mine
        mine.serving, mine.next = True, None
        while (work := self._work.get()) is not None:
            while work is not None:
                work()
                work, mine.next = mine.next, None
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Let idle threads end; threads still busy end when their work returns."""
        for _ in self._threads:
            self._work.put(None)


_MAKING = threading.Lock()  # a flag's Condition is made once, by one thread


class CancelFlag(threading.Event):
    """An attempt's cancel flag, and why it was raised: ``stop`` (the run stops; what
    the attempt started should pause, to go on later) or ``cancel`` (ended for good).

    The Event's Condition is made when the flag is first set or waited on: most
    attempts never are, and making one for each cost more than the rest of the flag."""

    reason = "stop"

    def __init__(self) -> None:
        self._flag = False
        self._made: threading.Condition | None = None

    @property
    def _cond(self) -> threading.Condition:  # what threading.Event's methods use
        if self._made is None:
            with _MAKING:
                if self._made is None:
                    self._made = threading.Condition(threading.Lock())
        return self._made

    def raise_for(self, reason: str) -> None:
        self.reason = reason
        self.set()


@dataclass
class InFlight:
    """One attempt handed to the executor and not yet back."""

    number: int
    started: float
    deadline: float | None  # when the runner gives up on it (its timeout plus a grace)
    cancel: CancelFlag


class AttemptPool(Generic[R]):
    """The attempts out with an executor: their cancel flags and deadlines, the queue
    their results come back on, and those given up on (timed out or interrupted) whose
    results are dropped when they arrive."""

    def __init__(self, executor: Executor, monotonic: Callable[[], float]) -> None:
        self.executor = executor
        self.monotonic = monotonic
        self.live: dict[Unit, InFlight] = {}
        self._results: queue.SimpleQueue[tuple[Unit, int, R]] = queue.SimpleQueue()
        self._given_up: set[tuple[Unit, int]] = set()
        self._collected: list[AttemptKey] = []  # results handed to the runner
        # Called on the thread that brought a result, once it is queued (the runner
        # takes its turn there when no one else has it).
        self.after_result: Callable[[], None] | None = None

    def prepare(
        self,
        task_id: Unit,
        number: int,
        run: Callable[[], R],
        *,
        cancel: CancelFlag,
        deadline_after: float | None,
    ) -> Work:
        """Count an attempt as out and return the work that runs it (submitted by the
        caller when the attempt's start is on record)."""
        now = self.monotonic()
        if getattr(run, "keeps_time", False):  # on a Dask worker: its wait in the queue
            deadline_after = None  # does not count (see dask_executor.RemoteAttempt)
        deadline = now + deadline_after if deadline_after is not None else None
        self.live[task_id] = InFlight(number, now, deadline, cancel)
        results = self._results

        def work() -> None:
            results.put((task_id, number, run()))
            if (after := self.after_result) is not None:
                after()

        return work

    def submit(self, works: list[Work]) -> None:
        """Hand prepared work to the executor."""
        for work in works:
            self.executor.submit(work)

    def anything_back(self) -> bool:
        """Whether results wait to be collected."""
        return not self._results.empty()

    def next_deadline(self) -> float | None:
        return min((a.deadline for a in self.live.values() if a.deadline), default=None)

    def collect(self) -> list[tuple[Unit, int, R]]:
        """The results that came back; those of attempts given up on are dropped."""
        results = self._results
        kept = []
        while not results.empty():  # (not `get` until Empty: an exception costs more)
            task_id, number, result = results.get_nowait()
            current = self.live.get(task_id)
            if current is None or current.number != number:
                self._given_up.discard((task_id, number))
                continue
            del self.live[task_id]
            kept.append((task_id, number, result))
            self._collected.append((task_id, number))
        return kept

    def recorded(self) -> None:
        """The results collected so far are on disk: the executor may let them go."""
        if self._collected:
            collected, self._collected = self._collected, []
            self.executor.release(collected)

    def expired(self) -> list[tuple[Unit, InFlight]]:
        """Attempts past their deadline, given up on."""
        now = self.monotonic()
        late = [
            (t, a) for t, a in self.live.items() if a.deadline is not None and now >= a.deadline
        ]
        for task_id, _ in late:
            self.give_up(task_id)
        return late

    def give_up(self, task_id: Unit, reason: str = "stop") -> InFlight:
        """Stop waiting for an attempt: its cancel flag is raised (for `reason`: stop or
        cancel), its result dropped."""
        attempt = self.live.pop(task_id)
        attempt.cancel.raise_for(reason)
        self._given_up.add((task_id, attempt.number))
        return attempt

    def give_up_all(self, reason: str, wait: float) -> None:
        """Give up on every attempt out, then wait up to `wait` seconds for them to end."""
        for task_id in list(self.live):
            self.give_up(task_id, reason)
        self.drain(wait)

    def drain(self, seconds: float) -> None:
        """Give attempts given up on a moment to end, so that no agent outlives the run."""
        deadline = self.monotonic() + seconds
        while self._given_up and (wait := deadline - self.monotonic()) > 0:
            try:
                task_id, number, _ = self._results.get(timeout=wait)
            except queue.Empty:
                return
            self._given_up.discard((task_id, number))
