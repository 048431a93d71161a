"""Signals during a run: SIGINT (Ctrl-C) and SIGTERM counted, not acted on at once.

The runner reads the count in its loop: the first one stops the run like
``workflow_cli stop`` (nothing new starts, tasks in flight finish); a second one
interrupts the tasks in flight at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def counting_signals(enabled: bool, count: Callable[[], None]) -> Iterator[None]:
    """Call `count` on each SIGINT or SIGTERM while inside (only on the main thread, and
    only when `enabled`); the handlers before are put back after."""
    restore: list[tuple[int, Any]] = []
    if enabled and threading.current_thread() is threading.main_thread():

        def handler(signum: int, frame: Any) -> None:
            count()

        restore = [(s, signal.signal(s, handler)) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield
    finally:
        for signum, previous in restore:
            signal.signal(signum, previous)
