"""``approval_gate``: waits until its approvers decide (see `engine.approvals`).

With no decision yet, the task is ``waiting`` and, once nothing else can run, the run
stops with the instance ``waiting`` (the process exits); its deadlines and reminders are
durable timers that ``workflow_cli tick`` (or any runner or command that touches the
instance) fires. ``workflow_cli approve`` or ``reject`` records a decision; ``resume``
goes on. Approved (by the quorum, or by a deadline with ``on_timeout: approve``): the
output is the decision (who, when, comment, level, digest, form values, every decision).
Rejected, or timed out: the task fails, and is not retried.
"""

from __future__ import annotations

import json
from typing import Any

from workflow_cli.engine.actions.base import (
    ActionFailed,
    AwaitDecision,
    CheckContext,
    TaskCall,
    require_keys,
)
from workflow_cli.errors import Problem


class _AnyGroup(dict[str, list[str]]):
    """Groups at validation time: the workspace's are checked when the gate runs."""

    def get(self, key: str, default: Any = None) -> list[str]:
        return [f"@{key}"]


class ApprovalGate:
    name = "approval_gate"
    inline = True

    def check(self, ctx: CheckContext) -> list[Problem]:
        from workflow_cli.engine.approvals import parse_gate

        problems = require_keys(ctx, {"approvers": (list, str)})
        parameters = ctx.task.get("parameters") or {}
        if problems or "{{" in json.dumps(parameters, default=str):
            return problems  # templated values are checked when the gate runs
        try:
            parse_gate(parameters, _AnyGroup())
        except ValueError as exc:
            problems.append(Problem(f"{ctx.pointer}/parameters", str(exc)))
        return problems

    def run(self, call: TaskCall) -> Any:
        from workflow_cli.engine.approvals import approval_settings, evaluate_gate, parse_gate

        try:
            spec = parse_gate(call.parameters, approval_settings(call.workspace).groups)
        except ValueError as exc:
            message = f"approval_gate: {exc}"
            raise ActionFailed(message, kind="parameters", retryable=False) from None
        verdict = evaluate_gate(spec, call.decisions, call.waiting_for)
        if verdict.waiting_for is not None:
            raise AwaitDecision(verdict.waiting_for)
        if verdict.failure is not None:
            message, kind, details = verdict.failure
            raise ActionFailed(message, kind=kind, retryable=False, details=details)
        return verdict.output


ACTION = ApprovalGate()
