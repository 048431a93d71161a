"""The web dashboard at ``/``: instances, an instance's page (graph, timeline, tasks and
their logs, live as events arrive), approvals waiting with forms for approvers, health and
alerts; the agents and their inboxes at ``/agents`` (`workflow_cli.server.agents_page`).
Server-rendered (Jinja2, autoescaped) with one small script for live updates; no build
step, nothing loaded from elsewhere (the Content-Security-Policy says so).

A browser signs in with a token (``workflow_cli tokens add``) on ``/login``; the token is
kept in an HttpOnly, SameSite=Strict cookie and checked on every request, with the same
roles as the REST API. Forms are accepted only from the dashboard's own pages (the
cookie is never sent by another site, and a request whose Origin is another is refused).
"""

from __future__ import annotations

import json
import urllib.parse
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from workflow_cli import api
from workflow_cli.errors import NotFoundError, UsageError, WorkflowCliError
from workflow_cli.store.files import open_binary
from workflow_cli.store.tokens import TokenInfo, find_token

if TYPE_CHECKING:
    from jinja2 import Environment

COOKIE = "workflow_cli_token"
LISTED = 50  # instances on the first page
LOG_TAIL = 200_000  # the last bytes of a task log shown
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'"
)
_STATIC = {
    "dashboard.js": ("workflow_cli.server", "pages", "text/javascript"),
    "dashboard.css": ("workflow_cli.server", "pages", "text/css"),
    "report.css": ("workflow_cli.monitor.report", ".", "text/css"),  # the report's look
}


class _SignIn(Exception):
    """The request has no valid token: off to the sign-in page."""


def add_dashboard(app: FastAPI, workspace: api.Workspace) -> None:
    """Add the dashboard's pages to `app`."""

    @app.exception_handler(_SignIn)
    async def _sign_in(request: Request, _exc: _SignIn) -> Response:
        target = urllib.parse.quote(request.url.path, safe="/")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    def who(request: Request, permission: str = "read") -> TokenInfo:
        return signed_in(workspace, request, permission)

    @app.exception_handler(_Refused)
    async def _refused(_request: Request, exc: _Refused) -> Response:
        return _page("message.html.j2", code=403, title="Not allowed", message=exc.message)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC:
            return Response(status_code=404)
        return Response(_asset(name), media_type=_STATIC[name][2], headers=_headers())

    @app.get("/login", include_in_schema=False)
    def login_page(next: str = "/") -> Response:
        return _page("login.html.j2", title="Sign in", next=_local(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        _same_origin(request)
        form = await _form(request)
        token = find_token(workspace.store, form.get("token", "").strip())
        target = _local(form.get("next", "/"))
        if token is None:
            return _page(
                "login.html.j2",
                code=401,
                title="Sign in",
                next=target,
                error="unknown or revoked token",
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            form["token"].strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        _same_origin(request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", include_in_schema=False)
    def index(
        request: Request, state: str | None = None, template: str | None = None, part: str = ""
    ) -> Response:
        token = who(request)
        state, template = state or None, template or None
        rows = workspace.list(state=state, template=template, limit=LISTED, newest_first=True)
        health = _health(workspace)
        context: dict[str, Any] = {
            "token": token,
            "may_decide": token.may("decide"),
            "rows": rows,
            "state": state or "",
            "template": template or "",
            "states": _states(),
            "templates": sorted({t["name"] for t in workspace.templates()}),
            "approvals": workspace.approvals(),
            "health": health,
            "alerts": _alerts(workspace),
            "refresh": str(request.url.include_query_params(part="live")),
        }
        if part == "live":
            return _page("index_live.html.j2", **context)
        return _page("index.html.j2", title="workflow_cli", **context)

    @app.get("/instances/{instance}", include_in_schema=False)
    def instance_page(request: Request, instance: str, part: str = "") -> Response:
        token = who(request)
        instance_id = workspace.resolve(instance)
        status = workspace.status(instance_id)
        context: dict[str, Any] = {
            "token": token,
            "may_decide": token.may("decide"),
            "may_operate": token.may("operate"),
            "status": status,
            "parts": _instance_parts(workspace, instance_id),
            "gates": _gates(status, token.name),
            "waits": _event_waits(status),
            "logs": _logged_tasks(workspace, instance_id),
            "refresh": f"/instances/{urllib.parse.quote(instance_id)}?part=live",
            "events": f"/instances/{urllib.parse.quote(instance_id)}/live",
        }
        if part == "live":
            return _page("instance_live.html.j2", **context)
        return _page("instance.html.j2", title=instance_id, **context)

    @app.get("/instances/{instance}/live", include_in_schema=False)
    def live(request: Request, instance: str) -> StreamingResponse:
        from workflow_cli.monitor.follow import Follower
        from workflow_cli.server.stream import journal_stream

        who(request)
        instance_id = workspace.resolve(instance)
        follower = Follower(workspace.store, instance_id, workspace.clock, from_start=True)
        # The page shows the state as it was loaded: only later events make it reload.
        after = request.headers.get("last-event-id", "")
        seq = int(after) if after.isdigit() else follower.state["seq"]
        return StreamingResponse(
            journal_stream(follower, after_seq=seq),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/instances/{instance}/logs/{task}", include_in_schema=False)
    def task_log(request: Request, instance: str, task: str) -> Response:
        token = who(request)
        instance_id = workspace.resolve(instance)
        if task not in workspace.status(instance_id)["tasks"]:
            raise NotFoundError(f"no task '{task}' in {instance_id}")
        text, cut = _log_text(workspace, instance_id, task)
        return _page(
            "log.html.j2",
            title=f"{instance_id} {task}",
            token=token,
            instance_id=instance_id,
            task=task,
            text=text,
            cut=cut,
        )

    @app.post("/instances/{instance}/{decision}", include_in_schema=False)
    async def decide(request: Request, instance: str, decision: str) -> Response:
        _same_origin(request)
        actions = {
            "approve": "decide",
            "reject": "decide",
            "resume": "operate",
            "signal": "operate",
        }
        if decision not in actions:
            return Response(status_code=404)
        token = who(request, actions[decision])
        form = await _form(request)
        instance_id = workspace.resolve(instance)
        try:
            if decision == "resume":
                workspace.resume(instance_id, requester=token.name, timeout=15.0)
            elif decision == "signal":
                workspace.signal(
                    instance_id,
                    form.get("event", ""),
                    _form_json(form.get("data", "")),
                    sender=token.name,
                )
            else:
                act = workspace.approve if decision == "approve" else workspace.reject
                act(
                    instance_id,
                    form.get("task") or None,
                    by=token.name,
                    comment=form.get("comment") or None,
                )
        except WorkflowCliError as exc:
            return _page("message.html.j2", code=409, title="Refused", message=exc.message)
        return RedirectResponse(f"/instances/{urllib.parse.quote(instance_id)}", status_code=303)

    from workflow_cli.server.agents_page import add_agents_page

    add_agents_page(app, workspace)


def signed_in(workspace: api.Workspace, request: Request, permission: str = "read") -> TokenInfo:
    """The token of the request's cookie, which must allow `permission`; without one,
    off to the sign-in page."""
    token = find_token(workspace.store, request.cookies.get(COOKIE, ""))
    if token is None:
        raise _SignIn()
    request.state.token_name = token.name
    if not token.may(permission):
        raise _Refused(f"token '{token.name}' ({token.role}) may not {permission}")
    return token


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _page(name: str, code: int = 200, **context: Any) -> HTMLResponse:
    body = _environment().get_template(name).render(**context)
    return HTMLResponse(body, status_code=code, headers=_headers())


@cache
def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("workflow_cli.server", "pages"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = lambda value: str(value or "")[:19].replace("T", " ")
    environment.filters["url"] = lambda value: urllib.parse.quote(str(value), safe="")
    environment.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    return environment


@cache
def _asset(name: str) -> str:
    from importlib import resources

    package, folder, _ = _STATIC[name]
    return (resources.files(package) / folder / name).read_text(encoding="utf-8")


async def _form(request: Request) -> dict[str, str]:
    """A URL-encoded form (the dashboard's only kind), first value of each field."""
    body = (await request.body())[:64_000].decode("utf-8", errors="replace")
    return {key: values[0] for key, values in urllib.parse.parse_qs(body).items()}


def _same_origin(request: Request) -> None:
    """Refuse a form sent from another site's page."""
    origin = request.headers.get("origin")
    if origin and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
        raise _Refused("forms are accepted from this dashboard's own pages only")


def _local(target: str) -> str:
    """A place on this server to go to after signing in (never another site)."""
    parts = urllib.parse.urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _states() -> list[str]:
    from workflow_cli.store.state import INSTANCE_STATES

    return list(INSTANCE_STATES)


def _health(workspace: api.Workspace) -> dict[str, Any]:
    """The workspace's health as the first page shows it: without the machine's figures,
    which the page does not show (measuring its CPU takes a 50 ms window)."""
    from workflow_cli.monitor.summary import workspace_health

    return workspace_health(workspace.store, workspace.clock, machine={}, write=False)


def _alerts(workspace: api.Workspace) -> list[dict[str, Any]]:
    from workflow_cli.monitor.alerts import read_alerts

    return read_alerts(workspace.store)[-20:][::-1]


def _instance_parts(workspace: api.Workspace, instance_id: str) -> dict[str, Any]:
    from workflow_cli.monitor.report.collect import collect_report
    from workflow_cli.monitor.report.page import instance_parts

    return instance_parts(collect_report(workspace.store, instance_id, workspace.clock))


def _gates(status: api.StatusView, name: str) -> list[dict[str, Any]]:
    """The approval gates of an instance that wait, with the decisions recorded so far
    and whether `name` has decided already."""
    gates = []
    for task_id, task in status["tasks"].items():
        waiting = task.get("waiting_for") or {}
        if task["state"] == "waiting" and waiting.get("approvers"):
            decisions = [a for a in status.get("approvals", []) if a.get("task") == task_id]
            gates.append(
                {
                    "task": task_id,
                    "approvers": [str(a) for a in waiting["approvers"]],
                    "message": str(waiting.get("message") or ""),
                    "decisions": decisions,
                    "decided": any(d.get("by") == name for d in decisions),
                }
            )
    return gates


def _event_waits(status: api.StatusView) -> list[dict[str, Any]]:
    """The tasks of an instance that wait for an event: the event, its filter, its
    deadline."""
    from workflow_cli.engine.event_waits import KIND, TIMEOUT

    deadlines = {
        timer.get("target"): timer.get("due")
        for timer in status.get("timers", [])
        if timer.get("kind") == TIMEOUT
    }
    return [
        {
            "task": task_id,
            "event": str(waiting.get("event") or ""),
            "filter": waiting.get("filter"),
            "deadline": deadlines.get(task_id),
            "on_timeout": waiting.get("on_timeout"),
        }
        for task_id, task in status["tasks"].items()
        if task["state"] == "waiting"
        and (waiting := task.get("waiting_for") or {}).get("kind") == KIND
    ]


def _form_json(text: str) -> Any:
    """The JSON a form field holds (nothing: null), or UsageError saying why not."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"data is not JSON: {exc}") from None


def _logged_tasks(workspace: api.Workspace, instance_id: str) -> set[str]:
    folder = workspace.store.instance_dir(instance_id) / "logs"
    try:
        return {
            entry.name.removesuffix(".log")
            for entry in folder.iterdir()
            if entry.name.endswith(".log") and not entry.name.endswith(".compensate.log")
        }
    except OSError:
        return set()


def _log_text(workspace: api.Workspace, instance_id: str, task: str) -> tuple[str, bool]:
    """The end of a task's log (its secrets were masked when it was written)."""
    path = workspace.store.instance_dir(instance_id) / "logs" / f"{task}.log"
    try:
        with open_binary(path) as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - LOG_TAIL))
            data = handle.read(LOG_TAIL)
    except FileNotFoundError:
        return "", False
    except OSError as exc:
        raise UsageError(f"cannot read the log of {task}: {exc}") from exc
    return data.decode("utf-8", errors="replace"), size > LOG_TAIL
