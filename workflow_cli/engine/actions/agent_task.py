"""``agent_task``: runs the agent named by the task's ``agent_id`` (see engine.agents)."""

from __future__ import annotations

from typing import Any

from workflow_cli.engine.actions.base import ActionFailed, CheckContext, TaskCall
from workflow_cli.engine.agents.mailbox import mailbox_name_ok
from workflow_cli.errors import Problem


class AgentTask:
    name = "agent_task"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        agent = ctx.task.get("agent_id")
        if not agent:
            return [Problem(ctx.pointer, "an agent_task needs 'agent_id'")]
        problems = []
        if (
            isinstance(agent, str)
            and agent not in ctx.agent_names
            and "{{" not in agent
            and ctx.undeclared_agents == "error"
        ):
            known = ", ".join(sorted(ctx.agent_names))
            problems.append(
                Problem(
                    f"{ctx.pointer}/agent_id",
                    f"unknown agent '{agent}' (known: {known}); declare it in agents.yaml"
                    " (undeclared agents are an error in this workspace)",
                )
            )
        elif (
            isinstance(agent, str)
            and agent not in ctx.agent_names
            and "{{" not in agent
            and not mailbox_name_ok(agent)
        ):
            problems.append(
                Problem(
                    f"{ctx.pointer}/agent_id",
                    f"'{agent}' is not declared, and cannot be a mailbox agent's name"
                    " (letters, digits, '_', '-', '.')",
                )
            )
        schema = ctx.task.get("output_schema")
        if isinstance(schema, dict):
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                problems.append(
                    Problem(f"{ctx.pointer}/output_schema", f"is not a JSON Schema: {exc.message}")
                )
        return problems

    def run(self, call: TaskCall) -> Any:
        from workflow_cli.engine.agents import run_agent

        if not call.agent_id:
            raise ActionFailed("an agent_task needs 'agent_id'", retryable=False)
        return run_agent(call.agent_id, call)


ACTION = AgentTask()
