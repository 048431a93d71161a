"""The contract between the runner and an action.

An action is an object with a ``name``, an ``inline`` flag, ``check`` (static checks of
a task that uses it, run by ``validate``) and ``run`` (does the work of one attempt).
``run`` returns the task's output — any JSON value, at most ``MAX_OUTPUT_CHARS`` as JSON
— or raises:

- `ActionFailed` for a failure of this attempt (the runner retries it per the task's
  policy when ``retryable``), with a ``kind`` such as ``timeout``, ``exit_code``,
  ``http_status`` or ``error`` and ``details`` (exit code, status, …) for the record;
- `AwaitDecision` when the task must wait for a person (an approval gate).

Any other exception from ``run`` is recorded as a failed attempt of kind ``error``.
Actions never print; what they want a person to read goes to ``call.log``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Protocol

from workflow_cli.definition.sandbox import MAX_VALUE_CHARS
from workflow_cli.definition.validation import CheckContext
from workflow_cli.errors import Problem, WorkflowCliError
from workflow_cli.readonly import mutable_dataclass
from workflow_cli.store.workspace import Workspace

__all__ = ["Action", "ActionFailed", "AwaitDecision", "CheckContext", "TaskCall", "invoke_action"]

# A task's output goes into the journal: like a rendered value, it has a size limit.
MAX_OUTPUT_CHARS = MAX_VALUE_CHARS


class LogSink(Protocol):
    """Where a task attempt writes what a person may want to read (an open text file)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class ActionFailed(Exception):
    """One attempt of a task failed."""

    def __init__(
        self,
        message: str,
        *,
        kind: str = "error",
        retryable: bool = True,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.details = dict(details or {})


class AwaitDecision(Exception):
    """The task waits for something outside the run (a person's approval)."""

    def __init__(self, waiting_for: Mapping[str, Any]) -> None:
        super().__init__("waiting")
        self.waiting_for = dict(waiting_for)


@mutable_dataclass
class TaskCall:
    """Everything one attempt of one task may use."""

    workspace: Workspace
    instance_id: str
    task_id: str
    attempt: int
    agent_id: str | None
    parameters: dict[str, Any]
    timeout: float | None
    log: LogSink
    log_path: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    context: Mapping[str, Any] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    waiting_for: dict[str, Any] | None = None  # what the task waited for before (a gate)
    deliveries: list[dict[str, Any]] = field(default_factory=list)  # from mailbox agents
    services: Any = None  # engine services for actions that need them (child runs, agents)
    cache: Any = None  # the engine's result cache for this call (actions do not use it)
    item: int | None = None  # the index of the item, for an item of a for_each task
    # The workspace's declared agents as read when the attempt was prepared (None: the
    # attempt reads them): one read of agents.yaml serves every attempt a turn starts.
    agents: Mapping[str, Any] | None = None

    @property
    def unit(self) -> str:
        """The task's id, or ``TASK.K`` for item K of a for_each task (what a child
        instance is named after)."""
        return self.task_id if self.item is None else f"{self.task_id}.{self.item}"


class Action(Protocol):
    name: str
    inline: bool

    def check(self, ctx: CheckContext) -> list[Problem]: ...

    def run(self, call: TaskCall) -> Any: ...


def require_keys(
    ctx: CheckContext, required: Mapping[str, type | tuple[type, ...]]
) -> list[Problem]:
    """Problems for parameters that are missing or, when not templated, of the wrong type."""
    problems = []
    parameters = ctx.task.get("parameters") or {}
    for key, kind in required.items():
        value = parameters.get(key)
        if value is None:
            problems.append(Problem(f"{ctx.pointer}/parameters", f"needs '{key}'"))
        elif not isinstance(value, kind) and not (isinstance(value, str) and "{{" in value):
            problems.append(
                Problem(f"{ctx.pointer}/parameters/{key}", f"must be {_kind_name(kind)}")
            )
    return problems


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


RunFunction = Callable[[TaskCall], Any]


class OutputSpill(Protocol):
    """Where outputs above a size limit go instead of the journal: `store` keeps the
    JSON text somewhere and returns what the journal keeps of it (a path and a digest)."""

    @property
    def limit(self) -> int: ...

    def store(self, call: TaskCall, text: str) -> Any: ...


def invoke_action(action: Action, call: TaskCall, *, spill: OutputSpill | None = None) -> Any:
    """Run one attempt; every way it can end becomes a value, never an escaping exception.
    With `spill`, an output above its limit is stored by it and the journal keeps its
    reference."""
    try:
        output = action.run(call)
    except (ActionFailed, AwaitDecision) as exc:
        return exc
    except WorkflowCliError as exc:
        return ActionFailed(exc.message, kind=type(exc).__name__, retryable=False)
    except Exception as exc:
        with contextlib.suppress(OSError):
            call.log.write(traceback.format_exc())
        name = type(exc).__name__
        return ActionFailed(f"{name}: {exc}", kind="error", details={"type": name})
    try:
        text = json.dumps(output)
    except (TypeError, ValueError) as exc:
        return ActionFailed(
            f"the output is not JSON data: {exc}", kind="bad_output", retryable=False
        )
    size = len(text)
    if spill is not None and size > spill.limit:
        try:
            return spill.store(call, text)
        except (OSError, WorkflowCliError) as exc:
            return ActionFailed(f"the output could not be stored as a file: {exc}")
    if size > MAX_OUTPUT_CHARS:
        return ActionFailed(
            f"the output is {size:,} characters of JSON, more than the limit of"
            f" {MAX_OUTPUT_CHARS:,}",
            kind="too_large",
            retryable=False,
        )
    return output
