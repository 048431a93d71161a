"""Event waits: ``wait_for_event`` tasks and the signals sent to an instance.

A ``wait_for_event`` task waits (like an approval gate: the task is ``waiting`` and,
once nothing else can run, the run ends with the instance ``waiting``) until a signal
with its ``event`` name, and for which its ``filter`` holds, is sent to the instance
(`send_signal`, ``workflow_cli signal``). The signal's data is the task's output.

Every signal is journaled (``signal_received``: its id, event, data and who sent it)
and taken at most once (``signal_consumed``): by the first waiting task (in definition
order) that it matches when it comes, or, when none waits for it yet, kept and taken
by the first wait that begins later and matches it (the earliest such signal first).
A signal that matches no wait stays pending.

The filter is a bare expression (``event.data.order_id == params.order_id``) over
``event`` (``name``, ``data``, ``by``, ``time``), ``params``, ``steps`` and
``instance``; one that fails (a key the data lacks) does not match.

``timeout_seconds`` sets a durable timer (`engine.timers`): when it fires with no
signal taken, the task does what ``on_timeout`` says: ``fail`` (the default: the task
fails, "no EVENT within N s"), ``continue`` (the task completes with the output
``{"timed_out": true}``) or ``compensate`` (the task fails, and when the run ends
failed the workflow's compensations run, as with ``on_failure: compensate``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from workflow_cli.engine.timers import Fired, fire_in_instance, new_timer
from workflow_cli.errors import StateError, UsageError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import FINAL_INSTANCE_STATES, SignalRecord, State, TimerRecord
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.definition.model import WorkflowSpec

TIMEOUT = "event_timeout"  # the kind of an event wait's timer
ON_TIMEOUT = ("fail", "continue", "compensate")
KIND = "event"  # ``waiting_for.kind`` of a task that waits for an event
# The largest signal data: it becomes a task's output, which has this limit too.
MAX_DATA_CHARS = 1_000_000


@readonly_dataclass
class WaitSpec:
    """A ``wait_for_event`` task's parameters, checked."""

    event: str
    filter: str | None = None
    timeout_seconds: float | None = None
    on_timeout: str = "fail"


def parse_wait(parameters: Mapping[str, Any]) -> WaitSpec:
    """The task's parameters as a `WaitSpec` (ValueError naming what is wrong)."""
    unknown = sorted(set(parameters) - {"event", "filter", "timeout_seconds", "on_timeout"})
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
    event = parameters.get("event")
    if not isinstance(event, str) or not event.strip():
        raise ValueError("'event' must name the event (text)")
    condition = parameters.get("filter")
    if condition is not None and (not isinstance(condition, str) or not condition.strip()):
        raise ValueError("'filter' must be an expression (text)")
    timeout = parameters.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ValueError("'timeout_seconds' must be a number of seconds above zero")
    on_timeout = parameters.get("on_timeout", "fail")
    if on_timeout not in ON_TIMEOUT:
        raise ValueError(f"'on_timeout' must be one of {', '.join(ON_TIMEOUT)}")
    seconds = None if timeout is None else float(timeout)
    return WaitSpec(event, condition, seconds, on_timeout)


def waiting_for(spec: WaitSpec, attempt: int) -> dict[str, Any]:
    """What a task that waits for an event records it waits for."""
    return {
        "kind": KIND,
        "event": spec.event,
        "filter": spec.filter,
        "timeout_seconds": spec.timeout_seconds,
        "on_timeout": spec.on_timeout,
        "attempt": attempt,
    }


def waits_for_event(state: State, task_id: str) -> dict[str, Any] | None:
    """What the task waits for, when it waits for an event and has taken none yet."""
    task = state["tasks"].get(task_id)
    if task is None or task["state"] != "waiting":
        return None
    waiting = task.get("waiting_for") or {}
    if waiting.get("kind") != KIND or "signal" in waiting or "timed_out" in waiting:
        return None
    return waiting


def describe_event_wait(waiting: Mapping[str, Any], deadline: str | None = None) -> str:
    """A waiting task's event, filter and deadline, for a person."""
    text = f"event {waiting.get('event')}"
    if waiting.get("filter"):
        text += f" where {waiting['filter']}"
    if deadline:
        text += f"; deadline {deadline} (then {waiting.get('on_timeout', 'fail')})"
    return text


def wait_deadline(state: State, task_id: str) -> str | None:
    """When the task's event wait times out (None: it has no timeout)."""
    due = [
        t["due"]
        for t in state.get("timers", {}).values()
        if t["target"] == task_id and t["kind"] == TIMEOUT
    ]
    return min(due) if due else None


# -- matching ----------------------------------------------------------------------------


def filter_context(params: Mapping[str, Any], state: State) -> dict[str, Any]:
    """What a filter sees besides ``event``: the instance's params, steps and id (the
    same for the runner and for a command)."""
    from workflow_cli.engine.attempt import build_context

    context = build_context(params, state)
    context.pop("secrets", None)
    return context


def matches(waiting: Mapping[str, Any], signal: SignalRecord, context: Mapping[str, Any]) -> bool:
    """Whether `signal` is what the waiting task waits for: its event name, and its
    filter holds (a filter that fails to evaluate does not hold)."""
    if signal["event"] != waiting.get("event"):
        return False
    condition = waiting.get("filter")
    if not condition:
        return True
    from workflow_cli.definition.expressions import evaluate_condition
    from workflow_cli.errors import ExpressionError

    event = {"name": signal["event"], "data": signal["data"], "by": signal["by"]}
    try:
        return evaluate_condition(
            condition, {**context, "event": {**event, "time": signal["time"]}}
        )
    except ExpressionError:
        return False


def pending_signals(state: State) -> list[SignalRecord]:
    """The signals no task has taken, oldest first."""
    return [s for s in state.get("signals", {}).values() if s["consumed_by"] is None]


def _taking(state: State, task_id: str, signal: SignalRecord) -> list[Record]:
    waiting = state["tasks"][task_id].get("waiting_for") or {}
    events: list[Record] = [ev.signal_consumed(signal["signal"], task_id, waiting["attempt"])]
    events.extend(
        ev.timer_cancelled(t["timer"], f"signal {signal['signal']} came")
        for t in state.get("timers", {}).values()
        if t["target"] == task_id and t["kind"] == TIMEOUT
    )
    return events


def take_pending(state: State, task_id: str, context: Mapping[str, Any]) -> list[Record]:
    """The events of the task taking the oldest pending signal it matches (none: [])."""
    waiting = waits_for_event(state, task_id)
    if waiting is None:
        return []
    for signal in pending_signals(state):
        if matches(waiting, signal, context):
            return _taking(state, task_id, signal)
    return []


# -- in a run ----------------------------------------------------------------------------


def begin_wait(runner: Any, task_id: str) -> None:
    """What a task of `runner` that has begun to wait needs: an approval gate its
    deadlines and reminders; an event wait the oldest pending signal it matches (taken
    at once, and the task runs again) or else its timeout timer."""
    from workflow_cli.engine.approvals import wait_timers

    state: State = runner.state
    now = runner.clock()
    runner.recorder.record(*wait_timers(state, task_id, now))
    taken = take_pending(state, task_id, filter_context(runner.workflow.params, state))
    if taken:
        runner.recorder.record(*taken)
        runner._decided(task_id)
        return
    runner.recorder.record(*timeout_timers(state, task_id, now))


def timeout_timers(state: State, task_id: str, now: datetime) -> list[Record]:
    """The timer an event wait with a timeout needs and does not have."""
    waiting = waits_for_event(state, task_id)
    if waiting is None or not waiting.get("timeout_seconds"):
        return []
    attempt = waiting["attempt"]
    for timer in state.get("timers", {}).values():
        mine = timer["target"] == task_id and timer["kind"] == TIMEOUT
        if mine and timer["data"].get("attempt") == attempt:
            return []
    due = now + timedelta(seconds=float(waiting["timeout_seconds"]))
    return [new_timer(state, TIMEOUT, task_id, due, {"attempt": attempt})]


def fire_timeout(state: State, timer: TimerRecord, now: datetime) -> Fired:
    """An event wait's timeout: the task (still waiting, with no signal) timed out and
    runs again to do what its ``on_timeout`` says."""
    task_id = timer["target"]
    waiting = waits_for_event(state, task_id)
    if waiting is None or waiting.get("attempt") != timer["data"].get("attempt"):
        return Fired([ev.timer_cancelled(timer["timer"], "the task no longer waits")])
    timed_out = ev.event_wait_timed_out(
        task_id,
        int(waiting["attempt"]),
        str(waiting["event"]),
        float(waiting.get("timeout_seconds") or 0),
        str(waiting.get("on_timeout", "fail")),
    )
    return Fired([timed_out], run_again=task_id)


TIMER_HANDLERS = {TIMEOUT: fire_timeout}


def wants_compensation(workflow: WorkflowSpec, state: State) -> bool:
    """Whether a run that ends failed or cancelled runs the workflow's compensations: its
    ``on_failure`` is ``compensate``, or an event wait timed out with ``on_timeout:
    compensate``."""
    if workflow.on_failure == "compensate":
        return True
    return any(
        (task.get("error") or {}).get("on_timeout") == "compensate"
        for task in state["tasks"].values()
        if task["state"] == "failed"
    )


# -- sending a signal --------------------------------------------------------------------


@readonly_dataclass
class SignalResult:
    """What sending a signal did: its id, who sent it, the task that took it (None: it
    is kept pending), the instance's state and whether a runner holds it now."""

    instance: str
    signal: str
    event: str
    by: str
    consumed_by: str | None
    state: str
    runner_alive: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.instance,
            "signal": self.signal,
            "event": self.event,
            "by": self.by,
            "consumed_by": self.consumed_by,
            "state": self.state,
            "runner_alive": self.runner_alive,
        }


def send_signal(
    workspace: Workspace,
    instance_id: str,
    event: str,
    data: Any,
    *,
    by: str,
    clock: Clock,
) -> SignalResult:
    """Journal a signal to the instance; the first waiting task it matches takes it
    (`SignalResult.consumed_by`), else it is kept for a wait that begins later. Due
    timers fire first (a wait whose timeout passed takes no late signal). Refused: an
    empty event name, data too large, a finished instance."""
    from workflow_cli.definition.model import parse_workflow
    from workflow_cli.store.instances import load_definition

    if not event.strip():
        raise UsageError("the event needs a name")
    try:
        size = len(json.dumps(data, allow_nan=False))  # NaN and Infinity are not JSON
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the event's data is not JSON data: {exc}") from None
    if size > MAX_DATA_CHARS:
        raise UsageError(
            f"the event's data is {size:,} characters of JSON, more than {MAX_DATA_CHARS:,}"
        )
    params = parse_workflow(load_definition(workspace, instance_id)).params
    fire_in_instance(workspace, instance_id, clock, by="signal")
    journal = open_journal(workspace, instance_id, clock)
    found: list[tuple[str, str | None]] = []

    def decide(state: State) -> list[Record]:
        if state["state"] in FINAL_INSTANCE_STATES:
            raise StateError(
                f"instance {instance_id} is {state['state']}; it takes no more signals"
            )
        signal_id = f"signal-{state['seq'] + 1}"
        events: list[Record] = [ev.signal_received(signal_id, event, data, by)]
        record: SignalRecord = {
            "signal": signal_id,
            "event": event,
            "data": data,
            "by": by,
            "time": clock().isoformat(timespec="milliseconds"),
            "consumed_by": None,
            "consumed_at": None,
        }
        context = filter_context(params, state)
        for task_id in state["tasks"]:
            waiting = waits_for_event(state, task_id)
            if waiting is not None and matches(waiting, record, context):
                events.extend(_taking(state, task_id, record))
                found.append((signal_id, task_id))
                return events
        found.append((signal_id, None))
        return events

    try:
        state = append_events(journal, decide)
    finally:
        journal.close()
    signal_id, task_id = found[-1]
    alive = state.get("runner") is not None
    return SignalResult(instance_id, signal_id, event, by, task_id, state["state"], alive)
