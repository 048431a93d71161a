"""``serve``: the REST API of this workspace on a local port."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context
from workflow_cli.errors import UsageError


def serve_command(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (not loopback: only with tokens)."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free one)."),
    tick_interval: float = typer.Option(
        10.0,
        "--tick-interval",
        min=0.0,
        max=3600.0,
        help="Run due schedules and timers (as 'workflow_cli tick --resume') this often;"
        " 0: never (leave it to cron).",
    ),
) -> None:
    """Serve the REST API (JSON, OpenAPI at /api/openapi.json) of this workspace, until
    Ctrl-C. Needs the 'server' extra: pip install 'workflow_cli[server]'.

    Every request needs a token ('Authorization: Bearer TOKEN', made with 'workflow_cli
    tokens add'); none is 401, a role that may not is 403. Runs started through the
    server run in runner processes of their own, which go on if the server stops. The
    CLI and the server work side by side on one workspace. Every --tick-interval seconds
    the server runs 'workflow_cli tick --resume': due schedules and approval deadlines
    fire without cron.

    Examples:

    \b
      workflow_cli tokens add me --role admin
      workflow_cli serve --port 8080
      workflow_cli serve --host 0.0.0.0 --port 8080"""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError(
            "the server needs the 'server' extra: pip install 'workflow_cli[server]'"
        ) from None
    from workflow_cli.server.serve import bind_socket, serve
    from workflow_cli.store.tokens import list_tokens

    workspace = app_context(ctx).api
    sock = bind_socket(workspace, host, port)
    if not list_tokens(workspace.store):
        typer.echo(
            "warning: no tokens yet, so every request is refused (401); make one with: "
            "workflow_cli tokens add NAME --role admin",
            err=True,
        )

    def ready(url: str) -> None:
        typer.echo(f"serving {workspace.path} on {url} (API at {url}/api, Ctrl-C stops)")
        import sys

        sys.stdout.flush()

    try:
        serve(workspace, sock, on_ready=ready, tick_interval=tick_interval)
    finally:
        sock.close()
