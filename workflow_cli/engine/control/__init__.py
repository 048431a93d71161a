"""Control of an instance from another terminal: stop and cancel (`stopping`), rollback
(`rollback`), retry, skip and setting a task's parameters (`repair`), and what they
share (`guards`).

Commands never edit state: they append events under the journal lock. A live runner
picks up ``stop_requested`` and ``cancel_requested`` itself. The operations that change
tasks (rollback, retry, skip, set, and stop or cancel with no live runner) hold the
instance's run lock while they work, so no runner can start meanwhile, and are refused
while a runner is executing the instance.
"""

from workflow_cli.engine.control.guards import take_checkpoint
from workflow_cli.engine.control.repair import (
    ParameterChange,
    ResetPlan,
    plan_parameters,
    plan_retry,
    plan_skip,
    retry,
    set_parameters,
    skip,
)
from workflow_cli.engine.control.rollback import RollbackPlan, plan_rollback, rollback
from workflow_cli.engine.control.stopping import StopOutcome, cancel, stop

__all__ = [
    "ParameterChange",
    "ResetPlan",
    "RollbackPlan",
    "StopOutcome",
    "cancel",
    "plan_parameters",
    "plan_retry",
    "plan_rollback",
    "plan_skip",
    "retry",
    "rollback",
    "set_parameters",
    "skip",
    "stop",
    "take_checkpoint",
]
