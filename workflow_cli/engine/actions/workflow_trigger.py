"""``workflow_trigger``: creates and runs a child instance, waits for it, takes its outputs.

Parameters: ``template`` (a template name — built in, or in the workspace's templates/
folder — or the path of a template or definition file inside the workspace, relative to
it) and ``params`` (an object of values for the child's parameters). A path that is
absolute, uses ``..``, leads outside through a link or into the engine's own folders is
refused. The child's
id is ``PARENT.TASK``; it names its parent, and the parent's task names it
(``child_instance``). When the child waits for an approval, so does this task: approve
the child, then resume the parent. Output: ``{"child_instance", "state", "outputs"}``
with the output of every completed task of the child.
"""

from __future__ import annotations

import stat
from pathlib import PurePosixPath
from typing import Any

from workflow_cli.engine.actions.base import (
    ActionFailed,
    AwaitDecision,
    CheckContext,
    TaskCall,
    require_keys,
)
from workflow_cli.errors import Problem, WorkflowCliError
from workflow_cli.store.workspace import Workspace

TEMPLATE_SUFFIXES = (".json", ".yaml", ".yml")


class WorkflowTrigger:
    name = "workflow_trigger"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        problems = require_keys(ctx, {"template": str})
        template = (ctx.task.get("parameters") or {}).get("template")
        if isinstance(template, str) and "{{" not in template and _is_path(template):
            message = _path_problem(template)
            if message:
                problems.append(Problem(f"{ctx.pointer}/parameters/template", message))
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
        reference = confine_template(call.workspace, template)
        try:
            child, outcome, state = call.services.run_child(
                reference,
                params,
                parent_instance=call.instance_id,
                parent_task=call.unit,
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


def _is_path(reference: str) -> bool:
    """Whether `reference` names a file rather than a template by name."""
    return (
        "/" in reference
        or "\\" in reference
        or PurePosixPath(reference).suffix.lower() in TEMPLATE_SUFFIXES
    )


def _path_problem(reference: str) -> str | None:
    from workflow_cli.engine.actions.file_operation import literal_path_problem

    problem = literal_path_problem(reference)
    return f"a template file {problem}" if problem else None


def confine_template(workspace: Workspace, reference: str) -> str:
    """What the child is created from: a template name as it is, or a template file
    inside the workspace as its real path. Anything else fails the task (kind ``path``)."""
    import os

    from workflow_cli.definition.templates import template_names
    from workflow_cli.engine.paths import locate

    if not _is_path(reference) or reference in template_names(workspace.templates_dir):
        return reference  # a name: built in or in templates/ (unknown names fail later)
    problem = _path_problem(reference)
    if problem:
        raise ActionFailed(
            f"template '{reference}': {problem} (a template is a name, or a file inside"
            " the workspace named relative to it)",
            kind="path",
            retryable=False,
        )
    found = locate(workspace, reference)  # refuses links leading out and engine folders
    try:
        if not found.exists:
            raise ActionFailed(
                f"no template file '{reference}' in the workspace", kind="child", retryable=False
            )
        if not stat.S_ISREG(found.lstat().st_mode):
            raise ActionFailed(
                f"template '{reference}' is not a file", kind="path", retryable=False
            )
        return os.path.join(os.path.realpath(workspace.root), *found.parts)
    finally:
        found.close()


ACTION = WorkflowTrigger()
