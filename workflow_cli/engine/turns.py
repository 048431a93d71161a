"""Turns: which thread acts for a runner, and when.

A run's state changes on one thread at a time, the one holding the turn. The executor
thread that brought the result of the only attempt out takes the turn when no one has
it: a chain then goes on with no thread woken between its tasks (that thread takes the
turn and runs the next attempt itself, `ThreadExecutor`). Otherwise the runner's own
thread takes it, and with it every result that came back meanwhile. It sleeps until
the time the last turn asked for (timers, deadlines, what other commands wrote), or
until a turn taken elsewhere wakes it because:
- the run is over;
- the turn failed (what failed is raised on the runner's thread);
- the turn asks for a look sooner;
- results came back while the turn was held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from workflow_cli.engine.executor import AttemptPool

# One turn: act, then say when to look in next at the latest (monotonic), or None once
# the run is over.
Turn = Callable[[], float | None]


class Turns:
    """Takes a runner's turns, on its own thread and on the threads results come on."""

    def __init__(self, turn: Turn, pool: AttemptPool[Any], monotonic: Callable[[], float]):
        self._turn = turn
        self._pool = pool
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._news = threading.Event()
        self._look_at = monotonic()
        self._over = False
        self._failure: BaseException | None = None

    def run(self) -> None:
        """Take turns on this thread (the runner's) until the run is over; a turn taken
        elsewhere that failed raises here."""
        self._pool.after_result = self.bring
        try:
            while True:
                with self._lock:
                    if self._failure is not None:
                        raise self._failure
                    if self._over:
                        return
                    try:
                        self._take()
                    except BaseException as exc:  # no other thread takes a turn after it
                        self._failure = exc
                        raise
                if not self._over and not self._pool.anything_back():
                    self._news.wait(max(0.0, self._look_at - self._monotonic()))
                    self._news.clear()
        finally:  # however it ends (an interrupt too): no turn is taken after it
            with self._lock:
                self._over = True
                self._pool.after_result = None

    def bring(self) -> None:
        """On a thread that brought a result: when it was the only attempt out, take one
        turn if no one has it (else its holder sees the result), then wake the runner's
        thread if it must act. With others out, wake the runner's thread: it takes
        the results that come back meanwhile in one turn (one write for them all)."""
        if len(self._pool.live) > 1:
            self._news.set()
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._over or self._failure is not None:
                return
            sooner = self._take()
        except BaseException as exc:  # raised on the runner's thread
            self._failure = exc
            sooner = True
        finally:
            self._lock.release()
        if sooner or self._pool.anything_back():
            self._news.set()

    def _take(self) -> bool:
        """One turn, with the lock held: whether the runner's thread must wake for what
        it left (the run over, or a look wanted sooner than it sleeps until)."""
        look_at = self._turn()
        if look_at is None:
            self._over = True
            return True
        sooner = look_at < self._look_at
        self._look_at = look_at
        return sooner
