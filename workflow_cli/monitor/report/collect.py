"""What the report of an instance shows, gathered from its files: its definition, its
state, the spans of its journal, its health record and its resource samples."""

from __future__ import annotations

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
    return data
