"""What the report of an instance shows, gathered from its files: its definition, its
state, the spans of its journal, its health record and its resource samples."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow_cli.errors import WorkflowCliError
from workflow_cli.monitor.graph import GraphPicture, build_graph
from workflow_cli.store.journal import Clock
from workflow_cli.store.spans import Timeline, build_timeline
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


@dataclass
class ReportData:
    """Everything the page shows, gathered by `collect_report`."""

    instance_id: str
    definition: dict[str, Any]
    state: State
    graph: GraphPicture
    timeline: Timeline
    generated_at: datetime
    health: dict[str, Any] | None = None
    health_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)  # the audit trail


_AUDITED = {
    "approval_recorded",
    "approval_escalated",
    "approval_reassigned",
    "approval_reminded",
    "timer_fired",
    "timer_cancelled",
}


def approval_audit(events: list[dict[str, Any]], gates: set[str]) -> list[dict[str, Any]]:
    """Every decision, escalation, reassignment, reminder and timer of the instance's
    approval gates, and every skip of one, in journal order: time, task, what, by, detail."""
    rows = []
    timers: dict[str, str] = {}
    for event in events:
        kind = event["type"]
        task = event.get("task") or event.get("target") or timers.get(event.get("timer") or "")
        if kind == "timer_set":
            timers[event["timer"]] = event["target"]
        if task not in gates or (kind not in _AUDITED and kind != "task_skipped"):
            continue
        by, detail = event.get("by") or "", ""
        if kind == "approval_recorded":
            parts = [f"level {event.get('level', 0)}", event.get("comment") or ""]
            if event.get("inputs"):
                parts.append(f"form {json.dumps(event['inputs'], ensure_ascii=False)}")
            parts.append(event.get("digest") or "")
            detail = "; ".join(p for p in parts if p)
            kind = event["decision"]
        elif kind in ("approval_escalated", "approval_reminded"):
            detail = f"level {event['level']}: {', '.join(event['approvers'])}"
        elif kind == "approval_reassigned":
            detail = f"to {event['to']}" + (f": {event['comment']}" if event.get("comment") else "")
        elif kind == "timer_fired":
            detail = f"{event['kind']} due {event['due']}, fired {event['fired_at']}"
        elif kind == "timer_cancelled":
            detail = event.get("reason") or ""
        elif kind == "task_skipped":
            if not by:
                continue
            detail = event.get("reason") or ""
        rows.append(
            {
                "time": event["time"],
                "task": task,
                "what": kind.replace("_", " "),
                "by": by,
                "detail": detail,
            }
        )
    return rows


def collect_report(workspace: Workspace, instance_id: str, clock: Clock) -> ReportData:
    """What the report of `instance_id` shows (the id must be resolved already)."""
    from workflow_cli.monitor.health import current_health
    from workflow_cli.monitor.resources import read_history
    from workflow_cli.store.instances import load_definition, load_state, open_journal
    from workflow_cli.store.runlock import runner_alive

    definition = load_definition(workspace, instance_id)
    journal = open_journal(workspace, instance_id, clock)
    state = load_state(journal)
    journal.rewind()
    events = journal.read_new()
    journal.close()
    now = clock()
    live = state["state"] == "running" and runner_alive(workspace.instance_dir(instance_id))
    graph = build_graph(
        definition,
        kind="instance",
        ref=instance_id,
        source=str(workspace.instance_dir(instance_id) / "definition.json"),
        task_states=state["tasks"],
        state=state["state"],
    )
    data = ReportData(
        instance_id=instance_id,
        definition=definition,
        state=state,
        graph=graph,
        timeline=build_timeline(events, now=now, live=live),
        generated_at=now,
    )
    try:
        data.health = current_health(workspace, instance_id, clock)
    except WorkflowCliError as exc:
        data.health_error = exc.message
    data.history = [s for s in read_history(workspace, instance_id) if isinstance(s, dict)]
    tasks = definition.get("tasks") or {}
    gates = {t for t, spec in tasks.items() if (spec or {}).get("action") == "approval_gate"}
    data.approvals = approval_audit(events, gates)
    return data
