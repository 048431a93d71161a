"""``agent_task``: runs the agent named by the task's ``agent_id`` (see engine.agents)."""

from __future__ import annotations

from typing import Any

from workflow_cli.definition.expressions import has_template
from workflow_cli.engine.actions.base import ActionFailed, CheckContext, TaskCall
from workflow_cli.errors import Problem


class AgentTask:
    name = "agent_task"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        agent = ctx.task.get("agent_id")
        if not agent:
            return [Problem(ctx.pointer, "an agent_task needs 'agent_id'")]
        if isinstance(agent, str) and has_template(agent):
            return []  # chosen by a parameter: resolved and checked at create
        if isinstance(agent, str) and agent not in ctx.agent_names:
            known = ", ".join(sorted(ctx.agent_names))
            return [Problem(f"{ctx.pointer}/agent_id", f"unknown agent '{agent}' (known: {known})")]
        return []

    def run(self, call: TaskCall) -> Any:
        from workflow_cli.engine.agents import run_agent

        if not call.agent_id:
            raise ActionFailed("an agent_task needs 'agent_id'", retryable=False)
        return run_agent(call.agent_id, call)


ACTION = AgentTask()
