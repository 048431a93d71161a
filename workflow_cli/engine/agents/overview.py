"""What ``workflow_cli agents`` and ``inbox`` show: every agent with its kind, the
assignments waiting in mailboxes and their age, and each agent's last runs and failure
rate.

Runs are read from the instances' cached states and definitions (``state.json``,
``definition.json``; a stale cache is brought up to date from the journal), the newest
`RECENT_INSTANCES` instances only, so that the overview stays cheap in a workspace that
has run for a long time.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.engine.agents.mailbox import AGENTS_FOLDER, agent_folder, read_json_file
from workflow_cli.engine.agents.registry import (
    agent_kind,
    builtin_agents,
    load_agents,
    undeclared_agents,
)
from workflow_cli.errors import WorkflowCliError
from workflow_cli.store.instances import (
    DEFINITION_FILE,
    JOURNAL_FILE,
    load_definition,
    load_state,
    open_journal,
)
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

RECENT_INSTANCES = 500
LAST_RUNS = 5


def list_assignments(
    workspace: Workspace, agent: str | None, now: datetime, clock: Clock
) -> list[dict[str, Any]]:
    """The assignments in the inboxes (of `agent`, or of every agent), oldest first:
    each as written, with ``age_seconds`` and the task's state now (``task_state``:
    ``waiting`` until it is delivered; another state means the assignment is stale,
    e.g. its instance was cancelled)."""
    root = workspace.root / AGENTS_FOLDER
    names = [agent] if agent is not None else _folders(root)
    states: dict[str, State | None] = {}
    found = []
    for name in names:
        inbox = agent_folder(workspace, name) / "inbox"
        try:
            files = sorted(e.path for e in os.scandir(inbox) if e.name.endswith(".json"))
        except OSError:
            continue
        for path in files:
            assignment = read_json_file(Path(path))
            if not isinstance(assignment, dict):
                continue
            assignment.setdefault("agent", name)
            assigned = _when(assignment.get("assigned_at"))
            age = (now - assigned).total_seconds() if assigned else None
            assignment["age_seconds"] = None if age is None else round(max(0.0, age), 1)
            instance_id = str(assignment.get("instance"))
            if instance_id not in states:
                states[instance_id] = _state(workspace, instance_id, clock)
            state = states[instance_id]
            task = state["tasks"].get(str(assignment.get("task"))) if state else None
            assignment["task_state"] = task["state"] if task else "gone"
            found.append(assignment)
    found.sort(key=lambda a: str(a.get("assigned_at")))
    return found


def agents_overview(workspace: Workspace, now: datetime, clock: Clock) -> list[dict[str, Any]]:
    """Every agent: declared, built in, or named by instances and mailboxes without being
    declared; with its kind, its waiting assignments and its runs."""
    declared = load_agents(workspace)
    mode = undeclared_agents(workspace)
    assignments = list_assignments(workspace, None, now, clock)
    runs = agent_runs(workspace, clock)
    names = sorted(
        set(declared) | set(builtin_agents()) | {str(a["agent"]) for a in assignments} | set(runs)
    )
    overview = []
    for name in names:
        if name in declared:
            source = "agents.yaml"
        elif name in builtin_agents():
            source = "built in"
        else:
            source = "undeclared"
        kind = agent_kind(workspace, name) if source != "undeclared" or mode == "mailbox" else None
        waiting = [
            {k: a.get(k) for k in ("instance", "task", "attempt", "assigned_at", "age_seconds")}
            for a in assignments
            if a["agent"] == name and a.get("task_state") in ("waiting", "pending")
        ]
        entry = {"name": name, "kind": kind or "unknown", "source": source, "waiting": waiting}
        overview.append(entry | _metrics(runs.get(name, [])))
    return overview


def agent_runs(workspace: Workspace, clock: Clock) -> dict[str, list[dict[str, Any]]]:
    """The agent tasks of the newest instances that have run, by agent."""
    runs: dict[str, list[dict[str, Any]]] = {}
    instances = str(workspace.instances_dir)
    for instance_id in _recent_instances(workspace):
        for agent, run in _instance_runs(workspace, instances, instance_id, clock):
            runs.setdefault(agent, []).append(dict(run))
    return runs


# The agent runs of each instance, kept with the journal and definition they were read
# from (their size and time): a long-lived process (the server, whose agents page is
# refreshed every few seconds) reads again only the instances that have changed.
_KEPT_RUNS: dict[tuple[str, str], tuple[tuple[int, int, int], list[tuple[str, dict[str, Any]]]]]
_KEPT_RUNS = {}
_KEPT_RUNS_LOCK = threading.Lock()


def _instance_runs(
    workspace: Workspace, instances: str, instance_id: str, clock: Clock
) -> list[tuple[str, dict[str, Any]]]:
    folder = os.path.join(instances, instance_id)
    try:
        journal = os.stat(os.path.join(folder, JOURNAL_FILE))
        written = os.stat(os.path.join(folder, DEFINITION_FILE))
    except OSError:
        return []
    key = (journal.st_size, journal.st_mtime_ns, written.st_mtime_ns)
    place = (str(workspace.root), instance_id)
    with _KEPT_RUNS_LOCK:
        kept = _KEPT_RUNS.get(place)
    if kept is not None and kept[0] == key:
        return kept[1]
    try:
        definition = load_definition(workspace, instance_id)
        state = load_state(open_journal(workspace, instance_id, clock))
    except (WorkflowCliError, OSError):
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    tasks = definition.get("tasks")
    if not isinstance(tasks, dict):
        tasks = {}
    for task_id, record in state["tasks"].items():
        spec = tasks.get(task_id)
        if not isinstance(spec, dict) or spec.get("action") != "agent_task":
            continue
        agent = (record.get("waiting_for") or {}).get("agent") or spec.get("agent_id")
        ran = record["attempts"] or record["state"] in ("completed", "failed", "waiting")
        if not isinstance(agent, str) or not ran:
            continue
        found.append(
            (
                agent,
                {
                    "instance": instance_id,
                    "task": task_id,
                    "state": record["state"],
                    "attempts": record["attempts"],
                    "started_at": record.get("started_at"),
                    "finished_at": record.get("finished_at"),
                    "duration": record.get("duration"),
                },
            )
        )
    with _KEPT_RUNS_LOCK:
        _KEPT_RUNS[place] = (key, found)
    return found


def _metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    finished = [r for r in runs if r["state"] in ("completed", "failed")]
    failed = sum(1 for r in finished if r["state"] == "failed")
    ordered = sorted(runs, key=lambda r: str(r["finished_at"] or r["started_at"] or ""))
    return {
        "runs": len(finished),
        "failed": failed,
        "failure_rate": round(failed / len(finished), 3) if finished else None,
        "last_runs": list(reversed(ordered[-LAST_RUNS:])),
    }


def _recent_instances(workspace: Workspace) -> list[str]:
    dated = []
    folder = str(workspace.instances_dir)  # plain texts: pathlib costs more than stat
    for instance_id in workspace.instance_ids():
        try:
            dated.append((os.stat(os.path.join(folder, instance_id)).st_mtime, instance_id))
        except OSError:
            continue
    dated.sort(reverse=True)
    return [instance_id for _, instance_id in dated[:RECENT_INSTANCES]]


def _state(workspace: Workspace, instance_id: str, clock: Clock) -> State | None:
    try:
        return load_state(open_journal(workspace, instance_id, clock))
    except (WorkflowCliError, OSError):
        return None


def _folders(root: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None
