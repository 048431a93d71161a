"""``approval_gate``: waits until one of ``parameters.approvers`` decides.

With no decision yet, the task is ``waiting`` and, once nothing else can run, the run
stops with the instance ``waiting`` (the process exits). ``workflow_cli approve`` or
``reject`` records a decision; ``workflow_cli resume`` goes on. Approved: the output is
the decision (who, when, comment). Rejected: the task fails, and is not retried.
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
from workflow_cli.errors import Problem


class ApprovalGate:
    name = "approval_gate"
    inline = True

    def check(self, ctx: CheckContext) -> list[Problem]:
        problems = require_keys(ctx, {"approvers": list})
        approvers = (ctx.task.get("parameters") or {}).get("approvers")
        if isinstance(approvers, list) and (
            not approvers or not all(isinstance(a, str) and a for a in approvers)
        ):
            problems.append(
                Problem(f"{ctx.pointer}/parameters/approvers", "must list one or more names")
            )
        return problems

    def run(self, call: TaskCall) -> Any:
        approvers = call.parameters.get("approvers")
        if not isinstance(approvers, list) or not approvers:
            raise ActionFailed("approval_gate needs 'approvers' (a list of names)", retryable=False)
        if not call.decisions:
            raise AwaitDecision(
                {"approvers": approvers, "message": call.parameters.get("message", "")}
            )
        decision = call.decisions[-1]
        record = {k: decision.get(k) for k in ("decision", "by", "comment", "time")}
        if decision.get("decision") != "approved":
            raise ActionFailed(
                f"rejected by {decision.get('by')}"
                + (f": {decision['comment']}" if decision.get("comment") else ""),
                kind="rejected",
                retryable=False,
                details=record,
            )
        return record


ACTION = ApprovalGate()
