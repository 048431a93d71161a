"""What scoring an instance reads besides its state: its definition and monitoring
settings, the run times of earlier runs of its template, its journal's runs and waits,
and its resource peaks, gathered once (`gather_inputs`) and reusable.
"""

from __future__ import annotations

from typing import Any

from workflow_cli.monitor.health.record import (
    read_all_records,
    read_summary_entries,
    summary_entry,
)
from workflow_cli.monitor.resources import (
    MonitorSettings,
    config_stamp,
    history_path,
    load_workspace_monitoring,
    merge_peaks,
    monitor_settings,
    read_history_from,
)
from workflow_cli.readonly import mutable_dataclass
from workflow_cli.store.instances import JOURNAL_FILE, load_definition
from workflow_cli.store.spans import TimelineBuilder, read_runs
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

HISTORY_RUNS = 20


def history_entries(workspace: Workspace) -> list[dict[str, Any]]:
    """What earlier run times are taken from: the index of ``health.json`` (one small
    file) when there is one, else every instance's record."""
    entries = read_summary_entries(workspace)
    if entries is not None:
        return list(entries.values())
    return [summary_entry(record) for record in read_all_records(workspace).values()]


def template_history(
    entries: list[dict[str, Any]], template: str | None, before: str | None
) -> list[float]:
    """Run times of the latest `HISTORY_RUNS` completed instances of `template` that
    finished before `before` (an ISO time), from summary entries (`summary_entry`)."""
    if template is None:
        return []
    done = []
    for entry in entries:
        finished = entry.get("finished_at")
        seconds = entry.get("run_seconds")
        if (
            entry.get("template") == template
            and entry.get("state") == "completed"
            and finished
            and seconds is not None
            and (before is None or finished < before)
        ):
            done.append((finished, float(seconds)))
    done.sort()
    return [seconds for _, seconds in done[-HISTORY_RUNS:]]


@mutable_dataclass
class HealthInputs:
    """What scoring an instance reads besides its state: gathered once, reusable (the
    runner's reporter refreshes a record every second without reading them again)."""

    definition: dict[str, Any]
    settings: MonitorSettings
    history: list[float]
    runs: TimelineBuilder  # the journal's runs and waits; the runner's reporter adds to it
    resources_offset: int
    peaks: dict[str, float]
    config_stamp: str | None = None


def gather_inputs(
    workspace: Workspace,
    instance_id: str,
    state: State,
    *,
    history: list[dict[str, Any]] | None = None,
    workspace_block: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> HealthInputs:
    """Read the definition, settings, template history (from `history`, summary entries,
    when given), journal runs and waits, and resource peaks of an instance. The peaks continue
    from the `previous` record's offset in ``resources.jsonl`` when it still fits."""
    definition = load_definition(workspace, instance_id)
    stamp = config_stamp(workspace)
    if workspace_block is None:
        workspace_block = load_workspace_monitoring(workspace)
    settings = monitor_settings(definition, workspace_block)
    earlier: list[float] = []
    if definition.get("expected_duration") is None:
        if history is None:
            history = history_entries(workspace)
        earlier = template_history(history, state.get("template"), state.get("created_at"))
    runs = read_runs(workspace.instance_dir(instance_id) / JOURNAL_FILE)
    offset, peaks = 0, {}
    if previous is not None:
        offset = int(previous.get("resources_offset", 0))
        peaks = dict(previous["parts"]["resources"]["figures"].get("peaks") or {})
        peaks["samples"] = previous["parts"]["resources"]["figures"].get("samples", 0)
    path = history_path(workspace, instance_id)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    if size < offset:  # the history was replaced: read it all again
        offset, peaks = 0, {}
    samples, offset = read_history_from(path, offset)
    return HealthInputs(
        definition=definition,
        settings=settings,
        history=earlier,
        runs=runs,
        resources_offset=offset,
        peaks=merge_peaks(peaks, samples),
        config_stamp=stamp,
    )
