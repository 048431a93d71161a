"""The workspace folder: where templates, agents, instances, checkpoints and monitoring live."""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from pathlib import Path

from workflow_cli.errors import NotFoundError, UsageError, WorkspaceError
from workflow_cli.readonly import readonly_dataclass

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


@readonly_dataclass
class Workspace:
    """Paths of one workspace; nothing here touches the disk until asked."""

    root: Path

    @classmethod
    def at(cls, root: Path) -> Workspace:
        root = root.expanduser().resolve()
        if not root.is_dir():
            raise WorkspaceError(f"workspace folder does not exist: {root}")
        return cls(root)

    @property
    def instances_dir(self) -> Path:
        return self.root / "instances"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def monitoring_dir(self) -> Path:
        return self.root / "monitoring"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def agents_file(self) -> Path:
        return self.root / "agents.yaml"

    def private_folder(self, path: Path) -> Path:
        """Make `path` (inside the workspace) and the folders above it up to the workspace,
        each readable by its owner only; `path`."""
        missing = []
        for folder in (path, *path.parents):
            if folder == self.root or folder.is_dir():
                break
            missing.append(folder)
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
        return path

    def instance_dir(self, instance_id: str) -> Path:
        """The folder of an instance; refused when it is a link that leads out of the
        workspace (nothing is read or written through it)."""
        check_instance_id(instance_id)
        path = self.instances_dir / instance_id
        if path.is_symlink():
            target, root = path.resolve(), self.root.resolve()
            if target != root and root not in target.parents:
                raise WorkspaceError(
                    f"{path} is a link to {target}, outside the workspace; refused"
                )
        return path

    def instance_ids(self) -> list[str]:
        """Every instance id in the workspace, sorted."""
        if not self.instances_dir.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.instances_dir)
            if entry.is_dir() and _ID_RE.match(entry.name) and not entry.name.startswith(".")
        )

    def resolve_instance_id(self, given: str) -> str:
        """The id of the one instance that `given` names exactly or as a unique prefix."""
        check_instance_id(given)
        if (self.instances_dir / given / "events.jsonl").is_file():
            return given
        matches = [i for i in self.instance_ids() if i.startswith(given)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFoundError(f"no instance '{given}' in {self.instances_dir}")
        shown = ", ".join(matches[:5]) + (" …" if len(matches) > 5 else "")
        raise UsageError(f"'{given}' names {len(matches)} instances ({shown}); give more of the id")


def check_instance_id(instance_id: str) -> None:
    """Refuse ids that could name a path outside `instances/`."""
    if not _ID_RE.match(instance_id) or ".." in instance_id:
        raise UsageError(
            f"'{instance_id}' is not an instance id (letters, digits, '_', '-', '.' only)"
        )


def new_instance_id(template: str, now: datetime) -> str:
    """A readable id: template name, UTC time, and a short random suffix."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", template).strip("-")[:60] or "workflow"
    return f"{stem}-{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
