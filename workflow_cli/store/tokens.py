"""API tokens: who may call the server, and in which role.

``server/tokens.json`` (readable by its owner only) maps each token's name to its role,
its creation time and the SHA-256 of the token; the token itself is shown once, when it
is made, and never stored. Tokens are 256 random bits, so a plain hash is enough to make
a stolen file useless.

Roles, each allowed what the ones before it in its line are:

- ``viewer``: read (instances, status, events, templates, approvals, health);
- ``operator``: viewer, and create, start, resume, stop and cancel instances;
- ``approver``: viewer, and approve or reject approval gates (as the token's name);
- ``admin``: everything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from workflow_cli.errors import NotFoundError, UsageError, WorkspaceError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.files import exclusive_lock, read_bytes, write_json_atomic
from workflow_cli.store.workspace import Workspace

ROLES = ("viewer", "operator", "approver", "admin")
# What each kind of request needs: the roles allowed it.
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset(ROLES),
    "operate": frozenset({"operator", "admin"}),
    "decide": frozenset({"approver", "admin"}),
}
TOKEN_PREFIX = "wfc_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@readonly_dataclass
class TokenInfo:
    """A token as stored (its hash, never the token)."""

    name: str
    role: str
    created_at: str

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


def server_folder(workspace: Workspace) -> Path:
    return workspace.root / "server"


def tokens_path(workspace: Workspace) -> Path:
    return server_folder(workspace) / "tokens.json"


def add_token(workspace: Workspace, name: str, role: str, now: datetime) -> tuple[TokenInfo, str]:
    """Make a token for `name` in `role`; its record and the token (shown once)."""
    if not _NAME_RE.match(name):
        raise UsageError(
            f"'{name}' is not a token name (up to 64 letters, digits, '_', '.', '@', '-')"
        )
    if role not in ROLES:
        raise UsageError(f"unknown role '{role}' (one of: {', '.join(ROLES)})")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    info = TokenInfo(name, role, now.isoformat(timespec="seconds"))
    with exclusive_lock(_lock_path(workspace)):
        stored = _read(workspace)
        if name in stored:
            raise UsageError(f"a token named '{name}' exists; revoke it first")
        stored[name] = {"role": role, "created_at": info.created_at, "sha256": _digest(token)}
        _write(workspace, stored)
    return info, token


def revoke_token(workspace: Workspace, name: str) -> None:
    """Remove the token named `name`; a server stops taking it at its next request."""
    with exclusive_lock(_lock_path(workspace)):
        stored = _read(workspace)
        if name not in stored:
            raise NotFoundError(f"no token named '{name}'")
        del stored[name]
        _write(workspace, stored)


def list_tokens(workspace: Workspace) -> list[TokenInfo]:
    """Every token's name, role and creation time, by name."""
    return [
        TokenInfo(name, entry["role"], entry["created_at"])
        for name, entry in sorted(_read(workspace).items())
    ]


def find_token(workspace: Workspace, presented: str) -> TokenInfo | None:
    """The token `presented` is, or None when it is none of the workspace's."""
    digest = _digest(presented)
    found = None
    for name, entry in _read(workspace).items():
        if hmac.compare_digest(str(entry.get("sha256", "")), digest):
            found = TokenInfo(name, entry["role"], entry["created_at"])
    return found


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _lock_path(workspace: Workspace) -> Path:
    workspace.private_folder(server_folder(workspace))
    return server_folder(workspace) / "tokens.lock"


def _read(workspace: Workspace) -> dict[str, dict[str, Any]]:
    path = tokens_path(workspace)
    try:
        document = json.loads(read_bytes(path))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from exc
    tokens = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(tokens, dict) or not all(
        isinstance(e, dict) and e.get("role") in ROLES for e in tokens.values()
    ):
        raise WorkspaceError(f"{path} is not a tokens file this version can read")
    return tokens


def _write(workspace: Workspace, tokens: dict[str, dict[str, Any]]) -> None:
    workspace.private_folder(server_folder(workspace))
    write_json_atomic(tokens_path(workspace), {"version": 1, "tokens": tokens})
