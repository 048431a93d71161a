"""The application context built once per command and handed to it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from math import inf
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.readonly import mutable_dataclass
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from rich.console import Console

    from workflow_cli import api


def utc_now() -> datetime:
    return datetime.now(UTC)


# For tests only: pins the clock of every command. An ISO 8601 time (``2026-01-01T09:00:00
# +00:00``) fixes it; ``@FILE`` reads the time from FILE at each reading, so that a test
# can move the clock of a runner that is running in another process.
NOW_VARIABLE = "WORKFLOW_CLI_NOW"


def _parse_now(text: str, where: str) -> datetime:
    from workflow_cli.errors import UsageError

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{where} is not an ISO 8601 time: {text.strip()!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def json_option(given: str, option: str) -> Any:
    """An option's JSON value: `given` itself, or the JSON in file FILE for ``@FILE``."""
    from workflow_cli.errors import UsageError

    where = option
    if given.startswith("@"):
        path = Path(given[1:])
        from workflow_cli.errors import WorkspaceError
        from workflow_cli.store.files import read_bytes

        try:  # a regular file: a FIFO or a device is refused, not waited on
            given = read_bytes(path).decode("utf-8")
        except WorkspaceError as exc:
            raise UsageError(f"{option}: {exc.message}") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise UsageError(f"{option}: cannot read {path}: {reason}") from None
        where = str(path)
    from workflow_cli.definition.loader import loads_json

    try:
        return loads_json(given)
    except (ValueError, RecursionError) as exc:
        raise UsageError(
            f"{where} is not JSON ({exc}); a text is given quoted, e.g. '\"done\"'"
        ) from None


def check_seconds(option: str, value: float | None, *, finite: bool = False) -> None:
    """Refuse NaN seconds (it passes every range check Click makes), and with `finite`
    an endless number too (a value that is written down: JSON has neither)."""
    from workflow_cli.errors import UsageError

    if value is not None and (value != value or (finite and value in (inf, -inf))):
        raise UsageError(f"{option} must be a number of seconds, not {value}")


def clock_from_env(environ: Mapping[str, str]) -> Clock:
    """The commands' clock: the system's, unless WORKFLOW_CLI_NOW pins it (for tests)."""
    value = environ.get(NOW_VARIABLE)
    if not value:
        return utc_now
    if not value.startswith("@"):
        fixed = _parse_now(value, NOW_VARIABLE)
        return lambda: fixed
    path = Path(value[1:])

    def read() -> datetime:
        from workflow_cli.errors import UsageError

        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{NOW_VARIABLE}: cannot read {path}: {exc}") from None
        return _parse_now(text, str(path))

    read()  # a bad file fails at once
    return read


@mutable_dataclass
class AppContext:
    home: Path
    clock: Clock = utc_now
    utc: bool = False  # show times in UTC rather than local time

    @property
    def workspace(self) -> Workspace:
        return Workspace.at(self.home)

    @property
    def api(self) -> api.Workspace:
        """The Python API over this workspace, which the commands are layers over."""
        from workflow_cli.api import Workspace as ApiWorkspace

        return ApiWorkspace(self.home, clock=self.clock)

    def console(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True)


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        home = Path(os.environ.get("WORKFLOW_HOME") or Path.cwd())
        obj = AppContext(home, clock_from_env(os.environ))
    return obj


def print_json(value: Any) -> None:
    """JSON on stdout: indented for a person at a terminal, compact (and several times
    faster to produce) for a program reading it."""
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(value, indent=indent, ensure_ascii=False, default=str) + "\n")
