"""Run the server: bind the socket (so the port is known before uvicorn starts, port 0
included), then serve the app on it until SIGINT or SIGTERM."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from workflow_cli import api
from workflow_cli.errors import UsageError
from workflow_cli.store.tokens import list_tokens


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def bind_socket(workspace: api.Workspace, host: str, port: int) -> socket.socket:
    """A listening socket on `host`:`port`. A host other than loopback is refused while
    the workspace has no tokens (everything would be open to that network's refusals
    only — better not to listen there at all)."""
    if not is_loopback(host) and not list_tokens(workspace.store):
        raise UsageError(
            f"serving on {host} (not loopback) needs tokens; make one first with "
            "'workflow_cli tokens add NAME --role ROLE'"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def serve(
    workspace: api.Workspace,
    sock: socket.socket,
    *,
    on_ready: Callable[[str], None] | None = None,
    tick_interval: float = 0.0,
) -> None:
    """Serve the REST API on `sock` until interrupted; `on_ready` gets the base URL.
    With `tick_interval`, due schedules and timers fire that often (``tick``)."""
    import uvicorn

    from workflow_cli.server.app import build_app

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        build_app(workspace, tick_interval=tick_interval),
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(f"http://{shown}:{port}")
    server.run(sockets=[sock])
