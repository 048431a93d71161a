"""Paths that tasks name are kept inside the workspace."""

from __future__ import annotations

from importlib import resources
from pathlib import Path, PurePosixPath

from workflow_cli.engine.actions.base import ActionFailed
from workflow_cli.store.workspace import Workspace

PACKAGE_PREFIX = "package:"
# The engine's own records: a task that wrote here could forge or damage a journal.
ENGINE_FOLDERS = ("instances", "checkpoints", "monitoring")


def resolve_in_workspace(workspace: Workspace, name: str) -> Path:
    """The path `name` (relative to the workspace) as an absolute path inside it.

    Refused, as a non-retryable task failure: anything not a non-empty string, NUL
    bytes, absolute paths, ``..`` components, links that lead outside, and the engine's
    own folders (instances/, checkpoints/, monitoring/).
    """
    if not isinstance(name, str) or not name.strip():
        raise ActionFailed(
            f"a path must be a non-empty string, not {name!r}", kind="path", retryable=False
        )
    if "\x00" in name:
        raise ActionFailed("a path must not contain NUL bytes", kind="path", retryable=False)
    pure = PurePosixPath(name)
    if pure.is_absolute() or Path(name).is_absolute():
        raise ActionFailed(
            f"'{name}' is absolute; paths are relative to the workspace",
            kind="path",
            retryable=False,
        )
    if ".." in pure.parts:
        raise ActionFailed(
            f"'{name}' uses '..'; paths must stay inside the workspace",
            kind="path",
            retryable=False,
        )
    root = workspace.root.resolve()
    candidate = (root / pure).resolve()
    if candidate != root and root not in candidate.parents:
        raise ActionFailed(
            f"'{name}' leads outside the workspace (through a link)", kind="path", retryable=False
        )
    inside = candidate.relative_to(root).parts
    if inside and inside[0] in ENGINE_FOLDERS:
        raise ActionFailed(
            f"'{name}' is in the engine's own {inside[0]}/ folder; tasks may not touch it",
            kind="path",
            retryable=False,
        )
    return candidate


def resolve_input(workspace: Workspace, name: str) -> Path:
    """Like `resolve_in_workspace`, but ``package:FILE`` names a data file shipped with
    workflow_cli (read-only samples the built-in templates use by default)."""
    if isinstance(name, str) and name.startswith(PACKAGE_PREFIX):
        file_name = name[len(PACKAGE_PREFIX) :]
        if not file_name or "/" in file_name or "\\" in file_name or file_name.startswith("."):
            raise ActionFailed(
                f"'{name}' is not a packaged data file", kind="path", retryable=False
            )
        path = Path(str(resources.files("workflow_cli") / "data" / file_name))
        if not path.is_file():
            raise ActionFailed(f"no packaged data file '{file_name}'", kind="path", retryable=False)
        return path
    return resolve_in_workspace(workspace, name)
