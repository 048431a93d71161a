"""Which executor a run uses: ``threads``, ``local-dask`` or ``dask://HOST:PORT``.

`dask_settings` reads ``--executor`` (else the workspace's ``executor`` setting) and
checks it; a run on threads never imports the Dask executor (`engine.dask_executor`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflow_cli.errors import UsageError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.workspace import Workspace

_ADDRESS = r"^dask://(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$"
CHOICES = "'threads', 'local-dask' or 'dask://HOST:PORT'"
DEFAULT_OUTPUT_LIMIT = 256 * 1024  # characters of JSON
CONNECT_TIMEOUT = 10.0


@readonly_dataclass
class DaskSettings:
    """Where attempts run and where large outputs go."""

    address: str | None  # the scheduler, ``tcp://HOST:PORT``; None: a LocalCluster
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    shared_folder: Path | None = None  # for outputs above the limit (else the instance's)
    local_workers: int = 2
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to reach the scheduler


def child_executor(workspace: Workspace, choice: str | None) -> str:
    """What a child workflow's run uses: the parent's cluster when it is one to connect
    to (``dask://``); threads rather than a second local cluster."""
    settings = dask_settings(workspace, choice)
    if settings is None or settings.address is None:
        return "threads"
    return "dask://" + settings.address.removeprefix("tcp://")


def dask_settings(workspace: Workspace, choice: str | None) -> DaskSettings | None:
    """The Dask settings for `choice` (or the workspace's ``executor`` setting); None
    for the thread executor. A bad choice or setting is a UsageError."""
    from workflow_cli.store.config import config_block

    block = config_block(workspace, "executor")
    options: Mapping[str, Any] = {}
    if isinstance(block, Mapping):
        options = block
        block = block.get("default")
    if block is not None and not isinstance(block, str):
        raise UsageError(f"workflow_cli.yaml: 'executor' must be {CHOICES}, or a mapping")
    chosen = choice or block or "threads"
    if chosen == "threads":
        return None
    if chosen == "local-dask":
        address = None
    elif match := re.match(_ADDRESS, chosen):  # compiled only when a cluster is named
        address = f"tcp://{match['host']}:{match['port']}"
    else:
        raise UsageError(f"unknown executor '{chosen}': use {CHOICES}")
    limit = options.get("output_limit", DEFAULT_OUTPUT_LIMIT)
    workers = options.get("local_workers", 2)
    shared = options.get("shared_folder")
    connect = options.get("connect_timeout", CONNECT_TIMEOUT)
    if not isinstance(connect, int | float) or isinstance(connect, bool) or connect <= 0:
        raise UsageError("workflow_cli.yaml: executor.connect_timeout must be a positive number")
    for name, value in (("output_limit", limit), ("local_workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"workflow_cli.yaml: executor.{name} must be a positive integer")
    if shared is not None and not isinstance(shared, str):
        raise UsageError("workflow_cli.yaml: executor.shared_folder must be a path")
    folder = (workspace.root / shared).resolve() if shared else None
    return DaskSettings(address, limit, folder, workers, float(connect))
