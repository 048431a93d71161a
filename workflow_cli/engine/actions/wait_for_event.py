"""``wait_for_event``: waits until a signal with ``parameters.event`` (and for which
``parameters.filter`` holds) is sent to the instance (see `engine.event_waits`).

With no such signal yet, the task is ``waiting`` and, once nothing else can run, the
run stops with the instance ``waiting`` (the process exits); ``workflow_cli signal``
delivers, a live runner goes on at once, else ``resume`` does. The signal's data is the
output. Its ``timeout_seconds`` is a durable timer that ``workflow_cli tick`` (or a
runner, or a command that touches the instance) fires; then ``on_timeout`` decides:
``fail`` (default), ``continue`` (the output is ``{"timed_out": true}``) or
``compensate`` (the task fails and the workflow's compensations run).
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


class WaitForEvent:
    name = "wait_for_event"
    inline = True
    expression_parameters = ("filter",)  # a bare expression over event, checked by validate

    def check(self, ctx: CheckContext) -> list[Problem]:
        from workflow_cli.engine.event_waits import parse_wait

        problems = require_keys(ctx, {"event": str})
        parameters = ctx.task.get("parameters") or {}
        if problems or "{{" in json.dumps(parameters, default=str):
            return problems  # templated values are checked when the task runs
        try:
            parse_wait(parameters)
        except ValueError as exc:
            problems.append(Problem(f"{ctx.pointer}/parameters", str(exc)))
        return problems

    def run(self, call: TaskCall) -> Any:
        from workflow_cli.engine.event_waits import KIND, parse_wait, waiting_for

        try:
            spec = parse_wait(call.parameters)
        except ValueError as exc:
            message = f"wait_for_event: {exc}"
            raise ActionFailed(message, kind="parameters", retryable=False) from None
        before = call.waiting_for or {}
        if before.get("kind") == KIND and before.get("attempt") == call.attempt:
            if "signal" in before:  # a signal was taken while it waited
                return before["signal"].get("data")
            if "timed_out" in before:
                on_timeout = before["timed_out"].get("on_timeout", spec.on_timeout)
                if on_timeout == "continue":
                    return {"timed_out": True}
                seconds = float(before.get("timeout_seconds") or 0)
                raise ActionFailed(
                    f"no {spec.event} within {seconds:g} s",
                    kind="timeout",
                    retryable=False,
                    details={"on_timeout": on_timeout, "event": spec.event},
                )
        raise AwaitDecision(waiting_for(spec, call.attempt))


ACTION = WaitForEvent()
