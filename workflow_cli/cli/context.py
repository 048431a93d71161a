"""The application context built once per command and handed to it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.errors import UsageError
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console


# For tests and rehearsals only: an ISO 8601 time that every command takes as "now"
# (its clock stands still there), e.g. to see which schedule windows a tick would fire.
NOW_VARIABLE = "WORKFLOW_CLI_NOW"


def utc_now() -> datetime:
    return datetime.now(UTC)


def clock_from(environ: Mapping[str, str]) -> Clock:
    """The commands' clock: the real one, or the time pinned by WORKFLOW_CLI_NOW."""
    pinned = environ.get(NOW_VARIABLE)
    if not pinned:
        return utc_now
    try:
        moment = datetime.fromisoformat(pinned)
    except ValueError:
        raise UsageError(
            f"{NOW_VARIABLE}={pinned!r} is not an ISO 8601 time (e.g. 2026-01-31T09:00:00Z)"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return lambda: moment


@dataclass
class AppContext:
    home: Path
    clock: Clock = utc_now

    @property
    def workspace(self) -> Workspace:
        return Workspace.at(self.home)

    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        home = Path(os.environ.get("WORKFLOW_HOME") or Path.cwd())
        obj = AppContext(home, clock_from(os.environ))
    return obj


def print_json(value: Any) -> None:
    """JSON on stdout: indented for a person at a terminal, compact (and several times
    faster to produce) for a program reading it."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")
