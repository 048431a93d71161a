"""Mailbox agents: work handed to someone outside the run through files.

``agents.yaml``::

    agents:
      reviewer:
        mailbox: true

An agent that is named but neither declared nor built in is a mailbox agent too (unless
the workspace sets ``undeclared_agents: error``).

An attempt writes its *assignment* to ``agents/NAME/inbox/<instance>.<task>.json`` (see
`write_assignment` for its fields) and the task waits; the run goes on with what else
can run and, when nothing can, ends ``waiting`` (exit 3). The result comes back as a
*delivery* (``workflow_cli deliver``, or a file in ``agents/NAME/outbox/``; see
`workflow_cli.engine.mailbox`), journaled; the attempt that is looked at again then
takes it: its output, or its error (the attempt fails, retried per the task's policy,
and the retry is a new assignment).

The same attempt is never assigned twice: an assignment already in the inbox for it is
left as it is (a runner killed after writing it, then resumed, finds it there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflow_cli.engine.actions.base import ActionFailed, AwaitDecision, TaskCall
from workflow_cli.errors import Problem, UsageError, WorkflowCliError
from workflow_cli.store.files import read_text, write_json_atomic
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.engine.agents.registry import AgentSpec

AGENTS_FOLDER = "agents"
# Patterns are compiled when first used (and kept in re's cache), not on import.
_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


def parse(entry: Mapping[str, Any], where: str) -> bool | Problem:
    """An ``agents.yaml`` entry with ``mailbox: true``."""
    if entry["mailbox"] is not True:
        return Problem(f"{where}/mailbox", "must be true")
    return True


def mailbox_name_ok(name: str) -> bool:
    """Whether `name` can be a folder name inside ``agents/``."""
    return bool(re.match(_NAME_RE, name)) and ".." not in name


def check_agent_name(name: str) -> None:
    """Refuse an agent name that cannot be a folder name inside ``agents/``."""
    if not mailbox_name_ok(name):
        raise UsageError(
            f"'{name}' cannot be a mailbox agent's name (letters, digits, '_', '-', '.')"
        )


def agent_folder(workspace: Workspace, name: str) -> Path:
    check_agent_name(name)
    return workspace.root / AGENTS_FOLDER / name


def inbox_path(workspace: Workspace, name: str, instance_id: str, task_id: str) -> Path:
    return agent_folder(workspace, name) / "inbox" / f"{instance_id}.{task_id}.json"


def read_json_file(path: Path) -> Any:
    """The JSON in `path`, or None when it is missing or not JSON (a folder or a named
    pipe in its place is a WorkspaceError naming it)."""
    try:
        return json.loads(read_text(path))
    except (OSError, ValueError):
        return None


def run(spec: AgentSpec[bool], call: TaskCall) -> Any:
    """The delivered result of this attempt, or (none yet) its assignment and a wait."""
    return run_mailbox(spec.name, call)


def run_mailbox(name: str, call: TaskCall) -> Any:
    try:
        path = inbox_path(call.workspace, name, call.instance_id, call.task_id)
    except UsageError as exc:
        raise ActionFailed(exc.message, retryable=False) from None
    delivered = [d for d in call.deliveries if d.get("attempt") == call.attempt]
    if delivered:
        path.unlink(missing_ok=True)
        delivery = delivered[-1]
        if delivery.get("error") is not None:
            error = delivery["error"]
            raise ActionFailed(
                f"agent '{name}' reported: {error.get('message')}",
                kind="agent_error",
                details={"agent": name, "delivered_at": delivery.get("time")},
            )
        return delivery.get("output")
    now = _now(call)
    assignment = read_json_file(path)
    if not _same_attempt(assignment, call):
        assignment = write_assignment(path, name, call, now)
    deadline = assignment.get("deadline")
    if deadline and now >= datetime.fromisoformat(deadline):
        path.unlink(missing_ok=True)
        raise ActionFailed(
            f"agent '{name}' delivered nothing by the deadline {deadline}", kind="timeout"
        )
    raise AwaitDecision(
        {
            "kind": "mailbox",
            "agent": name,
            "attempt": call.attempt,
            "assignment": str(path.relative_to(call.workspace.root)),
            "assigned_at": assignment.get("assigned_at"),
            "deadline": deadline,
        }
    )


def _same_attempt(assignment: Any, call: TaskCall) -> bool:
    return (
        isinstance(assignment, dict)
        and assignment.get("instance") == call.instance_id
        and assignment.get("task") == call.task_id
        and assignment.get("attempt") == call.attempt
    )


def _now(call: TaskCall) -> datetime:
    clock = getattr(call.services, "clock", None)
    now = clock() if callable(clock) else datetime.now(UTC)
    return now if isinstance(now, datetime) else datetime.now(UTC)


def write_assignment(path: Path, name: str, call: TaskCall, now: datetime) -> dict[str, Any]:
    """Write the assignment of this attempt (atomically, readable by its owner only):
    ``instance``, ``task``, ``attempt``, ``agent``, ``name``, ``description``,
    ``parameters`` (rendered; a run's secret values masked as ``***``),
    ``output_schema`` (when the task has one), ``assigned_at``, ``deadline`` (when the
    task has ``timeout_seconds``) and ``deliver`` (how to answer)."""
    from workflow_cli.store.instances import load_definition

    try:
        task = load_definition(call.workspace, call.instance_id)["tasks"][call.task_id]
    except (KeyError, TypeError, WorkflowCliError):
        task = {}
    masker = getattr(call.log, "masker", None)
    parameters = masker.stored(call.parameters) if masker else call.parameters
    assignment: dict[str, Any] = {
        "instance": call.instance_id,
        "task": call.task_id,
        "attempt": call.attempt,
        "agent": name,
        "name": task.get("name") or call.task_id,
        "description": task.get("description"),
        "parameters": parameters,
        "assigned_at": now.isoformat(timespec="milliseconds"),
    }
    if task.get("output_schema") is not None:
        assignment["output_schema"] = task["output_schema"]
    if call.timeout:
        deadline = now + timedelta(seconds=call.timeout)
        assignment["deadline"] = deadline.isoformat(timespec="milliseconds")
    assignment["deliver"] = {
        "command": f"workflow_cli deliver {call.instance_id} {call.task_id} --as {name}"
        " --output JSON",
        "outbox": f"{AGENTS_FOLDER}/{name}/outbox/{call.instance_id}.{call.task_id}.json",
    }
    workspace = call.workspace
    workspace.private_folder(path.parent)
    workspace.private_folder(path.parent.parent / "outbox")
    write_json_atomic(path, assignment)
    return assignment
