"""The public Python API: ``Workspace(path)`` and the records it returns.

::

    from workflow_cli.api import Workspace

    ws = Workspace("my-workspace")
    instance_id = ws.create("approval_chain", {"title": "New laptop", "amount": 1800})
    result = ws.run(instance_id)          # in this process, until it ends or waits
    ws.approve(instance_id, by="team_lead")
    started = ws.resume(instance_id)      # a runner process of its own
    for event in ws.events(instance_id, follow=True, timeout=60):
        print(event["type"])

Errors are the CLI's: `workflow_cli.errors.WorkflowCliError` and its kinds, re-exported
here. The CLI and the server are layers over this module.
"""

from typing import TYPE_CHECKING, Any

from workflow_cli.api.agents import DeliveryResult
from workflow_cli.api.types import (
    DecisionResult,
    InstanceSummary,
    Progress,
    RunnerInfo,
    RunResult,
    StartResult,
    StatusView,
    TemplateInfo,
)
from workflow_cli.api.workspace import Workspace
from workflow_cli.errors import (
    DefinitionError,
    LockHeldError,
    NotFoundError,
    ParameterError,
    StateError,
    UsageError,
    WorkflowCliError,
)

__all__ = [
    "DecisionResult",
    "DefinitionError",
    "DeliveryResult",
    "InstanceSummary",
    "LockHeldError",
    "NotFoundError",
    "ParameterError",
    "Progress",
    "RunResult",
    "RunnerInfo",
    "SignalResult",
    "StartResult",
    "StateError",
    "StatusView",
    "StopResult",
    "TemplateInfo",
    "UsageError",
    "WorkflowCliError",
    "Workspace",
]

if TYPE_CHECKING:
    from workflow_cli.engine.control import StopOutcome as StopResult
    from workflow_cli.engine.event_waits import SignalResult


def __getattr__(name: str) -> Any:
    """`StopResult` and `SignalResult` are imported when first asked for (the engine's
    modules are not light, and every command imports this package)."""
    if name == "StopResult":
        from workflow_cli.engine.control import StopOutcome

        return StopOutcome
    if name == "SignalResult":
        from workflow_cli.engine.event_waits import SignalResult

        return SignalResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
