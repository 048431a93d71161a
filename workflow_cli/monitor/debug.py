"""The debug account of an instance, as data: for each failed or stuck task, its error;
every attempt with its start, duration, exit code or HTTP status and the backoff that
followed; the last lines of its log; its parameters as they render now; each condition
with the values it reads and its result; and the commands that would help next.

Everything that may hold a credential passes through `mask_secrets` (values under
secret-looking keys, secret URL query parameters, ``Bearer …``, ``password=…``) and every
text through `mask_text`, which also hides any secret value found in the parameters
wherever it appears (a log line that echoes a token).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from workflow_cli.definition.expressions import (
    evaluate_condition,
    evaluate_expression,
    references,
    render_value,
)
from workflow_cli.definition.model import conditions_of
from workflow_cli.engine.attempt import build_context
from workflow_cli.errors import ExpressionError, NotFoundError, WorkspaceError
from workflow_cli.store.checkpoints import list_checkpoints
from workflow_cli.store.config import config_block
from workflow_cli.store.files import open_binary
from workflow_cli.store.instances import load_definition, open_journal, require_created
from workflow_cli.store.journal import Clock, Event
from workflow_cli.store.runlock import runner_gone
from workflow_cli.store.secrets import (
    MASK,
    is_secret_key,
    mask_secrets,
    mask_text,
    secret_values,
)
from workflow_cli.store.spans import AttemptSpan, build_timeline
from workflow_cli.store.state import State, empty_state, fold
from workflow_cli.store.workspace import Workspace

LOG_LINES = 20
# Beyond this many failed or stuck tasks, the rest are only named.
DETAILED_TASKS = 20


def debug_account(
    workspace: Workspace,
    instance_id: str,
    clock: Clock,
    task: str | None = None,
    *,
    log_lines: int = LOG_LINES,
) -> dict[str, Any]:
    """What went wrong with `instance_id`: its failed or stuck tasks (or only `task`),
    each with attempts, log, rendered parameters, conditions and next commands."""
    journal = open_journal(workspace, instance_id, clock)
    try:
        events = journal.read_new()
    finally:
        journal.close()
    state = fold(events, empty_state())
    require_created(journal, state)
    definition = load_definition(workspace, instance_id)
    tasks = state["tasks"]
    if task is not None and task not in tasks:
        shown = ", ".join(list(tasks)[:10]) + (" …" if len(tasks) > 10 else "")
        raise NotFoundError(f"instance {instance_id} has no task '{task}' (tasks: {shown})")
    instance_dir = workspace.instance_dir(instance_id)
    gone = runner_gone(instance_dir, state)
    params = definition.get("params") or {}
    known = secret_values(params) | secret_values(definition.get("tasks") or {})
    declared = {**(config_block(workspace, "secrets") or {}), **(definition.get("secrets") or {})}
    context = build_context(params, state, dict.fromkeys(declared, MASK))
    checkpoint = newest_checkpoint(workspace, instance_id)
    chosen = [task] if task is not None else _troubled(state, gone)
    detailed, more = chosen[:DETAILED_TASKS], chosen[DETAILED_TASKS:]
    stopped = gone or state["state"] != "running"
    timeline = build_timeline(events, now=clock(), live=not stopped, tasks=detailed)
    spans: dict[str, list[AttemptSpan]] = {task_id: [] for task_id in detailed}
    for span in sorted(timeline.spans, key=lambda span: span.order):
        spans[span.task].append(span)
    accounts = []
    for task_id in detailed:
        accounts.append(
            _task_account(
                workspace,
                instance_id,
                task_id,
                definition,
                state,
                _attempts(spans[task_id], events, task_id, known),
                context,
                known,
                checkpoint,
                log_lines=log_lines,
            )
        )
    account: dict[str, Any] = {
        "id": instance_id,
        "template": state.get("template"),
        "state": state["state"],
        "reason": mask_text(reason, known) if (reason := state.get("reason")) else None,
        "parent": state.get("parent"),
        "runner_gone": gone,
        "params": mask_secrets(params, known),
        "tasks": accounts,
        "more_tasks": more,
        "checkpoint": checkpoint,
        "next": _instance_next(instance_id, state, gone, accounts),
    }
    return account


def newest_checkpoint(workspace: Workspace, instance_id: str) -> dict[str, Any] | None:
    """The newest valid checkpoint of the instance (id, kind, label, time), or None."""
    for info in list_checkpoints(workspace, instance_id):  # newest first
        found = info.as_dict()
        if found.get("valid"):
            return {key: found.get(key) for key in ("id", "kind", "label", "time")}
    return None


def _troubled(state: State, gone: bool) -> list[str]:
    """Tasks worth a look: failed, waiting, in flight; else (a run that could not go on)
    the ones left pending."""
    tasks = state["tasks"]
    chosen = [
        t
        for t, s in tasks.items()
        if s["state"] in ("failed", "waiting", "running", "retrying", "cancelled")
    ]
    if not chosen and (gone or state["state"] in ("failed", "paused")):
        chosen = [t for t, s in tasks.items() if s["state"] == "pending"]
    return chosen


def _attempts(
    spans: list[AttemptSpan], events: list[Event], task_id: str, known: set[str]
) -> list[dict[str, Any]]:
    """The task's attempts and waits (from its spans) and, between them in journal order,
    what was done to it that is not an attempt (a reset, a rollback, a skip, …)."""
    entries = [(span.order, _attempt_entry(span, known)) for span in spans]
    # An event that ended an attempt is shown as that attempt's outcome, not again.
    ended_attempt = {span.ended_by for span in spans if span.attempt}
    for position, event in enumerate(events):
        kind = event["type"]
        if kind not in _MARKS or position in ended_attempt:
            continue
        named = event.get("tasks") or () if kind in ("tasks_reset", "rolled_back") else ()
        if event.get("task") != task_id and task_id not in named:
            continue
        mark: dict[str, Any] = {
            "attempt": None,
            "started_at": event["time"],
            "outcome": _MARKS[kind],
        }
        note = _mark_note(event)
        if note:
            mark["note"] = mask_text(note, known)
        entries.append((position, mark))
    entries.sort(key=lambda entry: entry[0])
    return [entry for _, entry in entries]


def _attempt_entry(span: AttemptSpan, known: set[str]) -> dict[str, Any]:
    """One attempt (or wait) as the account shows it."""
    if span.attempt == 0:
        return {
            "attempt": None,
            "started_at": _iso(span.start),
            "outcome": "waiting",
            "waiting_for": mask_secrets(span.waiting_for or {}, known),
        }
    entry: dict[str, Any] = {
        "attempt": span.attempt,
        "started_at": _iso(span.start) if span.started else None,
        "outcome": span.outcome,
    }
    if span.ended_by is not None:
        entry["ended_at"] = _iso(span.end)
        entry["duration"] = span.duration
    if span.error is not None or span.error_kind is not None:
        entry["error"] = mask_text(span.error or "", known)
        entry["kind"] = span.error_kind
    if span.exit_code is not None:
        entry["exit_code"] = span.exit_code
    if span.http_status is not None:
        entry["status"] = span.http_status
    if span.error_details:
        entry["details"] = mask_secrets(span.error_details, known)
    if span.retry_delay is not None:
        entry["backoff"] = span.retry_delay
    if span.waiting_for is not None:
        entry["waiting_for"] = mask_secrets(span.waiting_for, known)
    if span.reason:
        entry["note"] = mask_text(span.reason, known)
    if span.worker:
        entry["worker"] = span.worker
    return entry


def _iso(moment: datetime) -> str:
    """A time as the journal writes it."""
    return moment.isoformat(timespec="milliseconds")


_MARKS = {
    "tasks_reset": "reset",
    "rolled_back": "rolled back",
    "task_skipped": "skipped",
    "task_cancelled": "cancelled",
    "compensation_started": "compensating",
    "compensation_completed": "compensated",
    "compensation_failed": "compensation failed",
    "approval_recorded": "decision",
    "approval_escalated": "escalated",
    "approval_reassigned": "reassigned",
    "approval_reminded": "reminded",
}


def _mark_note(event: Event) -> str | None:
    kind = event["type"]
    by = f" by {event['by']}" if event.get("by") else ""
    if kind == "tasks_reset":
        return f"for {event.get('why') or 'a new run'}{by}; attempts count from 1 again"
    if kind == "rolled_back":
        return f"to checkpoint {event.get('checkpoint')}{by}"
    if kind == "approval_recorded":
        form = f"; form {event['inputs']}" if event.get("inputs") else ""
        comment = f": {event['comment']}" if event.get("comment") else ""
        return (
            f"{event.get('decision')} by {event.get('by')} at level {event.get('level', 0)}"
            f"{comment}{form} ({event.get('digest') or 'no digest'})"
        )
    if kind in ("approval_escalated", "approval_reminded"):
        return f"level {event.get('level')}: {', '.join(event.get('approvers') or [])}"
    if kind == "approval_reassigned":
        comment = f": {event['comment']}" if event.get("comment") else ""
        return f"to {event.get('to')} by {event.get('by')}{comment}"
    if kind == "compensation_failed":
        error = event.get("error") or {}
        return str(error.get("message") if isinstance(error, dict) else error)
    reason = event.get("reason")
    return f"{reason}{by}" if reason else (by.strip() or None)


def _task_account(
    workspace: Workspace,
    instance_id: str,
    task_id: str,
    definition: dict[str, Any],
    state: State,
    attempts: list[dict[str, Any]],
    context: dict[str, Any],
    known: set[str],
    checkpoint: dict[str, Any] | None,
    *,
    log_lines: int,
) -> dict[str, Any]:
    task = state["tasks"][task_id]
    spec = (definition.get("tasks") or {}).get(task_id) or {}
    raw_parameters = spec.get("parameters") or {}
    items = _items_account(task, known)
    if items is not None and items["shown_item"] is not None:  # rendered as for that item
        shown = items["shown_item"]
        context = {**context, "item": task["items"]["values"][shown], "index": shown}
    rendered: Any = None
    render_error = None
    try:
        rendered = render_value(raw_parameters, context)
    except ExpressionError as exc:
        render_error = mask_text(exc.message, known)
    known = known | secret_values(rendered)
    error = task.get("error")
    account: dict[str, Any] = {
        "task": task_id,
        "action": spec.get("action"),
        "agent_id": spec.get("agent_id"),
        "state": task["state"],
        "attempts_made": task.get("attempts", 0),
        "error": mask_secrets(error, known) if error else None,
        "reason": task.get("reason"),
        "waiting_for": _waiting_for(state, task_id, mask_secrets(task["waiting_for"], known))
        if task["state"] == "waiting" and task.get("waiting_for")
        else None,
        "child_instance": (state.get("children") or {}).get(task_id),
        "cached": task.get("cached"),  # the output was reused: from where, under what key
        "items": items,
        "finished_at": task.get("finished_at"),
        "dependencies": list(spec.get("dependencies") or []),
        "attempts": attempts,
        "parameters": mask_secrets(rendered if render_error is None else raw_parameters, known),
        "parameters_rendered": render_error is None,
        "parameters_error": render_error,
        "conditions": [
            _condition(expression, context, known, as_check=False)
            for expression in conditions_of(spec)
        ],
        "check": None,
        "log": _log(workspace, instance_id, task_id, known, log_lines),
    }
    expression = raw_parameters.get("expression") if isinstance(raw_parameters, dict) else None
    if spec.get("action") == "condition_check" and isinstance(expression, str):
        account["check"] = _condition(expression, context, known, as_check=True)
    account["next"] = _task_next(instance_id, account, checkpoint)
    return account


# How many failed items of a for_each task the account lists.
DETAILED_ITEMS = 10


def _items_account(task: Any, known: set[str]) -> dict[str, Any] | None:
    """A for_each task's items: counts, and its failed items (index, attempts, error,
    inputs); the item its parameters and conditions are shown for (the first failed one,
    else the first)."""
    items = task.get("items")
    if items is None:
        return None
    failed = [i for i, item in enumerate(items["records"]) if item["state"] == "failed"]
    listed = [
        {
            "index": index,
            "attempts": items["records"][index]["attempts"],
            "error": mask_secrets(items["records"][index].get("error"), known),
            "inputs": mask_secrets(items["records"][index].get("inputs"), known),
        }
        for index in failed[:DETAILED_ITEMS]
    ]
    return {
        "total": items["total"],
        "completed": items["completed"],
        "failed": items["failed"],
        "skipped": items["skipped"],
        "failed_items": listed,
        "shown_item": failed[0] if failed else (0 if items["total"] else None),
    }


def _condition(
    expression: str, context: dict[str, Any], known: set[str], *, as_check: bool
) -> dict[str, Any]:
    """An expression with the values it reads and what it evaluates to now."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for root, key in sorted(references(expression, bare=True)):
        name = f"{root}.{key}"
        scope = context.get(root) or {}
        if key in scope:
            values[name] = MASK if is_secret_key(key) else mask_secrets(scope[key], known)
        else:
            missing.append(name)  # e.g. a step not settled yet
    found: dict[str, Any] = {"expression": expression, "values": values, "missing": missing}
    try:
        if as_check:
            found["value"] = mask_secrets(evaluate_expression(expression, context), known)
        else:
            found["result"] = evaluate_condition(expression, context)
    except ExpressionError as exc:
        found["error"] = mask_text(exc.message, known)
    return found


def _log(
    workspace: Workspace, instance_id: str, task_id: str, known: set[str], count: int
) -> dict[str, Any]:
    path = workspace.instance_dir(instance_id) / "logs" / f"{task_id}.log"
    try:
        with open_binary(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except FileNotFoundError:
        return {"path": str(path), "exists": False, "lines": []}
    except (OSError, WorkspaceError) as exc:
        return {"path": str(path), "exists": True, "lines": [], "error": str(exc)}
    from workflow_cli.monitor.logs import attempt_of_marker

    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > len(data) and lines:
        lines = lines[1:]  # the first line may begin before what was read
    lines = [line for line in lines if attempt_of_marker(line) is None]
    return {
        "path": str(path),
        "exists": True,
        "lines": [mask_text(line, known) for line in lines[-count:]] if count > 0 else [],
    }


def _task_next(
    instance_id: str, account: dict[str, Any], checkpoint: dict[str, Any] | None
) -> list[dict[str, str]]:
    """Commands that would help with one task."""
    task_id = account["task"]
    found: list[dict[str, str]] = []
    child = account.get("child_instance")
    if child:
        found.append(
            {"command": f"workflow_cli debug {child}", "why": "see why the child workflow failed"}
        )
    if account["state"] == "failed":
        found.append(
            {
                "command": f"workflow_cli retry {instance_id} --task {task_id}",
                "why": "run it again (a for_each task: its failed items), then what depends on it",
            }
        )
    for item in ((account.get("items") or {}).get("failed_items") or [])[:3]:
        found.append(
            {
                "command": f"workflow_cli retry {instance_id} --task {task_id} --item "
                f"{item['index']}",
                "why": f"run only item {item['index']} again",
            }
        )
    waiting = account.get("waiting_for") or {}
    approvers = waiting.get("approvers") if isinstance(waiting, dict) else None
    gate = account["state"] == "waiting" and isinstance(approvers, list) and bool(approvers)
    if account["state"] in ("failed", "waiting") and not gate:
        found.append(
            {
                "command": f"workflow_cli skip {instance_id} --task {task_id}",
                "why": "mark it skipped and let the run go on without it",
            }
        )
    if gate and isinstance(approvers, list):
        first = approvers[0]
        found.append(
            {
                "command": f"workflow_cli approve {instance_id} {task_id} --as {first}",
                "why": f"decide the gate (approvers: {', '.join(approvers)})",
            }
        )
        found.append(
            {
                "command": f"workflow_cli reject {instance_id} {task_id} --as {first}",
                "why": "or reject it",
            }
        )
        found.append(
            {
                "command": f"workflow_cli reassign {instance_id} {task_id} --to NAME --as {first}",
                "why": "or hand it on to someone else",
            }
        )
        found.append(
            {
                "command": f"workflow_cli skip {instance_id} --task {task_id} --force",
                "why": "only as a last resort: walks past the approvers (recorded)",
            }
        )
    if (
        account["state"] == "waiting"
        and isinstance(waiting, dict)
        and waiting.get("kind") == "mailbox"
    ):
        agent = waiting.get("agent")
        found.append(
            {
                "command": f"workflow_cli deliver {instance_id} {task_id} --as {agent}"
                " --output JSON",
                "why": f"deliver agent {agent}'s result ({waiting.get('assignment')})",
            }
        )
    if (
        account["state"] == "waiting"
        and isinstance(waiting, dict)
        and waiting.get("kind") == "event"
    ):
        found.append(
            {
                "command": f"workflow_cli signal {instance_id} {waiting.get('event')} --data JSON",
                "why": "send the event it waits for"
                + (f" (its filter: {waiting['filter']})" if waiting.get("filter") else ""),
            }
        )
    if checkpoint and account["state"] == "failed":
        found.append(
            {
                "command": f"workflow_cli rollback {instance_id} --checkpoint {checkpoint['id']}",
                "why": "go back to the newest valid checkpoint"
                + (f" ({checkpoint['label']})" if checkpoint.get("label") else ""),
            }
        )
    return found


def _instance_next(
    instance_id: str, state: State, gone: bool, accounts: list[dict[str, Any]]
) -> list[dict[str, str]]:
    """Commands that would help with the instance as a whole."""
    found: list[dict[str, str]] = []
    if gone:
        found.append(
            {
                "command": f"workflow_cli resume {instance_id}",
                "why": "its runner died; recover the run (tasks in flight run again)",
            }
        )
    elif state["state"] in ("waiting", "paused"):
        found.append({"command": f"workflow_cli resume {instance_id}", "why": "go on with it"})
    elif state["state"] == "running":
        found.append(
            {"command": f"workflow_cli monitor {instance_id}", "why": "watch the run as it goes"}
        )
    if not accounts and state["state"] == "completed":
        return found
    found.append({"command": f"workflow_cli events {instance_id}", "why": "read the whole journal"})
    return found


def _waiting_for(state: State, task_id: str, waiting: Any) -> Any:
    """What a waiting task waits for; for an event wait, with its deadline."""
    if isinstance(waiting, dict) and waiting.get("kind") == "event":
        from workflow_cli.engine.event_waits import wait_deadline

        return {**waiting, "deadline": wait_deadline(state, task_id)}
    return waiting
