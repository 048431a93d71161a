"""The application context built once per command and handed to it."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    home: Path
    clock: Clock = utc_now
    utc: bool = False  # show times in UTC rather than local time

    @property
    def workspace(self) -> Workspace:
        return Workspace.at(self.home)

    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        obj = AppContext(Path(os.environ.get("WORKFLOW_HOME") or Path.cwd()))
    return obj


def print_json(value: Any) -> None:
    """JSON on stdout: indented for a person at a terminal, compact (and several times
    faster to produce) for a program reading it."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")
