"""Follow one instance's journal: its state now, its latest events, and each new event as
it is appended, until its run ends.

A `Follower` attaches to an instance (the state from the cache plus the journal's tail,
so attaching to a 10,000-task run costs one file read, not a fold of its history) and
`poll` folds whatever has been appended since. `follow` drives a follower: it yields an
`Update` at once (the first frame), then one per poll interval (empty when nothing was
appended, so a view can tick), and stops when:

- a ``run_ended`` arrives (completed, failed, cancelled, waiting or paused);
- no run is going when it attaches (the instance is finished, waiting or paused);
- the instance says ``running`` but its runner is gone (the process died);
- the duration passes.

An instance that was created but not started is waited for: its run may begin.
Nothing here prints; the caller decides how updates look.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.files import open_binary
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock, Event, decode_line
from workflow_cli.store.runlock import runner_gone
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State, empty_state, fold
from workflow_cli.store.workspace import Workspace

MIN_INTERVAL = 0.02
MAX_INTERVAL = 10.0
# States in which no run is going: a run_ended into one of them ends the following.
STOPPED_STATES = FINAL_INSTANCE_STATES | {"waiting", "paused"}
# How often a silent "running" instance has its runner checked for life.
_LIVENESS_EVERY = 1.0
_TAIL_CHUNK = 64 * 1024


@readonly_dataclass
class Update:
    """What one poll found: the events appended (maybe none), and whether following ends
    here (`end` says why: "ended", "not_running", "runner_gone" or "duration")."""

    events: list[Event]
    end: str | None = None


class Follower:
    """Holds one instance's state and its latest events, and folds in new events."""

    def __init__(
        self,
        workspace: Workspace,
        instance_id: str,
        clock: Clock,
        *,
        history: int = 0,
        from_start: bool = False,
    ) -> None:
        """Attach to `instance_id`. `history` is how many of the latest events to keep in
        `latest`. With `from_start`, the state is folded from the journal's first event
        and `initial` holds every event (for a view that shows the whole journal)."""
        self.instance_id = instance_id
        self.instance_dir = workspace.instance_dir(instance_id)
        self.journal = open_journal(workspace, instance_id, clock)
        self.initial: list[Event] = []
        if from_start:
            self.initial = self.journal.read_new()
            self.state: State = fold(self.initial, empty_state())
            self.state["offset"] = self.journal.offset
        else:
            self.state = load_state(self.journal)
        self.latest: deque[Event] = deque(maxlen=max(history, 0) or None)
        if history > 0:
            source = self.initial[-history:] if from_start else None
            if source is None:
                source = tail_events(self.journal.path, history, end=self.journal.offset)
            self.latest.extend(source)

    @property
    def path(self) -> Path:
        return self.journal.path

    def poll(self) -> list[Event]:
        """The events appended since the last poll (folded into `state` already)."""
        try:
            size = os.stat(self.journal.path).st_size
        except FileNotFoundError:
            return []
        if size <= self.journal.offset:
            return []
        events = self.journal.read_new()
        if events:
            fold(events, self.state)
            self.state["offset"] = self.journal.offset
            if self.latest.maxlen is not None:
                self.latest.extend(events)
        return events

    def run_going(self) -> bool:
        """Whether a run is going or may still begin (created, or running)."""
        return self.state["state"] not in STOPPED_STATES

    def runner_gone(self) -> bool:
        """Whether the instance says running but no runner process is behind it."""
        return runner_gone(self.instance_dir, self.state)

    def close(self) -> None:
        self.journal.close()


def follow(
    follower: Follower,
    *,
    interval: float,
    duration: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Update]:
    """Updates from `follower`: one at once, then one per `interval` (clamped to
    MIN_INTERVAL..MAX_INTERVAL) until the run ends or `duration` seconds pass."""
    interval = min(max(interval, MIN_INTERVAL), MAX_INTERVAL)
    started = monotonic()
    deadline = None if duration is None else started + max(duration, 0.0)
    if not follower.run_going():
        yield Update([], "not_running")
        return
    if deadline is not None and monotonic() >= deadline:
        yield Update([], "duration")
        return
    yield Update([])
    last_news = monotonic()
    last_check = last_news
    while True:
        pause = interval
        if deadline is not None:
            pause = min(pause, max(deadline - monotonic(), 0.0))
        sleep(pause)
        events = follower.poll()
        now = monotonic()
        if _run_ended(events):
            yield Update(events, "ended")
            return
        if events:
            last_news = now
        elif now - last_news >= _LIVENESS_EVERY and now - last_check >= _LIVENESS_EVERY:
            last_check = now
            if follower.runner_gone():
                events = follower.poll()  # a run_ended written just before the exit
                yield Update(events, "ended" if _run_ended(events) else "runner_gone")
                return
        if deadline is not None and now >= deadline:
            yield Update(events, "duration")
            return
        yield Update(events)


def _run_ended(events: list[Event]) -> bool:
    return any(e["type"] == "run_ended" and e.get("state") in STOPPED_STATES for e in events)


def tail_events(path: Path, count: int, *, end: int | None = None) -> list[Event]:
    """The last `count` complete events of the journal at `path` (before byte `end`),
    read from its end, so a long journal costs what its tail costs."""
    if count <= 0:
        return []
    try:
        handle = open_binary(path)
    except FileNotFoundError:
        return []
    with contextlib.closing(handle):
        size = os.fstat(handle.fileno()).st_size if end is None else end
        chunk = _TAIL_CHUNK
        while True:
            start = max(0, size - chunk)
            handle.seek(start)
            data = handle.read(size - start)
            cut = data.rfind(b"\n") + 1  # a torn last line is not an event yet
            data = data[:cut]
            lines = data.splitlines(keepends=True)
            if start > 0 and lines:
                lines = lines[1:]  # the first line may begin before the window
            if len(lines) >= count or start == 0:
                break
            chunk *= 4
        chosen = lines[-count:]
        offset = start + len(data) - sum(len(line) for line in chosen)
        events = []
        for line in chosen:
            events.append(decode_line(line, f"{path} at byte {offset}"))
            offset += len(line)
        return events
