"""An instance's journal as Server-Sent Events, following the run to its end.

Each event is one SSE message: ``id`` its sequence number (a client that reconnects with
``Last-Event-ID`` gets only what came after), ``data`` the event as JSON with secrets
masked. The stream ends with an ``end`` event whose data says why
(``{"reason": "ended" | "not_running" | "runner_gone"}``, as `monitor.follow` decides),
after which the server closes it. A comment line every few quiet seconds keeps proxies
from closing it early.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from workflow_cli.monitor.follow import Follower, follow
from workflow_cli.store.secrets import mask_event, secret_values

# Seconds between looks at the journal: an event reaches the client this soon.
STREAM_INTERVAL = 0.05
# Seconds of silence after which a keep-alive comment is sent.
KEEP_ALIVE = 15.0


def sse_message(data: Any, *, event: str | None = None, message_id: int | None = None) -> str:
    lines = []
    if message_id is not None:
        lines.append(f"id: {message_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


async def journal_stream(
    follower: Follower,
    *,
    after_seq: int = 0,
    keep_following: bool = True,
    interval: float = STREAM_INTERVAL,
) -> AsyncIterator[str]:
    """The SSE text of the follower's instance: its events after `after_seq`, then (with
    `keep_following`) each new one until the run ends; the follower is closed at the end
    or when the client goes away."""
    known = secret_values(follower.state.get("params") or {})

    def messages(events: list[dict[str, Any]]) -> str:
        return "".join(
            sse_message(mask_event(e, known), message_id=int(e.get("seq", 0)))
            for e in events
            if int(e.get("seq", 0)) > after_seq
        )

    try:
        text = messages(follower.initial)
        if text:
            yield text
        if not keep_following:
            yield sse_message({"reason": "not_following"}, event="end")
            return
        # `follow` decides when following ends; its waits are taken here, on the event
        # loop, so one thread is not held per client.
        updates = follow(follower, interval=interval, sleep=lambda _seconds: None)
        quiet = 0.0
        for update in updates:
            text = messages(update.events)
            if text:
                quiet = 0.0
                yield text
            if update.end is not None:
                yield sse_message({"reason": update.end}, event="end")
                return
            quiet += interval
            if quiet >= KEEP_ALIVE:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(interval)
    finally:
        follower.close()
