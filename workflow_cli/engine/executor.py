"""Executors run task attempts away from the scheduler.

The scheduler decides what runs and how many at once; an executor only runs the work
it is handed and never blocks the caller. `ThreadExecutor` keeps idle threads for reuse
and starts a new one when none is idle, so an attempt that outlives its timeout (a
Python callable cannot be killed) never takes a slot from the tasks after it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Protocol

Work = Callable[[], None]


class Executor(Protocol):
    def submit(self, work: Work) -> None: ...

    def shutdown(self) -> None: ...


class ThreadExecutor:
    """Runs each piece of work on a pooled daemon thread."""

    def __init__(self, name: str = "task") -> None:
        self._name = name
        self._work: queue.SimpleQueue[Work | None] = queue.SimpleQueue()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, work: Work) -> None:
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

    def _serve(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                return
            try:
                work()
            finally:
                with self._lock:
                    self._idle += 1

    def shutdown(self) -> None:
        """Let idle threads end; threads still busy end when their work returns."""
        for _ in self._threads:
            self._work.put(None)
