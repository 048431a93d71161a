"""The workspace's settings: ``workflow_cli.yaml`` in the workspace folder (optional).

One loader for every block (``monitoring``, ``secrets``, and what other parts add),
read with the same bounded, plain-JSON-only loader as definitions and parsed again only
when the file changes. A file that cannot be read or is not a mapping is a
WorkspaceError naming it; each block is checked by the part that owns it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from workflow_cli.errors import DefinitionError, WorkspaceError
from workflow_cli.store.workspace import Workspace

CONFIG_FILE = "workflow_cli.yaml"


def config_path(workspace: Workspace) -> Path:
    return workspace.root / CONFIG_FILE


def load_config(workspace: Workspace) -> dict[str, Any]:
    """The whole settings file as a mapping ({} without one)."""
    path = config_path(workspace)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
    return dict(_parse(path, info.st_mtime_ns, info.st_size))


def config_block(workspace: Workspace, key: str) -> Any:
    """One top-level block of the settings (None when absent)."""
    return load_config(workspace).get(key)


@functools.lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    from workflow_cli.definition.loader import load_plain

    try:
        document = load_plain(path)
    except DefinitionError as exc:
        details = "; ".join(exc.details()) or exc.message
        raise WorkspaceError(f"{path}: {details}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise WorkspaceError(f"{path}: expected a mapping at the top level")
    value: dict[str, Any] = document
    return value
