"""Which hook events a journal event makes, and the JSON body a hook gets for one."""

from __future__ import annotations

from typing import Any

from workflow_cli.store.journal import Event
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

# Journal events that hook events come from, and the hook event each makes.
_SIMPLE = {"task_failed": "task.failed", "task_retrying": "task.retrying"}
_ENDED = {"completed", "failed", "cancelled"}
# The timer whose firing means an approval is overdue (engine.approvals.DEADLINE).
_DEADLINE_TIMER = "approval_deadline"


def hook_events(event: Event, state: State) -> list[str]:
    """The hook events a journal event makes (none for most). `state` is the instance's
    state with the event folded in."""
    kind = event.get("type")
    if kind == "run_started":
        return ["workflow.started"] if state.get("runs", 0) == 1 else []
    if kind == "run_ended":
        final = event.get("state")
        return [f"workflow.{final}"] if final in _ENDED else []
    if kind == "task_waiting":
        waiting_for = event.get("waiting_for") or {}
        if waiting_for.get("kind") == "mailbox":
            return ["agent.assigned"]
        return ["approval.required"] if waiting_for.get("approvers") else []
    if kind == "timer_fired":
        return ["approval.overdue"] if event.get("kind") == _DEADLINE_TIMER else []
    name = _SIMPLE.get(str(kind))
    return [name] if name else []


def task_of(event: Event) -> str | None:
    """The task an event is about (a timer's is its target)."""
    task = event.get("task") if "task" in event else event.get("target")
    return task if isinstance(task, str) else None


def hook_body(hook_event: str, event: Event, state: State, workspace: Workspace) -> dict[str, Any]:
    """The JSON a hook gets (before masking)."""
    instance = state.get("id", "")
    task = task_of(event)
    task_state = state["tasks"].get(task) if isinstance(task, str) else None
    details = {k: v for k, v in event.items() if k not in ("type", "seq", "time", "task")}
    return {
        "event": hook_event,
        "instance": instance,
        "workflow": state.get("workflow"),
        "template": state.get("template"),
        "state": state.get("state"),
        "reason": state.get("reason"),
        "task": task,
        "task_state": task_state["state"] if task_state else None,
        "time": event.get("time"),
        "seq": event.get("seq"),
        "details": details,
        "links": {
            "status": f"workflow_cli status {instance}",
            "events": f"workflow_cli events {instance}",
            "hooks": f"workflow_cli hooks {instance}",
            "report": f"workflow_cli report {instance}",
            "folder": str(workspace.instance_dir(instance)),
            "api": f"/api/workflows/{instance}/status",
        },
    }
