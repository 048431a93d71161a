"""Deliveries: what mailbox agents send back, from any terminal or as files.

An assignment (`workflow_cli.engine.agents.mailbox`) waits in
``agents/NAME/inbox/<instance>.<task>.json``. Its result comes back either

- by command: ``workflow_cli deliver ID TASK --as NAME --output JSON`` (or ``--error``),
  which is `record_delivery`; or
- as a file the agent writes into ``agents/NAME/outbox/``, named
  ``<instance>.<task>.json`` (the ``deliver.outbox`` of the assignment; write it under
  another name and rename it, so that it is never read half-written), holding
  ``{"output": ...}`` or ``{"error": "what went wrong"}`` (optionally ``"attempt"``,
  checked). A live runner takes such files at once (`collect_outboxes`), otherwise
  ``resume`` does; a file taken is removed, a file refused is moved to
  ``outbox/rejected/`` with the reason beside it (``NAME.reason.txt``).

Either way the delivery is appended to the instance's journal (``agent_delivered``:
which attempt, who, how, when) under the journal lock, after these checks: the task
waits for that agent, nothing was delivered for the attempt yet, and an output matches
the task's ``output_schema``. A refused delivery records nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflow_cli.engine.actions.base import MAX_OUTPUT_CHARS, Action, TaskCall
from workflow_cli.engine.agents.mailbox import agent_folder, inbox_path, read_json_file
from workflow_cli.errors import (
    NotFoundError,
    OutputRejectedError,
    StateError,
    UsageError,
    WorkflowCliError,
)
from workflow_cli.store import events as ev
from workflow_cli.store.files import write_atomic
from workflow_cli.store.instances import append_events, load_definition, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.engine.recorder import Recorder

_NO_OUTPUT = object()
LOOK_EVERY = 0.2  # seconds between a live runner's looks at the outboxes


def runs_inline(action: Action, call: TaskCall) -> bool:
    """Whether an attempt runs on the runner's own thread: an inline action, or an
    ``agent_task`` of a mailbox agent (it only writes or reads a file, and an attempt
    that waits must not be counted as started)."""
    if action.inline:
        return True
    if action.name != "agent_task" or not call.agent_id:
        return False
    from workflow_cli.engine.agents.registry import agent_kind

    try:
        return agent_kind(call.workspace, call.agent_id, call.agents) == "mailbox"
    except WorkflowCliError:
        return False  # the attempt itself reports it


def open_assignment(state: State, task_id: str, workspace: Workspace, agent: str) -> int:
    """The attempt of `task_id` that waits for a delivery from `agent`."""
    task = state["tasks"][task_id]
    waiting_for = task.get("waiting_for") or {}
    if task["state"] == "waiting" and waiting_for.get("kind") == "mailbox":
        if waiting_for.get("agent") != agent:
            raise StateError(
                f"task '{task_id}' is assigned to agent '{waiting_for.get('agent')}', not '{agent}'"
            )
        return int(waiting_for["attempt"])
    if task["state"] == "pending":  # assigned by a runner that died before noting the wait
        assignment = read_json_file(inbox_path(workspace, agent, state["id"], task_id))
        if isinstance(assignment, dict) and assignment.get("attempt") == task["attempts"] + 1:
            return task["attempts"] + 1
    raise StateError(f"task '{task_id}' is {task['state']}, not waiting for a delivery")


def check_output(workspace: Workspace, instance_id: str, task_id: str, output: Any) -> None:
    """Refuse an output that is too large or does not match the task's
    ``output_schema`` (OutputRejectedError, exit 2)."""
    try:
        size = len(json.dumps(output, allow_nan=False))  # NaN and Infinity are not JSON
    except (TypeError, ValueError) as exc:
        raise OutputRejectedError(f"the output is not JSON data: {exc}") from None
    if size > MAX_OUTPUT_CHARS:
        raise OutputRejectedError(
            f"the output is {size:,} characters of JSON, more than the limit of"
            f" {MAX_OUTPUT_CHARS:,}"
        )
    task = load_definition(workspace, instance_id)["tasks"].get(task_id) or {}
    schema = task.get("output_schema")
    if schema is None:
        return
    from jsonschema import Draft202012Validator

    errors = sorted(
        Draft202012Validator(schema).iter_errors(output), key=lambda e: list(e.absolute_path)
    )
    if errors:
        shown = [
            f"{'/' + '/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in errors[:5]
        ]
        raise OutputRejectedError(
            f"the output of '{task_id}' does not match its output_schema: " + "; ".join(shown)
        )


def record_delivery(
    workspace: Workspace,
    instance_id: str,
    task_id: str,
    *,
    agent: str,
    clock: Clock,
    output: Any = _NO_OUTPUT,
    error: str | None = None,
    via: str = "command",
    by: str | None = None,
) -> tuple[int, State]:
    """Journal agent `agent`'s result for the attempt of `task_id` that waits for it
    (an output, or with `error` a failure), delivered for it by `by` (a person, or a
    server token) when given; the attempt and the state after it."""
    if (output is _NO_OUTPUT) == (error is None):
        raise UsageError("give the output or an error (one of them)")
    if error is not None and not error.strip():
        raise UsageError("--error needs a message")
    journal = open_journal(workspace, instance_id, clock)
    chosen: list[int] = []

    def decide(state: State) -> list[Record]:
        if state["state"] in FINAL_INSTANCE_STATES:
            raise StateError(f"instance {instance_id} is {state['state']}; nothing waits")
        if task_id not in state["tasks"]:
            raise NotFoundError(f"instance {instance_id} has no task '{task_id}'")
        attempt = open_assignment(state, task_id, workspace, agent)
        for earlier in state.get("deliveries", {}).get(task_id, []):
            if earlier.get("attempt") == attempt:
                raise StateError(
                    f"attempt {attempt} of '{task_id}' was delivered already, by"
                    f" {earlier.get('agent')} ({earlier.get('via')}) at {earlier.get('time')};"
                    " a second delivery is refused"
                )
        chosen.append(attempt)
        if output is not _NO_OUTPUT:
            check_output(workspace, instance_id, task_id, output)
        if error is not None:
            failure = {"message": error.strip(), "kind": "agent_error"}
            return [ev.agent_delivered(task_id, attempt, agent, via, error=failure, by=by)]
        return [ev.agent_delivered(task_id, attempt, agent, via, output=output, by=by)]

    try:
        state = append_events(journal, decide)
    finally:
        journal.close()
    inbox_path(workspace, agent, instance_id, task_id).unlink(missing_ok=True)
    return chosen[0], state


def waiting_agents(state: State, tasks: Iterable[str] | None = None) -> set[str]:
    """The mailbox agents that tasks of `state` wait for (of `tasks` only, if given)."""
    found = set()
    every = state["tasks"]
    for task in every.values() if tasks is None else (every[t] for t in tasks if t in every):
        waiting_for = task.get("waiting_for") or {}
        if task["state"] == "waiting" and waiting_for.get("kind") == "mailbox":
            found.add(str(waiting_for.get("agent")))
    return found


class OutboxWatch:
    """A runner's look at the outboxes of the agents its tasks wait for: at most once per
    `every` seconds, or at once when forced (the run is about to end).

    Only the first look reads every task's state; after it, the tasks looked at are the
    ones found waiting for a mailbox agent and those that went waiting since (the
    recorder notes each ``task_waiting`` event, its own and other commands'): a look that
    read every task would cost as much as the run is large, several times a second."""

    def __init__(
        self,
        workspace: Workspace,
        instance_id: str,
        clock: Clock,
        monotonic: Callable[[], float],
        every: float = LOOK_EVERY,
    ) -> None:
        self.workspace, self.instance_id, self.clock = workspace, instance_id, clock
        self.monotonic, self.every = monotonic, every
        self.last: float | None = None
        self.watched: set[str] | None = None  # tasks waiting for a mailbox agent (or were)

    def collect(self, recorder: Recorder, *, force: bool = False) -> int:
        """How many deliveries were taken from outbox files and journaled."""
        state = recorder.state
        went_waiting = recorder.take_waited()
        now = self.monotonic()
        if self.watched is None:
            self.watched = {
                task_id
                for task_id, task in state["tasks"].items()
                if task["state"] == "waiting"
                and (task.get("waiting_for") or {}).get("kind") == "mailbox"
            }
        self.watched |= went_waiting
        if not force and self.last is not None and now - self.last < self.every:
            return 0
        self.last = now
        tasks = state["tasks"]
        self.watched = {t for t in self.watched if t in tasks and tasks[t]["state"] == "waiting"}
        if not self.watched:
            return 0
        return collect_outboxes(self.workspace, self.instance_id, state, self.clock, self.watched)


def collect_outboxes(
    workspace: Workspace,
    instance_id: str,
    state: State,
    clock: Clock,
    tasks: Iterable[str] | None = None,
) -> int:
    """Take the outbox files for this instance of the agents its tasks (or `tasks`) wait
    for; how many deliveries were journaled. Cheap when no task waits for a mailbox agent."""
    taken = 0
    for agent in sorted(waiting_agents(state, tasks)):
        outbox = agent_folder(workspace, agent) / "outbox"
        try:
            entries = [
                e.name
                for e in os.scandir(outbox)
                if e.name.startswith(f"{instance_id}.") and e.name.endswith(".json")
            ]
        except OSError:
            continue
        for name in sorted(entries):
            taken += _take_file(workspace, instance_id, state, agent, outbox / name, clock)
    return taken


def _take_file(
    workspace: Workspace, instance_id: str, state: State, agent: str, path: Path, clock: Clock
) -> int:
    # Task ids hold no dots, so the name's last dotted part is the task.
    named_instance, _, task_id = path.name[: -len(".json")].rpartition(".")
    if named_instance != instance_id or task_id not in state["tasks"]:
        return 0  # another instance's (whose id starts with this one's), or no such task
    try:
        body = read_json_file(path)  # a folder or a named pipe there is refused too
        if not isinstance(body, dict) or ("output" in body) == ("error" in body):
            raise UsageError('an outbox file holds {"output": ...} or {"error": "..."}')
        if body.get("attempt") is not None:
            expected = open_assignment(state, task_id, workspace, agent)
            if body["attempt"] != expected:
                raise StateError(f"it is for attempt {body['attempt']}; attempt {expected} waits")
        error = body.get("error")
        if error is not None and not isinstance(error, str):
            error = json.dumps(error)
        record_delivery(
            workspace,
            instance_id,
            task_id,
            agent=agent,
            clock=clock,
            output=body.get("output", _NO_OUTPUT),
            error=error,
            via=f"outbox:{path.name}",
        )
    except WorkflowCliError as exc:
        _reject(path, exc.message)
        return 0
    path.unlink(missing_ok=True)
    return 1


def _reject(path: Path, reason: str) -> None:
    rejected = path.parent / "rejected"
    with contextlib.suppress(OSError):
        rejected.mkdir(mode=0o700, exist_ok=True)
        os.replace(path, rejected / path.name)
        write_atomic(rejected / f"{path.name}.reason.txt", (reason + "\n").encode("utf-8"))
