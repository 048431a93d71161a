"""``condition_check``: evaluates ``parameters.expression`` (a bare expression, e.g.
``steps.assess.output.score >= 70``); its value is the task's output."""

from __future__ import annotations

from typing import Any

from workflow_cli.definition.expressions import check_condition, evaluate_expression
from workflow_cli.engine.actions.base import ActionFailed, CheckContext, TaskCall, require_keys
from workflow_cli.errors import ExpressionError, Problem


class ConditionCheck:
    name = "condition_check"
    inline = True
    expression_parameters = ("expression",)  # a bare expression, checked by validate

    def check(self, ctx: CheckContext) -> list[Problem]:
        problems = require_keys(ctx, {"expression": str})
        expression = (ctx.task.get("parameters") or {}).get("expression")
        if not problems and isinstance(expression, str):
            try:
                check_condition(expression)
            except ExpressionError as exc:
                problems.append(Problem(f"{ctx.pointer}/parameters/expression", exc.message))
        return problems

    def run(self, call: TaskCall) -> Any:
        expression = call.parameters.get("expression")
        if not isinstance(expression, str):
            raise ActionFailed("condition_check needs 'expression' (text)", retryable=False)
        try:
            return evaluate_expression(expression, call.context)
        except ExpressionError as exc:
            raise ActionFailed(exc.message, kind="expression", retryable=False) from exc


ACTION = ConditionCheck()
