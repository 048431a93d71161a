"""``events``: an instance's journal, readably, and (with --follow) as it grows."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import typer

from workflow_cli.cli.context import app_context, check_seconds
from workflow_cli.store.journal import Event

if TYPE_CHECKING:
    from workflow_cli.monitor.follow import Follower


def events_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new events until the run ends."
    ),
    interval: float = typer.Option(
        0.25, "--interval", min=0.02, max=10.0, help="Seconds between looks at the journal."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
) -> None:
    """Print an instance's journal, one line per event: sequence number, time and what
    happened (event types this version does not know are shown with their fields). With
    --follow, go on printing events as they are appended until the run ends (completed,
    failed, cancelled, waiting or paused) or its runner is found dead; an instance that
    is not running ends it at once. --json prints each event as a JSON line. Secret
    parameter values (password, token, api_key, …) are shown as ***.

    Examples:
      workflow_cli events sequential_pipeline-20261203-1015
      workflow_cli events sequential_pipeline-20261203-1015 --follow"""
    from workflow_cli.monitor.follow import Follower
    from workflow_cli.store.secrets import mask_event, mask_text, secret_values

    app = app_context(ctx)
    check_seconds("--interval", interval)
    instance_id = app.workspace.resolve_instance_id(instance)
    follower = Follower(app.workspace, instance_id, app.clock, from_start=True)
    known = secret_values(follower.state.get("params") or {})

    def write(event: Event) -> None:
        if as_json:
            line = json.dumps(mask_event(event, known), ensure_ascii=False, separators=(",", ":"))
        else:
            line = mask_text(event_line(event), known)
        sys.stdout.write(line + "\n")

    try:
        with stdout_closed_ok():
            _print_events(follower, follow, interval, write, as_json)
    except KeyboardInterrupt:  # Ctrl-C ends the watching, never the run
        typer.echo("stopped following; the run goes on", err=True)
    finally:
        follower.close()


def _print_events(
    follower: Follower,
    follow: bool,
    interval: float,
    write: Callable[[Event], None],
    as_json: bool,
) -> None:
    from workflow_cli.monitor.follow import follow as follow_journal

    for event in follower.initial:
        write(event)
    sys.stdout.flush()
    if not follow:
        return
    for update in follow_journal(follower, interval=interval):
        for event in update.events:
            write(event)
        sys.stdout.flush()
        if update.end == "runner_gone" and not as_json:
            typer.echo(
                f"the runner of {follower.instance_id} is gone (it died); "
                f"recover with: workflow_cli resume {follower.instance_id}",
                err=True,
            )


@contextlib.contextmanager
def stdout_closed_ok() -> Iterator[None]:
    """A reader that goes away (``| head``) ends the command quietly, not with an error."""
    try:
        yield
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at nothing so that is quiet too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def event_line(event: Event) -> str:
    """The readable line of one journal event: seq, date and time, what happened."""
    from workflow_cli.cli.progress import describe

    when = str(event.get("time", ""))
    return f"{event.get('seq', ''):>6}  {when[:10]} {when[11:23]}  {describe(event, every=True)}"
