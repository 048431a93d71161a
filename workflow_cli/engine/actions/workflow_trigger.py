"""``workflow_trigger``: creates and runs a child instance, waits for it, takes its outputs.

Parameters: ``template`` (a template name, or a template or definition file in the
workspace) and ``params`` (an object of values for the child's parameters). The child's
id is ``PARENT.TASK``; it names its parent, and the parent's task names it
(``child_instance``). When the child waits for an approval, so does this task: approve
the child, then resume the parent. Output: ``{"child_instance", "state", "outputs"}``
with the output of every completed task of the child.
"""

from __future__ import annotations

from typing import Any

from workflow_cli.engine.actions.base import (
    ActionFailed,
    AwaitDecision,
    CheckContext,
    TaskCall,
    require_keys,
)
from workflow_cli.errors import Problem, WorkflowCliError


class WorkflowTrigger:
    name = "workflow_trigger"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        problems = require_keys(ctx, {"template": str})
        params = (ctx.task.get("parameters") or {}).get("params", {})
        if not isinstance(params, (dict, str)):
            problems.append(Problem(f"{ctx.pointer}/parameters/params", "must be an object"))
        return problems

    def run(self, call: TaskCall) -> Any:
        template = call.parameters.get("template")
        params = call.parameters.get("params") or {}
        if not isinstance(template, str) or not template:
            raise ActionFailed("workflow_trigger needs 'template'", retryable=False)
        if not isinstance(params, dict):
            raise ActionFailed("workflow_trigger 'params' must be an object", retryable=False)
        if call.services is None:
            raise ActionFailed("workflow_trigger needs the engine's services", retryable=False)
        try:
            child, outcome, state = call.services.run_child(
                template,
                params,
                parent_instance=call.instance_id,
                parent_task=call.task_id,
                cancel=call.cancel,
            )
        except WorkflowCliError as exc:
            raise ActionFailed(
                f"child workflow: {exc.message}",
                kind="child",
                retryable=False,
                details={"problems": exc.details()},
            ) from exc
        call.log.write(f"child instance {child} ended {outcome.state}\n")
        if outcome.state == "waiting":
            raise AwaitDecision({"child_instance": child, "message": outcome.reason or ""})
        if outcome.state != "completed":
            raise ActionFailed(
                f"child instance {child} ended {outcome.state}: {outcome.reason}",
                kind="child",
                retryable=False,
                details={"child_instance": child},
            )
        outputs = {
            task_id: task["output"]
            for task_id, task in state["tasks"].items()
            if task["state"] == "completed"
        }
        return {"child_instance": child, "state": outcome.state, "outputs": outputs}


ACTION = WorkflowTrigger()
