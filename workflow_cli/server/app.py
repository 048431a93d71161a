"""The REST API: FastAPI routes over `workflow_cli.api.Workspace`, behind tokens.

Every route but the OpenAPI document (``/api/openapi.json``, ``/api/docs``) needs a
token (``Authorization: Bearer TOKEN``): none, or an unknown one, is 401; a role that may
not do it is 403 (roles: `workflow_cli.store.tokens`). What a token changes is journaled
under its name. Runs never happen in a request: ``start`` and ``resume`` start a runner
process (`workflow_cli.api.runners`), which the server reaps and lists in ``health``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from workflow_cli import api
from workflow_cli.errors import WorkflowCliError
from workflow_cli.server.access import AccessLog
from workflow_cli.server.errors import error_body, http_status, plain_error
from workflow_cli.store.tokens import TokenInfo, find_token

# How often the server looks at its runner processes (and reaps the ended ones).
REAP_INTERVAL = 1.0
# How long `start` and `resume` wait for the runner process to begin its run.
START_WAIT = 15.0


class Refused(Exception):
    """A request the server refuses before any core call: 401 or 403."""

    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str = Field(description="A template name (see GET /api/templates).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Parameter values, typed as the template says."
    )


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_workers: int = Field(default=4, ge=1, le=256, description="How many tasks may run at once.")


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str | None = Field(
        default=None, description="The waiting gate (needed when several wait)."
    )
    comment: str | None = Field(default=None, description="Why (kept in the history).")
    inputs: dict[str, Any] | None = Field(
        default=None, description="approve: the values of the gate's form, if it has one."
    )


class SignalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, description="The event's name.")
    data: Any = Field(default=None, description="The event's data (any JSON value).")


class StopBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace: float | None = Field(
        default=None,
        ge=0,
        description="stop: interrupt tasks still in flight after this many seconds.",
    )
    wait: float = Field(
        default=10.0, ge=0, le=300, description="Seconds to wait for the runner to end."
    )


def build_app(workspace: api.Workspace, *, tick_interval: float = 0.0) -> FastAPI:
    """The application over `workspace`. With `tick_interval`, the server runs
    ``workflow_cli tick --resume`` that often: due schedules and timers (approval
    deadlines, escalations, reminders) fire with no cron."""
    ticks = Ticks(workspace, tick_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def reap() -> None:
            while True:
                workspace.runners()
                await asyncio.sleep(REAP_INTERVAL)

        tasks = [asyncio.create_task(reap())]
        if tick_interval > 0:
            tasks.append(asyncio.create_task(ticks.loop()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()

    app = FastAPI(
        title="workflow_cli",
        description="The REST API of a workflow_cli workspace.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(AccessLog, workspace=workspace.store)

    @app.exception_handler(WorkflowCliError)
    async def _cli_error(_request: Request, exc: WorkflowCliError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=http_status(exc))

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            plain_error(exc.message, exc.kind), status_code=exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg')}"
            for e in exc.errors()
        ]
        body = plain_error("invalid request: " + "; ".join(problems), "UsageError")
        return JSONResponse(body, status_code=400)

    read = Depends(_authenticate(workspace, "read"))
    operate = Depends(_authenticate(workspace, "operate"))
    decide = Depends(_authenticate(workspace, "decide"))

    @app.get(
        "/api/health",
        summary="The workspace's health and the server's runners",
        response_model=None,
    )
    def health(_token: TokenInfo = read) -> dict[str, Any]:
        return {
            "status": "ok",
            "workspace": str(workspace.path),
            "runners": workspace.runners(),
            "tick": ticks.last,
            "summary": workspace.health(),
        }

    @app.get("/api/templates", summary="Every template with its parameters", response_model=None)
    def templates(_token: TokenInfo = read) -> list[api.TemplateInfo]:
        return workspace.templates()

    @app.get("/api/workflows", summary="Instances, newest first", response_model=None)
    def list_workflows(
        state: str | None = Query(None, description="Only instances in this state."),
        template: str | None = Query(None, description="Only instances of this template."),
        limit: int = Query(100, ge=0, le=10000, description="At most this many."),
        _token: TokenInfo = read,
    ) -> list[api.InstanceSummary]:
        return workspace.list(state=state, template=template, limit=limit, newest_first=True)

    @app.post(
        "/api/workflows",
        status_code=201,
        summary="Create an instance of a template",
        response_model=None,
    )
    def create(body: CreateBody, token: TokenInfo = operate) -> dict[str, str]:
        instance_id = workspace.create(
            body.template, body.params, requester=token.name, allow_files=False
        )
        return {"id": instance_id}

    @app.get(
        "/api/workflows/{instance}/status",
        summary="What 'status --json' prints",
        response_model=None,
    )
    def status(instance: str, _token: TokenInfo = read) -> api.StatusView:
        return workspace.status(instance, fire_due=False)

    @app.get(
        "/api/workflows/{instance}/events",
        summary="The journal as Server-Sent Events, following the run to its end",
        response_class=StreamingResponse,
    )
    def events(
        instance: str,
        request: Request,
        follow: bool = Query(True, description="Go on until the run ends."),
        _token: TokenInfo = read,
    ) -> StreamingResponse:
        from workflow_cli.monitor.follow import Follower
        from workflow_cli.server.stream import journal_stream

        instance_id = workspace.resolve(instance)
        follower = Follower(workspace.store, instance_id, workspace.clock, from_start=True)
        after = request.headers.get("last-event-id", "0")
        stream = journal_stream(
            follower, after_seq=int(after) if after.isdigit() else 0, keep_following=follow
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def start_answer(result: api.StartResult) -> dict[str, Any]:
        return {
            "id": result.id,
            "pid": result.pid,
            "resume": result.resume,
            "exit_code": result.exit_code,
            "state": workspace.status(result.id, fire_due=False)["state"],
        }

    @app.post(
        "/api/workflows/{instance}/start",
        status_code=202,
        summary="Start the instance's runner in a process of its own",
        response_model=None,
    )
    def start(
        instance: str, body: RunBody | None = None, token: TokenInfo = operate
    ) -> dict[str, Any]:
        options = body or RunBody()
        result = workspace.start(
            instance, requester=token.name, max_workers=options.max_workers, timeout=START_WAIT
        )
        return start_answer(result)

    @app.post(
        "/api/workflows/{instance}/resume",
        status_code=202,
        summary="Go on with a waiting, paused or crashed instance in a runner process",
        response_model=None,
    )
    def resume(
        instance: str, body: RunBody | None = None, token: TokenInfo = operate
    ) -> dict[str, Any]:
        options = body or RunBody()
        result = workspace.resume(
            instance, requester=token.name, max_workers=options.max_workers, timeout=START_WAIT
        )
        return start_answer(result)

    @app.post("/api/workflows/{instance}/stop", summary="Pause the instance", response_model=None)
    def stop(
        instance: str, body: StopBody | None = None, token: TokenInfo = operate
    ) -> dict[str, Any]:
        options = body or StopBody()
        outcome = workspace.stop(instance, by=token.name, grace=options.grace, wait=options.wait)
        return _stop_answer(outcome)

    @app.post(
        "/api/workflows/{instance}/signal",
        summary="Send an event to the instance's wait_for_event tasks, as the token's name",
        response_model=None,
    )
    def signal(instance: str, body: SignalBody, token: TokenInfo = operate) -> dict[str, Any]:
        return workspace.signal(instance, body.event, body.data, sender=token.name).as_dict()

    @app.post(
        "/api/workflows/{instance}/cancel",
        summary="Cancel the instance for good",
        response_model=None,
    )
    def cancel(
        instance: str, body: StopBody | None = None, token: TokenInfo = operate
    ) -> dict[str, Any]:
        options = body or StopBody()
        return _stop_answer(workspace.cancel(instance, by=token.name, wait=options.wait))

    @app.post(
        "/api/workflows/{instance}/approve",
        summary="Approve a waiting gate as the token's name",
        response_model=None,
    )
    def approve(
        instance: str, body: DecisionBody | None = None, token: TokenInfo = decide
    ) -> dict[str, Any]:
        options = body or DecisionBody()
        result = workspace.approve(
            instance, options.task, by=token.name, comment=options.comment, inputs=options.inputs
        )
        return asdict(result)

    @app.post(
        "/api/workflows/{instance}/reject",
        summary="Reject a waiting gate as the token's name",
        response_model=None,
    )
    def reject(
        instance: str, body: DecisionBody | None = None, token: TokenInfo = decide
    ) -> dict[str, Any]:
        options = body or DecisionBody()
        result = workspace.reject(instance, options.task, by=token.name, comment=options.comment)
        return asdict(result)

    @app.get("/api/approvals", summary="Approval gates waiting for a decision", response_model=None)
    def approvals(
        for_name: str | None = Query(
            None, alias="for", description="Only gates this person may decide."
        ),
        overdue: bool = Query(False, description="Only gates past their deadline."),
        _token: TokenInfo = read,
    ) -> list[dict[str, Any]]:
        return workspace.approvals(for_name=for_name, overdue=overdue)

    from workflow_cli.server.agents import add_agent_routes
    from workflow_cli.server.dashboard import add_dashboard

    add_agent_routes(app, workspace, read, operate)

    add_dashboard(app, workspace)
    return app


class Ticks:
    """The server's own ``tick``: a ``workflow_cli tick --resume --json`` process every
    `interval` seconds (a process, as cron would run it, so the server itself never holds
    an instance's lock); the last one's outcome is shown by ``/api/health``."""

    def __init__(self, workspace: api.Workspace, interval: float) -> None:
        self.workspace = workspace
        self.interval = interval
        self.last: dict[str, Any] | None = None

    async def loop(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(self.interval)

    async def once(self) -> None:
        import json
        import os
        import sys

        started = self.workspace.clock().isoformat(timespec="seconds")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workflow_cli",
            "tick",
            "--resume",
            "--json",
            cwd=str(self.workspace.path),
            env={**os.environ, "WORKFLOW_HOME": str(self.workspace.path)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(
                process.communicate(), timeout=max(60.0, 10 * self.interval)
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            self.last = {"at": started, "exit_code": None, "error": "tick took too long"}
            return
        try:
            report = json.loads(out or b"null")
        except ValueError:
            report = None
        self.last = {
            "at": started,
            "exit_code": process.returncode,
            "report": report,
            "error": err.decode("utf-8", errors="replace").strip()[-2000:] or None,
        }


def _stop_answer(outcome: api.StopResult) -> dict[str, Any]:
    return {
        "id": outcome.instance_id,
        "state": outcome.state,
        "requested": outcome.requested,
        "runner_ended": outcome.runner_ended,
        "message": outcome.message,
        "compensations": [vars(c) for c in outcome.compensations],
    }


def _authenticate(workspace: api.Workspace, permission: str) -> Callable[[Request], TokenInfo]:
    """A dependency: the request's token, which must allow `permission`."""

    def check(request: Request) -> TokenInfo:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Refused(
                401, "a token is needed: send 'Authorization: Bearer TOKEN'", "Unauthorized"
            )
        token = find_token(workspace.store, presented.strip())
        if token is None:
            raise Refused(401, "unknown or revoked token", "Unauthorized")
        request.state.token_name = token.name
        if not token.may(permission):
            raise Refused(
                403, f"token '{token.name}' ({token.role}) may not {permission}", "Forbidden"
            )
        return token

    return check
