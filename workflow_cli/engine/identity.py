"""Who a person acts as: the workspace's ``approvals`` settings (identity rule, admins,
groups), the name a person decides or signals as (`acting_as`), and who asks for a new
instance (`requester_of`). Apart from the approval gates (`engine.approvals`), so that
creating an instance does not load them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from workflow_cli.errors import UsageError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.config import config_block
from workflow_cli.store.workspace import Workspace


def who(by: str | None) -> str:
    """Who does something, for the journal (``--as``): the name given, else the user's."""
    if by is not None and not by.strip():
        raise UsageError("--as needs a name")
    if by:
        return by
    import getpass

    return getpass.getuser()


@readonly_dataclass
class ApprovalSettings:
    """The workspace's ``approvals`` block: identity rule, admins, groups."""

    identity: str = "any"  # "os": a person decides only as the OS user
    admins: frozenset[str] = frozenset()
    groups: Mapping[str, list[str]] = field(default_factory=dict)


def approval_settings(workspace: Workspace) -> ApprovalSettings:
    block = config_block(workspace, "approvals")
    if block is None:
        return ApprovalSettings()
    where = "workflow_cli.yaml: approvals"
    if not isinstance(block, dict):
        raise UsageError(f"{where} must be a mapping")
    identity = block.get("identity", "any")
    if identity not in ("any", "os"):
        raise UsageError(f"{where}.identity must be 'os' or 'any', not {identity!r}")
    admins = block.get("admins") or []
    groups = block.get("groups") or {}
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        raise UsageError(f"{where}.admins must be a list of names")
    if not isinstance(groups, dict) or not all(
        isinstance(m, list) and all(isinstance(n, str) for n in m) for m in groups.values()
    ):
        raise UsageError(f"{where}.groups must map each group to a list of names")
    return ApprovalSettings(identity, frozenset(admins), groups)


def acting_as(by: str | None, os_user: str, settings: ApprovalSettings) -> str:
    """Who a person acts as: `by` (default the OS user), refused under ``identity: os``
    when it is not the OS user (unless the OS user is an admin)."""
    name = os_user if by is None else by.strip()
    if not name:
        raise UsageError("--as needs a name")
    if settings.identity == "os" and name != os_user and os_user not in settings.admins:
        raise UsageError(
            f"this workspace decides by OS identity (approvals.identity: os): you are "
            f"'{os_user}' and may not act as '{name}'"
        )
    return name


def requester_of(workspace: Workspace, given: str | None, os_user: str) -> str | None:
    """Who asks for a new instance (``create --as``). Under ``identity: os`` it is the OS
    user, and naming anyone else is refused (admins excepted); otherwise what was given."""
    settings = approval_settings(workspace)
    if settings.identity == "os":
        return acting_as(given, os_user, settings)
    return None if given is None else acting_as(given, os_user, settings)
