"""The REST API's agents: ``GET /api/agents`` (what ``agents --json`` prints),
``GET /api/agents/{name}/inbox`` (what ``inbox NAME --json`` prints) and
``POST /api/agents/{name}/deliver`` (what ``deliver`` does, journaled with the token's
name as who delivered, ``via: "api"``).

Errors are the CLI's, with its messages: an unknown agent, instance or task is 404; a
task that does not wait for this agent, or was delivered already, is 409; an output
that is not what the task's ``output_schema`` asks for is 422.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from workflow_cli import api
from workflow_cli.errors import UsageError
from workflow_cli.store.tokens import TokenInfo


class DeliverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instance: str = Field(description="Instance id (or a unique prefix).")
    task: str = Field(description="The task whose assignment this answers.")
    output: Any = Field(
        default=None,
        description="The output (any JSON; checked against the task's output_schema).",
    )
    error: str | None = Field(
        default=None, description="Instead of an output: fail the attempt with this message."
    )
    resume: bool = Field(
        default=False,
        description="With no live runner, start one (as POST .../resume) to go on at once.",
    )


def add_agent_routes(app: FastAPI, workspace: api.Workspace, read: Any, operate: Any) -> None:
    """Add the agents' routes to `app`; `read` and `operate` are the token checks."""

    @app.get("/api/agents", summary="Every agent, as 'agents --json'", response_model=None)
    def agents(_token: TokenInfo = read) -> list[dict[str, Any]]:
        return workspace.agents()

    @app.get(
        "/api/agents/{name}/inbox",
        summary="A mailbox agent's assignments, as 'inbox NAME --json'",
        response_model=None,
    )
    def inbox(name: str, _token: TokenInfo = read) -> list[dict[str, Any]]:
        return workspace.inbox(name)

    @app.post(
        "/api/agents/{name}/deliver",
        summary="Deliver a mailbox agent's result, as 'deliver', made as the token's name",
        response_model=None,
    )
    def deliver(name: str, body: DeliverBody, token: TokenInfo = operate) -> dict[str, Any]:
        from workflow_cli.server.app import START_WAIT

        if ("output" in body.model_fields_set) == (body.error is not None):
            raise UsageError('give "output" or "error" (one of them)')
        given: dict[str, Any] = (
            {"error": body.error} if body.error is not None else {"output": body.output}
        )
        result = workspace.deliver(
            body.instance, body.task, agent=name, by=token.name, via="api", **given
        )
        answer: dict[str, Any] = asdict(result) | {"resumed": None}
        if body.resume and not result.runner:
            started = workspace.resume(result.id, requester=token.name, timeout=START_WAIT)
            answer["resumed"] = {"pid": started.pid, "exit_code": started.exit_code}
            answer["state"] = workspace.status(result.id, fire_due=False)["state"]
        return answer
