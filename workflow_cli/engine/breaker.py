"""Circuit breakers for the hosts workflows call (``api_call``, and ``http`` agents).

Per host, shared by every run in the workspace (``monitoring/breakers.json``, changed
under a lock): after `failures` consecutive failures (connection errors, timeouts, HTTP
5xx and 429) the breaker opens and calls to that host fail at once with kind
``circuit_open`` — retried per the task's policy like any failure — until
`cool_down_seconds` have passed. Then one call is let through (half-open): success closes
the breaker, failure opens it again. Settings come from the call's ``circuit_breaker``
parameter (``false`` turns it off), else ``circuit_breaker:`` in ``workflow_cli.yaml``,
else 5 failures and 30 s.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from workflow_cli.engine.actions.base import ActionFailed
from workflow_cli.errors import WorkspaceError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.config import config_block
from workflow_cli.store.files import open_regular, read_bytes, write_json_atomic
from workflow_cli.store.workspace import Workspace

BREAKERS_FILE = "breakers.json"
DEFAULT_FAILURES = 5
DEFAULT_COOL_DOWN = 30.0


@readonly_dataclass
class BreakerSettings:
    failures: int = DEFAULT_FAILURES
    cool_down: float = DEFAULT_COOL_DOWN
    enabled: bool = True


def settings_for(workspace: Workspace, given: Any) -> BreakerSettings:
    """A call's settings: its own ``circuit_breaker`` parameter over the workspace's."""
    if given is False:
        return BreakerSettings(enabled=False)
    block = config_block(workspace, "circuit_breaker")
    merged: dict[str, Any] = {
        **(block if isinstance(block, Mapping) else {}),
        **(given if isinstance(given, Mapping) else {}),
    }
    failures, cool_down = (
        merged.get("failures", DEFAULT_FAILURES),
        merged.get("cool_down_seconds", DEFAULT_COOL_DOWN),
    )
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
        raise ActionFailed(
            "circuit_breaker.failures must be a whole number from 1", retryable=False
        )
    if not isinstance(cool_down, int | float) or isinstance(cool_down, bool) or cool_down < 0:
        raise ActionFailed(
            "circuit_breaker.cool_down_seconds must be a number of seconds", retryable=False
        )
    return BreakerSettings(failures, float(cool_down), merged.get("enabled", True) is not False)


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@contextmanager
def _breakers(workspace: Workspace) -> Iterator[dict[str, Any]]:
    """The breakers of the workspace, to read and change under the lock."""
    folder = workspace.private_folder(workspace.monitoring_dir)
    fd = open_regular(folder / "breakers.lock", os.O_RDWR | os.O_CREAT, doing="lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            found = json.loads(read_bytes(folder / BREAKERS_FILE))
        except (OSError, ValueError, WorkspaceError):
            found = {}
        breakers = found if isinstance(found, dict) else {}
        before = json.dumps(breakers, sort_keys=True)
        yield breakers
        if json.dumps(breakers, sort_keys=True) != before:
            write_json_atomic(folder / BREAKERS_FILE, breakers, durable=False)
    finally:
        os.close(fd)  # drops the lock


def read_breakers(workspace: Workspace) -> dict[str, Any]:
    """Every host's breaker as stored (for ``health``)."""
    try:
        found = json.loads(read_bytes(workspace.monitoring_dir / BREAKERS_FILE))
    except (OSError, ValueError, WorkspaceError):
        return {}
    return found if isinstance(found, dict) else {}


def admit(workspace: Workspace, host: str, settings: BreakerSettings, now: datetime) -> None:
    """Let a call to `host` go, or fail it at once while the host's breaker is open (a
    call after the cool-down is the one half-open trial)."""
    if not settings.enabled:
        return
    with _breakers(workspace) as breakers:
        breaker = breakers.get(host)
        if not isinstance(breaker, dict) or breaker.get("state") == "closed":
            return
        opened = datetime.fromisoformat(str(breaker.get("opened_at")))
        retry_at = opened + timedelta(seconds=settings.cool_down)
        if breaker.get("state") == "open" and now >= retry_at:
            breaker.update(state="half_open", trial_at=now.isoformat())
            return
        raise ActionFailed(
            f"the circuit for {host} is open after {breaker.get('failures')} failures in a row"
            f" (the last: {breaker.get('last_error')}); calls go through again after"
            f" {retry_at.isoformat(timespec='seconds')}",
            kind="circuit_open",
            details={"host": host},
        )


def record(
    workspace: Workspace,
    host: str,
    settings: BreakerSettings,
    now: datetime,
    failure: str | None,
) -> None:
    """The outcome of a call to `host`: None for an answer, else why it failed."""
    if not settings.enabled:
        return
    with _breakers(workspace) as breakers:
        breaker = breakers.get(host)
        if failure is None:
            if breaker is not None:
                breakers[host] = {"state": "closed", "failures": 0, "closed_at": now.isoformat()}
            return
        breaker = breaker if isinstance(breaker, dict) else {"state": "closed", "failures": 0}
        failures = int(breaker.get("failures") or 0) + 1
        breaker.update(failures=failures, last_error=failure, last_failure_at=now.isoformat())
        if breaker.get("state") == "half_open" or failures >= settings.failures:
            breaker.update(state="open", opened_at=now.isoformat())
        breakers[host] = breaker
