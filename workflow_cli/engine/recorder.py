"""The recorder: the runner's one way to the journal, and the keeper of the folded state.

Every event the runner makes goes through `Recorder.record`: it is numbered, stamped
and folded into the state at once, so the runner and the scheduler read task states
from one place. `Recorder.flush` writes the batch in one append and fsyncs it once when
it holds an event something may act on (`events.DURABLE`), or the end of an item of a
for_each task (`events.BATCHED`) a second or more after the last fsync. A task's
completion or skip (`events.DEFERRED`) waits for the next fsync (the runner asks for
one before a task that depends on it starts, and one comes `events.SETTLE_SECONDS`
after the last at the latest); batches waiting for it are reported once it is done,
so that hooks act only on what is on disk. The journal lock is held
from a batch's first record until its write, so the order the state was folded in is
the order on disk: events other commands appended meanwhile are read and folded first,
and handed to the runner by `take_external`.

It also writes the checkpoints asked for (each stands for the journal as written so
far), keeps ``state.json`` fresh (at most 5% of the run's time goes to it) and a large
instance's ``status.json`` between (2.5%), and hands every event to the `Reporter`.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import Protocol

from workflow_cli.errors import DiskFullError
from workflow_cli.store import events as ev
from workflow_cli.store.checkpoints import write_checkpoint
from workflow_cli.store.events import (
    BATCH_SECONDS,
    BATCHED,
    DEFERRED,
    SETTLE_SECONDS,
    SETTLING,
    SYNCED_AT_ONCE,
)
from workflow_cli.store.instances import (
    load_state,
    open_journal,
    save_state_cache,
    save_status_cache,
)
from workflow_cli.store.journal import Clock, Event, Journal, Record
from workflow_cli.store.secrets import Masker
from workflow_cli.store.state import State, apply_event, fold
from workflow_cli.store.status_cache import MIN_TASKS
from workflow_cli.store.workspace import Workspace

# Checkpoints by default: one when a run starts, then one every this many completed tasks
# (unless the definition or --checkpoint-interval says otherwise), or once this many
# seconds have passed since the last with something completed meanwhile.
DEFAULT_CHECKPOINT_INTERVAL = 100
DEFAULT_CHECKPOINT_SECONDS = 60.0


class Reporter(Protocol):
    """Receives every event of a run as it is written, with the state after it: in the
    runner's turn (`engine.turns`), so one call at a time, on the runner's thread or on
    an executor thread."""

    def on_events(self, events: list[Event], state: State) -> None: ...


class NullReporter:
    def on_events(self, events: list[Event], state: State) -> None:
        pass


class Recorder:
    """Batches, folds and writes the events of one run."""

    def __init__(
        self,
        workspace: Workspace,
        journal: Journal,
        state: State,
        *,
        reporter: Reporter,
        monotonic: Callable[[], float],
        cache_interval: float,
        masker: Masker | None = None,
        checkpoint_interval: int | None = None,
    ) -> None:
        self.workspace = workspace
        self.journal = journal
        self.state = state
        self.reporter = reporter
        self.monotonic = monotonic
        self.cache_interval = cache_interval
        self.masker = masker or Masker()
        self.pending: list[Event] = []  # recorded, folded, not yet written
        self._open = False  # a batch holds the journal lock
        self._now = ""
        self._external: list[Event] = []
        self._checkpoints: list[tuple[str, str | None]] = []
        self.checkpoint_interval = checkpoint_interval or DEFAULT_CHECKPOINT_INTERVAL
        self._completions = 0  # in this run
        self._last_auto = (monotonic(), 0)  # when the last auto checkpoint was asked, and after
        self._last_cache = monotonic()
        self._last_sync = monotonic()
        self._cache_gap = cache_interval  # grows with what writing the cache costs
        self._last_status = monotonic()  # status.json alone (a large instance's)
        self._status_gap = cache_interval
        self._status_offset = journal.offset  # what status.json was last written for
        self._done_before: int | None = None  # tasks completed before this run's first
        self._next_checkpoint: int | None = None  # the number of this run's next checkpoint
        self._waited: set[str] = set()  # tasks that went waiting since `take_waited`
        self.unsynced: set[str] = set()  # tasks settled in events not yet fsynced
        self._held: list[Event] = []  # written, reported once fsynced

    # -- events --------------------------------------------------------------------------

    def record(self, *records: Record) -> None:
        """Add events to the batch; the state shows them at once. A run's known secret
        values are masked first: they reach neither the journal nor the state."""
        if not self._open:
            self._begin()
        for record in records:
            if self.masker:
                record = self.masker.event(record)
            event: Event = {
                "seq": self.journal.last_seq + len(self.pending) + 1,
                "time": self._now,
                **record,
            }
            apply_event(self.state, event)
            self.pending.append(event)
            if event["type"] == "task_waiting":
                self._waited.add(event["task"])
            elif event["type"] in SETTLING:
                self.unsynced.add(event["task"])

    def _begin(self) -> None:
        self.journal.lock()
        self._open = True
        self._read_external()
        self._now = self.journal.now()

    def poll(self) -> list[Event]:
        """What other commands appended since the last look, folded (a cheap stat when
        nothing was)."""
        if not self._open:
            try:
                size = os.stat(self.journal.path).st_size
            except OSError:
                size = self.journal.offset
            if size != self.journal.offset:
                with self.journal.locked():
                    self._read_external()
        return self.take_external()

    def write(self, records: list[Record]) -> None:
        """Record events and write them at once."""
        self.record(*records)
        self.flush()

    def abandon(self) -> None:
        """Drop a batch that cannot be written (the disk is full) and let go of the
        journal; the state is then ahead of the journal and must not be used."""
        self.pending, self._held = [], []
        if self._open:
            self._open = False
            self.journal.unlock()

    def take_external(self) -> list[Event]:
        """Events other commands appended, folded already, not yet handed out."""
        found, self._external = self._external, []
        return found

    def take_waited(self) -> set[str]:
        """The tasks that went waiting (an event of this run or another command's) since
        the last call."""
        found, self._waited = self._waited, set()
        return found

    def _read_external(self) -> None:
        found = self.journal.read_new()
        if found:
            if self._held:  # reported in the journal's order
                self._sync([])
            fold(found, self.state)
            self._external.extend(found)
            self._waited.update(e["task"] for e in found if e["type"] == "task_waiting")
            self.reporter.on_events(found, self.state)

    @property
    def sync_due(self) -> float | None:
        """When the batches waiting for an fsync get it at the latest (None: none wait)."""
        return self._last_sync + SETTLE_SECONDS if self._held else None

    def flush(
        self, during_sync: Callable[[], None] | None = None, *, sync: bool = False
    ) -> list[Event]:
        """Write the batch in one append, let go of the journal, run `during_sync`
        (work that need not wait for the disk), make the batch durable if it must be
        (or `sync` asks), report it, then write the checkpoints asked for. The events
        written."""
        written, self.pending = self.pending, []
        if self._open:
            try:
                self.journal.write(written, durable=False)
            finally:
                self._open = False
                self.journal.unlock()
        since = self.monotonic() - self._last_sync
        deferred = bool(self._held) or any(event["type"] in DEFERRED for event in written)
        durable = (
            sync
            or any(event["type"] in SYNCED_AT_ONCE for event in written)
            or (deferred and since >= SETTLE_SECONDS)
            or (since >= BATCH_SECONDS and any(event["type"] in BATCHED for event in written))
        )
        if during_sync is not None:
            during_sync()
        if durable:
            self._sync(written)
        elif deferred:
            self._held.extend(written)
        elif written:
            self.reporter.on_events(written, self.state)
        if self._checkpoints:
            self._write_checkpoints(synced=durable)
        now = self.monotonic()
        if now - self._last_cache >= self._cache_gap:
            self.save_cache()
            # The cache of a large run costs more to write: never more than about 5% of
            # the run's time goes to it, so a 100,000-task run stays linear.
            self._last_cache = self._last_status = self.monotonic()
            self._cache_gap = max(self.cache_interval, 20 * (self._last_cache - now))
        elif self.status_due is not None and now >= self.status_due:
            self.save_status()
        return written

    @property
    def wake_at(self) -> float | None:
        """When the recorder has work owed next: an fsync, or ``status.json``."""
        return min((t for t in (self.sync_due, self.status_due) if t is not None), default=None)

    @property
    def status_due(self) -> float | None:
        """When a large instance's ``status.json`` is written next, the journal having
        grown since (None: it has not, or the instance has none): `status` of a running
        instance reads it, not the whole state."""
        if self.journal.offset == self._status_offset or len(self.state["tasks"]) < MIN_TASKS:
            return None
        return self._last_status + self._status_gap

    def save_status(self) -> None:
        """Write ``status.json`` alone (at most 2.5% of the run's time goes to it)."""
        started = self.monotonic()
        save_status_cache(self.journal, self.state)
        self._last_status = self.monotonic()
        self._status_offset = self.journal.offset
        self._status_gap = max(self.cache_interval, 40 * (self._last_status - started))

    def _sync(self, written: list[Event]) -> None:
        """Make everything written durable, then report what waited for it and
        `written`."""
        self.journal.sync()
        self._last_sync = self.monotonic()
        self.unsynced.clear()
        reported, self._held = self._held + written, []
        if reported:
            self.reporter.on_events(reported, self.state)

    # -- checkpoints and the cache -------------------------------------------------------

    def settled(self, task_id: str, *, failed: bool, milestone: bool) -> None:
        """A task settled: an ``error`` checkpoint when it failed; a ``milestone`` one after
        a milestone; an ``auto`` one every `checkpoint_interval` completions, or when
        `DEFAULT_CHECKPOINT_SECONDS` have passed since the last with some completed."""
        if failed:
            self.request_checkpoint("error", task_id)
            return
        self._completions += 1
        if milestone:
            self.request_checkpoint("milestone", task_id)
        since, completions = self._last_auto
        now = self.monotonic()
        if self._completions % self.checkpoint_interval == 0 or (
            now - since >= DEFAULT_CHECKPOINT_SECONDS and self._completions > completions
        ):
            self._last_auto = (now, self._completions)
            if self._done_before is None:  # counted once: a count per checkpoint is quadratic
                done = sum(1 for t in self.state["tasks"].values() if t["state"] == "completed")
                self._done_before = done - self._completions
            self.request_checkpoint(
                "auto", f"{self._done_before + self._completions} tasks completed"
            )

    def request_checkpoint(self, kind: str, label: str | None) -> None:
        """Write a checkpoint at the next flush, once the batch is on disk."""
        self._checkpoints.append((kind, label))

    def _write_checkpoints(self, *, synced: bool) -> None:
        """Each checkpoint stands for the journal as written so far (made durable
        first) and is noted in the journal at once."""
        requests, self._checkpoints = self._checkpoints, []
        if not synced:
            self._sync([])
        self._begin()  # checkpoints are numbered under the journal lock
        self.state["offset"] = self.journal.offset
        now = self.journal.clock()
        digest = self.journal.digest()
        documents = []
        for kind, label in requests:
            document = write_checkpoint(
                self.workspace,
                self.state,
                kind=kind,
                label=label,
                now=now,
                journal_digest=digest,
                number=self._next_checkpoint,
            )
            documents.append(document)
            self._next_checkpoint = int(document["id"].split("-", 1)[0]) + 1
        self.record(
            *(
                ev.checkpoint_created(doc["id"], kind, label, doc["seq"])
                for doc, (kind, label) in zip(documents, requests, strict=True)
            )
        )
        self.flush()
        # What the run holds so far (the state, the definition) lives as long as the run:
        # the garbage collector stops looking at it, so a full collection costs what was
        # made since the last checkpoint, not the whole run (1.1 s of a 30,000-task run
        # went to it, 0.3 s so). `Runner.run` hands it back at its end.
        gc.freeze()

    def save_cache(self, *, durable: bool = False) -> None:
        """Write ``state.json`` (and a large instance's ``status.json``) for the journal
        as written so far."""
        save_state_cache(self.journal, self.state, durable=durable)
        self._status_offset = self.journal.offset


def pause_after_full_disk(
    workspace: Workspace, instance_id: str, clock: Clock, exc: DiskFullError
) -> None:
    """Record a run that the disk stopped as paused (in the room its run lock set aside),
    so that the instance is not left running with no runner. When even that does not fit,
    the instance shows a dead runner, and resume recovers it."""
    journal = open_journal(workspace, instance_id, clock)
    try:
        if load_state(journal, use_cache=False)["state"] == "running":
            journal.append([ev.run_ended("paused", f"paused: {exc.message}, then resume")])
    except (DiskFullError, OSError):
        pass
    finally:
        journal.close()
