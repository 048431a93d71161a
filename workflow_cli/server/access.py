"""The access log: ``server/access.jsonl``, one JSON line per request the server answers,
with the time, the token's name (or null), the method, the path and the status.

What a token changes in an instance is in that instance's journal too, under the token's
name (the requester of a create, start or resume; who approved, stopped, cancelled).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from workflow_cli.store.files import open_regular
from workflow_cli.store.tokens import server_folder
from workflow_cli.store.workspace import Workspace

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS_LOG = "access.jsonl"


class AccessLog:
    """ASGI middleware writing one line per HTTP request once its status is known. The
    token's name is what the authentication put in the request's state
    (``scope["state"]["token_name"]``)."""

    def __init__(self, app: ASGIApp, workspace: Workspace) -> None:
        self.app = app
        self.path = server_folder(workspace) / ACCESS_LOG
        workspace.private_folder(server_folder(workspace))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.write(scope, int(message["status"]))
            await send(message)

        await self.app(scope, receive, send_logged)

    def write(self, scope: Scope, status: int) -> None:
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "token": (scope.get("state") or {}).get("token_name"),
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        descriptor = open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, doing="write")
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
