"""What the Python API returns: typed records, plain data underneath (JSON as it is).

`StopResult` (what `stop` and `cancel` return) is `workflow_cli.engine.control.StopOutcome`.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.state import TaskRecord

if TYPE_CHECKING:
    # `stop` and `cancel` return what the engine's control operations return (imported
    # when first asked for: the engine's control modules are not light).
    pass


class Progress(TypedDict):
    done: int
    total: int
    completed: int


class StatusView(TypedDict):
    """One instance: what ``workflow_cli status --json`` prints."""

    id: str
    template: str | None
    state: str
    reason: str | None
    progress: Progress
    created_at: str | None
    updated_at: str | None
    finished_at: str | None
    parent: dict[str, str] | None
    children: dict[str, str]
    params: dict[str, Any]
    approvals: list[dict[str, Any]]
    groups: dict[str, Any]  # repeating groups: their iteration
    gate_events: list[dict[str, Any]]
    timers: list[dict[str, Any]]
    signals: list[dict[str, Any]]  # sent with `signal`: event, data, by, consumed_by
    requester: str | None
    tasks: dict[str, TaskRecord]


class InstanceSummary(TypedDict):
    """One row of ``list``."""

    id: str
    template: str | None
    state: str
    progress: Progress
    created_at: str | None


class TemplateInfo(TypedDict):
    """One template: its name, description, where it comes from, its parameters (as a JSON
    Schema object) and its task ids."""

    name: str
    description: str
    source: str
    parameters: dict[str, Any]
    tasks: list[str]


class RunnerInfo(TypedDict):
    """A runner process started by `Workspace.start` or `resume`: the instance, the pid,
    and its exit code once it has ended (None while it runs)."""

    id: str
    pid: int
    exit_code: int | None


@readonly_dataclass
class RunResult:
    """How a run in this process ended: its state, why, the exit code the CLI gives it,
    the tasks waiting (and for what), and problems of the monitoring around it."""

    id: str
    state: str
    reason: str | None
    exit_code: int
    needs_person: bool
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@readonly_dataclass
class StartResult:
    """A runner started in a process of its own: its pid, whether it resumes, and the file
    its output goes to. `exit_code` is set when it had already ended when `start`
    returned (a short run)."""

    id: str
    pid: int
    resume: bool
    log: Path
    exit_code: int | None = None


@readonly_dataclass
class DecisionResult:
    """An approval or rejection recorded: on which gate, by whom, and the instance's state
    after it."""

    id: str
    task: str
    decision: str
    by: str
    state: str
    runner_alive: bool
