"""The health of an instance: its score (`score`), the inputs scoring reads (`inputs`)
and the record it leaves in ``monitoring/instances/ID.json`` (`record`).

`instance_health` scores an instance now and writes its record; `current_health` reads
the record when it is up to date and scores only when it is not. The names other
modules use are importable from here.
"""

from __future__ import annotations

from typing import Any

from workflow_cli.monitor.health.inputs import (
    HISTORY_RUNS,
    HealthInputs,
    gather_inputs,
    history_entries,
    template_history,
)
from workflow_cli.monitor.health.record import (
    DURATION_ALERT_RATIOS,
    HEALTH_FILE,
    RECORD_VERSION,
    build_record,
    fresh_record,
    health_path,
    read_all_records,
    read_instance_record,
    read_summary_entries,
    save_record,
    summary_entry,
)
from workflow_cli.monitor.health.score import (
    CRITICAL_BELOW,
    HEALTHY_FROM,
    WEIGHTS,
    health_level,
    peak_score,
    ratio_score,
    score_health,
)
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

__all__ = [
    "CRITICAL_BELOW",
    "DURATION_ALERT_RATIOS",
    "HEALTHY_FROM",
    "HEALTH_FILE",
    "HISTORY_RUNS",
    "RECORD_VERSION",
    "WEIGHTS",
    "HealthInputs",
    "build_record",
    "current_health",
    "fresh_record",
    "gather_inputs",
    "health_level",
    "health_path",
    "history_entries",
    "instance_health",
    "peak_score",
    "ratio_score",
    "read_all_records",
    "read_instance_record",
    "read_summary_entries",
    "save_record",
    "score_health",
    "summary_entry",
    "template_history",
]


def instance_health(
    workspace: Workspace,
    instance_id: str,
    clock: Clock,
    *,
    history: list[dict[str, Any]] | None = None,
    workspace_block: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score an instance now, write alerts for what got worse and
    ``monitoring/instances/ID.json`` (atomically), and return the record.

    `history` (summary entries, see `summary_entry`) and `workspace_block` (the
    workspace's monitoring settings) may be passed in when scoring many instances."""
    from workflow_cli.store.runlock import runner_gone

    state = load_state(open_journal(workspace, instance_id, clock))
    previous = read_instance_record(workspace, instance_id)
    inputs = gather_inputs(
        workspace,
        instance_id,
        state,
        history=history,
        workspace_block=workspace_block,
        previous=previous,
    )
    alive = state["state"] == "running" and not runner_gone(
        workspace.instance_dir(instance_id), state
    )
    record = build_record(state, inputs, now=clock(), runner_alive=alive)
    return save_record(workspace, record, clock=clock)


def current_health(workspace: Workspace, instance_id: str, clock: Clock) -> dict[str, Any]:
    """The instance's health record: the one on disk when it is up to date (see
    `fresh_record`), else scored now by `instance_health`."""
    return fresh_record(workspace, instance_id) or instance_health(workspace, instance_id, clock)
