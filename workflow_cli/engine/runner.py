"""The runner: the loop that carries one instance's run from start to its final state.

In turns (`engine.turns`: on its own thread, or on the one a result came back on) it
asks the `Scheduler` what to do, runs attempts (`engine.attempt`) through an `Executor`,
records every event through the `Recorder` (which folds them into the one state everyone
reads) and acts on stop, cancel and signals. It holds the instance's run lock for its
whole life, never prints, and hands every event to a `Reporter`.

Completions that arrive together are written in one batch and fsynced once, before any
task that depends on them starts; a task's start is written before it runs.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from workflow_cli.definition.model import parse_workflow
from workflow_cli.engine.actions import get_action
from workflow_cli.engine.actions.base import ActionFailed, AwaitDecision
from workflow_cli.engine.agents import agents_as_read, kill_orphan_agents
from workflow_cli.engine.attempt import (
    TIMEOUT_GRACE,
    Attempt,
    Ended,
    Seen,
    abandoned,
    build_context,
    check_conditions,
    prepare_call,
    run_call,
)
from workflow_cli.engine.attempt import task_events as attempt_events
from workflow_cli.engine.event_waits import begin_wait, wants_compensation
from workflow_cli.engine.executor import AttemptPool, Executor, ThreadExecutor, Unit, task_of
from workflow_cli.engine.fanout import Fanout
from workflow_cli.engine.loops import end_group_iteration, iteration_context
from workflow_cli.engine.mailbox import OutboxWatch, runs_inline
from workflow_cli.engine.recorder import NullReporter, Recorder, Reporter, pause_after_full_disk
from workflow_cli.engine.runs import RunOptions, RunOutcome
from workflow_cli.engine.scheduler import (
    EndIteration,
    Expand,
    Scheduler,
    Skip,
    Start,
    StartItem,
    TimedOut,
)
from workflow_cli.engine.signals import counting_signals
from workflow_cli.engine.timers import fire_due, seconds_until_next
from workflow_cli.engine.turns import Turns
from workflow_cli.errors import DiskFullError, StateError
from workflow_cli.store import events as ev
from workflow_cli.store.instances import load_definition, load_state, open_journal
from workflow_cli.store.journal import Clock, Event, Journal, Record
from workflow_cli.store.runlock import RunLock
from workflow_cli.store.secrets import RunSecrets
from workflow_cli.store.state import (
    DONE_TASK_STATES,
    FINAL_INSTANCE_STATES,
    State,
    why_not_runnable,
)
from workflow_cli.store.workspace import Workspace

__all__ = ["NullReporter", "Reporter", "RunOptions", "RunOutcome", "Runner"]

_DECIDING = ("approval_recorded", "agent_delivered", "signal_consumed")  # it may go on
# How long a run that is ending waits for interrupted attempts to let go (a command
# agent notices within a tenth of a second and has its process group killed).
_DRAIN_SECONDS = 5.0


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
        parent_cancel: threading.Event | None = None,
        secrets: RunSecrets | None = None,
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
        self.parent_cancel = parent_cancel  # a child run: its parent's attempt's flag
        self.secrets = secrets
        self.pool: AttemptPool[Ended] = AttemptPool(self.executor, monotonic)
        self.to_submit: list[tuple[str, Callable[[], None]]] = []
        self.signals = self.signals_seen = 0
        self.stop_deadline: float | None = None  # then tasks in flight are interrupted
        self.outboxes = OutboxWatch(workspace, instance_id, clock, monotonic)
        self.agents: dict[str, Any] | None = None  # agents.yaml as read for this turn

    def run(self) -> RunOutcome:
        lock = RunLock(self.workspace.instance_dir(self.instance_id))
        lock.acquire(self.instance_id)
        journal = open_journal(self.workspace, self.instance_id, self.clock)
        try:
            lock.reserve()
            with counting_signals(self.options.handle_signals, self._count_signal):
                return self._run(journal)
        except DiskFullError as exc:  # not left running with no runner: recorded paused,
            lock.give_back_reserve()  # in the room the run lock set aside
            if hasattr(self, "recorder"):
                self.recorder.abandon()
            self.pool.give_up_all("stop", _DRAIN_SECONDS)  # these run again on resume
            pause_after_full_disk(self.workspace, self.instance_id, self.clock, exc)
            raise
        finally:
            lock.release()
            self.executor.shutdown()
            journal.close()
            gc.unfreeze()  # what checkpoints froze (Recorder._write_checkpoints)

    def _count_signal(self) -> None:  # Ctrl-C or SIGTERM (engine.signals)
        self.signals += 1

    # -- a run, start to end -----------------------------------------------------------------

    def _run(self, journal: Journal) -> RunOutcome:
        state = load_state(journal, use_cache=False)
        if state["state"] in FINAL_INSTANCE_STATES:
            raise StateError(why_not_runnable(self.instance_id, state["state"]))
        self.state: State = state
        self.workflow = parse_workflow(load_definition(self.workspace, self.instance_id))
        if self.secrets is not None:  # parameters as decrypted for this run
            self.workflow = replace(self.workflow, params=self.secrets.params)
        self.actions = {t: get_action(spec.action) for t, spec in self.workflow.tasks.items()}
        secret_values = self.secrets.values if self.secrets else None
        self.context = build_context(self.workflow.params, state, secret_values)
        self.recorder = Recorder(
            self.workspace,
            journal,
            state,
            reporter=self.reporter,
            monotonic=self.monotonic,
            cache_interval=self.options.state_cache_interval,
            masker=self.secrets.masker if self.secrets else None,
            checkpoint_interval=self.options.checkpoint_interval
            or self.workflow.checkpoint_interval,
        )
        orphans = kill_orphan_agents(self.workspace.instance_dir(self.instance_id))
        recovered, pid = state["state"] == "running", os.getpid()
        self.recorder.record(ev.run_started(pid, recovered=recovered, orphans_killed=orphans))
        self.recorder.request_checkpoint("start", f"run {state.get('runs', 0) + 1} started")
        self.recorder.flush()  # folds run_started: tasks that were in flight are pending again
        self.scheduler = Scheduler(
            self.workflow,
            state["tasks"],
            max_workers=self.options.max_workers,
            check_conditions=partial(check_conditions, context=self.context),
            finished_groups=[g for g, r in state.get("groups", {}).items() if r["done"]],
        )
        self.fanout = Fanout(self)
        for task_id in list(state["tasks"]):  # a decision may have come while no runner ran
            self._decided(task_id)
        Turns(self._take_turn, self.pool, self.monotonic).run()
        self.pool.drain(_DRAIN_SECONDS)
        final, reason = self.scheduler.final_state()
        if wants_compensation(self.workflow, self.state) and final in ("failed", "cancelled"):
            from workflow_cli.engine.compensation import run_compensations  # only when it runs

            run_compensations(  # newest completion first; a second Ctrl-C ends the series
                self.workspace,
                self.workflow,
                self.state,
                self.recorder.write,
                services=self.services,
                stop=lambda: self.signals > 1,
                rng=self.rng,
            )
        if final == "paused" and self.scheduler.stopping:
            self.recorder.request_checkpoint("stop", self.scheduler.stopping)
        self.recorder.flush()
        needs_person = final == "paused" and self.scheduler.needs_person
        self.recorder.record(ev.run_ended(final, reason, needs_person=needs_person))
        self.recorder.flush()
        self.recorder.save_cache(durable=True)
        return RunOutcome(self.instance_id, final, reason, needs_person)

    def _take_turn(self) -> float | None:
        """Act on what came back and on what is due, and start what may start (a turn,
        `engine.turns`). When to look in next at the latest; None once the run is over."""
        self.agents = agents_as_read(self.workspace)  # once for the attempts it starts
        for task_id, number, ended in self.pool.collect():
            self._finish(task_id, number, ended)
        for task_id, attempt in self.pool.expired():
            spent = self.monotonic() - attempt.started
            ended = abandoned(self.workflow.tasks[task_of(task_id)].timeout or 0.0, spent)
            self._finish(task_id, attempt.number, ended)
        self._take_external(self.recorder.poll())  # seen before anything new starts
        self._check_stop()
        for fired in fire_due(self.state, self.clock, "runner"):  # deadlines, reminders
            self.recorder.record(*fired.events)
            if fired.run_again:
                self._decided(fired.run_again)
        self._decide()
        self._flush()
        taken = self.outboxes.collect(self.recorder, force=self.scheduler.finished)
        if self.scheduler.finished and not taken:  # a result left as a file goes first
            return None
        now = self.monotonic()
        timer = seconds_until_next(self.state.get("timers"), self.clock)
        due = (self.scheduler.wake_at, self.pool.next_deadline(), self.recorder.wake_at)
        soonest = [t for t in (*due, timer and now + timer) if t is not None]
        return min([now + self.options.poll_interval, *soonest])

    def _decide(self) -> None:
        """Carry out the scheduler's decisions until it has none (skips and inline tasks
        settle at once and may let others go)."""
        while decisions := self.scheduler.next(self.monotonic()):
            for decision in decisions:
                if isinstance(decision, Start):
                    self._start(decision.task)
                elif isinstance(decision, Expand | StartItem):
                    self.fanout.decide(decision)
                elif isinstance(decision, EndIteration):
                    end_group_iteration(self, decision.group)
                elif isinstance(decision, Skip):
                    self.recorder.record(ev.task_skipped(decision.task, decision.reason))
                    self.scheduler.settled(decision.task)
                elif isinstance(decision, TimedOut):
                    self._cancel(decision.reason, timed_out=True)
                else:
                    failure = ActionFailed(decision.message, kind="expression", retryable=False)
                    number = self.state["tasks"][decision.task]["attempts"] + 1
                    self._finish(decision.task, number, Ended(failure, 0.0))

    # -- one attempt ---------------------------------------------------------------------

    def _start(self, task_id: str) -> None:
        spec, action = self.workflow.tasks[task_id], self.actions[task_id]
        number = self.state["tasks"][task_id]["attempts"] + 1
        attempt = Attempt(
            self.workspace,
            self.instance_id,
            task_id,
            number,
            iteration_context(spec, self.state["tasks"][task_id], self.context),
            self.services,
            decisions=[a for a in self.state.get("approvals", []) if a["task"] == task_id],
            waiting_for=self.state["tasks"][task_id].get("waiting_for"),
            deliveries=self.state.get("deliveries", {}).get(task_id, []),
            masker=self.recorder.masker,
            cache_clock=self.clock if self.options.use_cache else None,
            agents=self.agents,
        )
        call = prepare_call(attempt, spec, overrides=self.state.get("overrides", {}).get(task_id))
        if isinstance(call, ActionFailed) or runs_inline(action, call):
            ended = run_call(action, call)
            if not isinstance(call, ActionFailed) and not isinstance(ended.result, AwaitDecision):
                self.recorder.record(ev.task_started(task_id, number))
            self._finish(task_id, number, ended)
            return
        self.recorder.record(ev.task_started(task_id, number))
        work = self.pool.prepare(
            task_id,
            number,
            self.executor.attempt_work(action, call),
            cancel=attempt.cancel,
            deadline_after=spec.timeout + TIMEOUT_GRACE if spec.timeout else None,
        )
        self.to_submit.append((task_id, work))

    def _finish(self, task_id: Unit, number: int, ended: Ended) -> None:
        if isinstance(task_id, tuple):  # an item of a for_each task
            return self.fanout.finish(*task_id, number, ended)
        spec, task = self.workflow.tasks[task_id], self.state["tasks"][task_id]
        overrides = self.state.get("overrides", {}).get(task_id)
        outcome = attempt_events(
            spec,
            number,
            ended,
            may_retry=not self.scheduler.halted,
            rng=self.rng,
            linked_child=self.state.get("children", {}).get(task_id),
            seen=Seen(task, iteration_context(spec, task, self.context), overrides),
            interrupted=task.get("interrupted", 0),  # cut short by a stop: no retry used up
        )
        self.recorder.record(*outcome.events)
        now_state = task["state"]
        if outcome.retry_after is not None:
            self.scheduler.retry_at(task_id, self.monotonic() + outcome.retry_after)
        elif now_state not in DONE_TASK_STATES:
            self.scheduler.released(task_id)  # waiting: with its timers, or a signal it takes
            begin_wait(self, task_id)
        else:
            self.scheduler.settled(task_id)
            self.recorder.settled(task_id, failed=now_state == "failed", milestone=spec.milestone)

    # -- the journal -------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what was recorded in one batch, then hand out the work: a task that
        depends on something settled and not yet on disk starts once it is (the batch is
        then fsynced), any other while the sync, if any, is under way."""
        submit, self.to_submit = self.to_submit, []
        settled = self.recorder.unsynced
        ready: list[Callable[[], None]] = []
        later: list[Callable[[], None]] = []
        for task_id, work in submit:
            deps = self.workflow.tasks[task_id].dependencies
            (ready if settled.isdisjoint(deps) else later).append(work)
        self.recorder.flush(partial(self.pool.submit, ready), sync=bool(later))
        if not self.recorder.unsynced:  # results on disk: a Dask executor lets them go
            self.pool.recorded()
        self.pool.submit(later)

    def _take_external(self, events: list[Event]) -> None:
        """Act on what other commands appended: a stop, a cancel, or a decision or a
        delivery for a waiting task."""
        for event in events:
            if event["type"] == "stop_requested":
                by = event.get("by") or "another process"
                self._begin_stop(f"stopped by {by}", event.get("grace"))
            elif event["type"] == "cancel_requested" and not self.scheduler.cancelling:
                self._cancel(f"cancelled by {event.get('by') or 'another process'}")
            elif event["type"] in _DECIDING and event.get("task") in self.state["tasks"]:
                self._decided(event["task"])

    def _decided(self, task_id: str) -> None:
        """A waiting task may go on (a decision or a result came): run it again."""
        if self.state["tasks"][task_id]["state"] == "waiting":
            self.scheduler.claim(task_id)
            self._start(task_id)

    # -- stopping ----------------------------------------------------------------------------

    def _check_stop(self) -> None:
        """Act on Ctrl-C / SIGTERM and on the parent's stop or cancel (for a child run),
        and interrupt tasks in flight once a stop's grace ends."""
        parent = self.parent_cancel
        if parent is not None and parent.is_set():
            if getattr(parent, "reason", "cancel") == "cancel":
                if not self.scheduler.cancelling:
                    self._cancel("cancelled with its parent")
            elif not self.scheduler.stopping:
                self._begin_stop("stopped with its parent", grace=0.0)
        if self.signals > self.signals_seen:
            first = self.signals_seen == 0
            self.signals_seen = self.signals
            if first and not self.scheduler.stopping:
                by = "a signal (Ctrl-C or SIGTERM)"
                self.recorder.record(ev.stop_requested(by, None))
                self._begin_stop(f"stopped by {by}", grace=None)
            else:
                self.stop_deadline = self.monotonic()  # a second one: interrupt at once
        if self.stop_deadline is not None and self.monotonic() >= self.stop_deadline:
            for task_id in list(self.pool.live):
                self._interrupt(task_id, cancelled=False, reason="the run was stopped")

    def _begin_stop(self, reason: str, grace: float | None) -> None:
        self.scheduler.stop(reason)
        if grace is not None:
            deadline = self.monotonic() + grace
            self.stop_deadline = min(self.stop_deadline or deadline, deadline)

    def _cancel(self, reason: str, *, timed_out: bool = False) -> None:
        """End every task that is not finished: in flight (their process groups are
        killed), retrying, waiting or pending. A run that timed out then fails."""
        (self.scheduler.time_out if timed_out else self.scheduler.cancel)(reason)
        for task_id in list(self.pool.live):
            self._interrupt(task_id, cancelled=True, reason=reason)
        for task_id, task in self.state["tasks"].items():
            if task["state"] not in DONE_TASK_STATES:
                self.recorder.record(ev.task_cancelled(task_id, reason))

    def _interrupt(self, task_id: Unit, *, cancelled: bool, reason: str) -> None:
        attempt = self.pool.give_up(task_id, "cancel" if cancelled else "stop")
        if isinstance(task_id, tuple):
            return self.fanout.interrupt(task_id, attempt, reason=reason)
        duration = round(self.monotonic() - attempt.started, 6)
        event: Record = (
            ev.task_cancelled(task_id, reason, attempt=attempt.number, duration=duration)
            if cancelled
            else ev.task_interrupted(task_id, attempt.number, duration, reason)
        )
        self.recorder.record(event)
        self.scheduler.released(task_id)
