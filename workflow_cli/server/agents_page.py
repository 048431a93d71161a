"""The dashboard's agents page, ``/agents``: every agent (kind, where it comes from, runs
and failures, what waits for it) and each mailbox agent's inbox (instance, task, attempt,
waiting since, deadline, parameters), live; operators deliver a result from it (an
output as JSON, checked as ``workflow_cli deliver`` checks it), made as their token's name.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from workflow_cli import api
from workflow_cli.errors import UsageError, WorkflowCliError
from workflow_cli.server.dashboard import _form, _page, _same_origin, signed_in
from workflow_cli.server.errors import http_status

# The states of a task whose assignment still waits for a delivery.
OPEN = ("waiting", "pending")


def add_agents_page(app: FastAPI, workspace: api.Workspace) -> None:
    """Add ``/agents`` and its delivery form to the dashboard."""

    @app.get("/agents", include_in_schema=False)
    def agents_page(request: Request, part: str = "") -> Response:
        token = signed_in(workspace, request)
        agents = workspace.agents()
        context: dict[str, Any] = {
            "token": token,
            "may_operate": token.may("operate"),
            "agents": agents,
            "inboxes": inboxes(workspace, agents),
            "open": OPEN,
            "refresh": "/agents?part=live",
        }
        if part == "live":
            return _page("agents_live.html.j2", **context)
        return _page("agents.html.j2", title="Agents", **context)

    @app.post("/agents/{name}/deliver", include_in_schema=False)
    async def deliver(request: Request, name: str) -> Response:
        _same_origin(request)
        token = signed_in(workspace, request, "operate")
        form = await _form(request)
        try:
            output = _output(form.get("output", ""))
            result = workspace.deliver(
                form.get("instance", ""),
                form.get("task", ""),
                agent=name,
                output=output,
                by=token.name,
                via="api",
            )
            if form.get("resume") and not result.runner:
                workspace.resume(result.id, requester=token.name, timeout=15.0)
        except WorkflowCliError as exc:
            return _page(
                "message.html.j2", code=http_status(exc), title="Refused", message=exc.message
            )
        return RedirectResponse(f"/instances/{urllib.parse.quote(result.id)}", status_code=303)


def inboxes(workspace: api.Workspace, agents: list[dict[str, Any]]) -> dict[str, Any]:
    """The assignments of each mailbox agent, by its name (oldest first)."""
    from workflow_cli.engine.agents.overview import list_assignments

    found: dict[str, list[dict[str, Any]]] = {
        agent["name"]: [] for agent in agents if agent["kind"] == "mailbox"
    }
    everyone = list_assignments(workspace.store, None, workspace.clock(), workspace.clock)
    for assignment in everyone:
        found.setdefault(str(assignment["agent"]), []).append(assignment)
    return found


def _output(text: str) -> Any:
    """The output field of the form: JSON."""
    if not text.strip():
        raise UsageError('the output is empty: give it as JSON, e.g. {"approved": true}')
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f'the output is not JSON ({exc}); a text is given quoted, e.g. "done"'
        ) from None
