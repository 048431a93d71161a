"""Definitions known to meet their JSON Schema, kept in the workspace between commands.

Checking a definition against its schema needs jsonschema, whose import is a third of a
short command's time. A workspace keeps the digests of the documents (with the schema
they were checked against) found to meet it in ``instances/.schema-checked``, one per
line, so running the same workflow again skips the check. Only passes are kept; a
changed document or schema has another digest. The file is a cache: deleted, damaged
or unwritable, every document is checked.
"""

from __future__ import annotations

import contextlib
import os
import re

from workflow_cli.store.workspace import Workspace

MEMORY_FILE = ".schema-checked"  # in the instances folder
_KEEP = 2_000  # digests; past that the file starts again
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class SchemaMemory:
    """The schema passes of one workspace (see `definition.validation.SchemaMemory`)."""

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        self._path = workspace.instances_dir / MEMORY_FILE
        self._known: set[str] | None = None

    def _read(self) -> set[str]:
        if self._known is None:
            try:
                lines = self._path.read_text(encoding="ascii").splitlines()
            except (OSError, ValueError):
                lines = []
            self._known = {line for line in lines if _DIGEST.match(line)}
        return self._known

    def known(self, key: str) -> bool:
        return key in self._read()

    def remember(self, key: str) -> None:
        known = self._read()
        if key in known or not _DIGEST.match(key):
            return
        known.add(key)
        # One short line appended in one write: writers side by side never tear a line.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        if len(known) > _KEEP:
            flags |= os.O_TRUNC
            known.clear()
            known.add(key)
        with contextlib.suppress(OSError):
            self._workspace.private_folder(self._workspace.instances_dir)
            fd = os.open(self._path, flags, 0o600)
            try:
                os.write(fd, f"{key}\n".encode("ascii"))
            finally:
                os.close(fd)
