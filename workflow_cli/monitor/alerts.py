"""``monitoring/alerts.jsonl``: one JSON object per line, one line per alert.

An alert records that something crossed a threshold::

    {"time": "2026-11-21T20:31:02.114+00:00", "level": "warning", "instance": "ID",
     "task": null, "kind": "resource", "metric": "memory", "value": 0.74,
     "threshold": 0.7, "message": "machine memory at 74% crossed the warning threshold 70%"}

``level`` is ``warning`` or ``critical``; ``kind`` is ``resource`` (a sample of CPU,
memory or disk), ``duration`` (a task or the workflow ran past a multiple of its expected
duration) or ``health`` (the health score fell to a worse level). Several processes may
append at once (a runner's sampler, ``health``): each append holds an ``flock`` on the
file, starts on a fresh line if a crashed writer left a torn one, and is fsynced.
Readers skip a line that is not a whole JSON object.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from workflow_cli.errors import UsageError
from workflow_cli.store.files import open_regular, read_bytes
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

ALERTS_FILE = "alerts.jsonl"
ALERT_LEVELS = ("warning", "critical")
ALERT_KINDS = ("resource", "duration", "health")

Alert = dict[str, Any]

# Patterns are compiled when first used (and kept in re's cache), not on import.
_SINCE_RE = r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def alerts_path(workspace: Workspace) -> Path:
    return workspace.monitoring_dir / ALERTS_FILE


def make_alert(
    clock: Clock,
    *,
    level: str,
    instance: str,
    kind: str,
    metric: str,
    value: float,
    threshold: float,
    message: str,
    task: str | None = None,
) -> Alert:
    """An alert record (not yet written)."""
    return {
        "time": clock().isoformat(timespec="milliseconds"),
        "level": level,
        "instance": instance,
        "task": task,
        "kind": kind,
        "metric": metric,
        "value": value,
        "threshold": threshold,
        "message": message,
    }


def append_alert(workspace: Workspace, alert: Alert) -> None:
    """Append one alert as one line, safely against other processes appending too."""
    line = json.dumps(alert, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    workspace.private_folder(workspace.monitoring_dir)
    fd = open_regular(alerts_path(workspace), os.O_RDWR | os.O_APPEND | os.O_CREAT, doing="write")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a writer died mid-line: leave its fragment on its own line
        os.write(fd, line)
        os.fdatasync(fd)
    finally:
        os.close(fd)


def read_alerts(
    workspace: Workspace,
    *,
    level: str | None = None,
    instance: str | None = None,
    since: datetime | None = None,
) -> list[Alert]:
    """The alerts recorded, oldest first, optionally only those of one level, of one
    instance, or at or after `since`."""
    if level is not None and level not in ALERT_LEVELS:
        raise UsageError(f"unknown alert level '{level}' (one of: {', '.join(ALERT_LEVELS)})")
    try:
        data = read_bytes(alerts_path(workspace))
    except FileNotFoundError:
        return []
    found: list[Alert] = []
    for line in data.splitlines():
        try:
            alert = json.loads(line)
        except ValueError:
            continue  # a torn line from a writer that died
        if not isinstance(alert, dict):
            continue
        if level is not None and alert.get("level") != level:
            continue
        if instance is not None and alert.get("instance") != instance:
            continue
        if since is not None and not _at_or_after(alert.get("time"), since):
            continue
        found.append(alert)
    return found


def count_alerts(workspace: Workspace) -> dict[str, int]:
    """How many alerts of each level the file holds (for the summary and metrics)."""
    try:
        data = read_bytes(alerts_path(workspace))
    except FileNotFoundError:
        data = b""
    return {level: data.count(f'"level":"{level}"'.encode()) for level in ALERT_LEVELS}


def parse_since(text: str, now: datetime, option: str = "--since") -> datetime:
    """A ``--since`` value (or that of `option`): an age (``30s``, ``15m``, ``2h``, ``7d``,
    ``1w``) or an ISO 8601 time (UTC when it names no zone)."""
    match = re.match(_SINCE_RE, text)
    if match:
        try:
            return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
        except OverflowError:  # an age from before the year 1
            raise UsageError(f"{option} '{text}' is an age longer than dates go back") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} '{text}' is neither an age (30s, 15m, 2h, 7d, 1w) "
            "nor an ISO time (2026-11-21T09:00:00+00:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _at_or_after(stamp: Any, since: datetime) -> bool:
    if not isinstance(stamp, str):
        return False
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment >= since
