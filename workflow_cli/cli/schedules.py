"""``schedules``: each schedule with its next and last firing."""

from __future__ import annotations

from typing import Any

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import ExitCode


def schedules_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the schedules as JSON."),
) -> None:
    """List the schedules of workflow_cli.yaml: cron, timezone, next and last firing,
    instances going and queued. A schedule with a bad cron expression, timezone,
    template or parameter is shown with its error, and the exit code is 2.

    Examples:
      workflow_cli schedules
      workflow_cli schedules --json"""
    from workflow_cli.engine.schedules import describe_schedules

    app = app_context(ctx)
    views = describe_schedules(app.workspace, app.clock())
    if as_json:
        print_json(views)
    elif not views:
        typer.echo("no schedules (add schedules: to workflow_cli.yaml)")
    else:
        for view in views:
            _print(view)
    if any(view["error"] for view in views):
        raise typer.Exit(int(ExitCode.BAD_INPUT))


def _print(view: dict[str, Any]) -> None:
    if view.get("cron") is None:
        typer.echo(f"error: {view['error']}", err=True)
        return
    typer.echo(
        f"{view['name']}: {view['template']}  cron '{view['cron']}' ({view['timezone']}), "
        f"overlap {view['overlap']}, catchup {view['catchup']}"
    )
    if view["error"]:
        typer.echo(f"  error: {view['error']}", err=True)
    else:
        typer.echo(f"  next:  {view['next']}")
    last = view.get("last")
    if last:
        instance = f" {last['instance']}" if last.get("instance") else ""
        reason = f" ({last['reason']})" if last.get("reason") else ""
        typer.echo(f"  last:  {last['window']} {last['outcome']}{instance}{reason}")
    else:
        typer.echo("  last:  never fired")
    counts = view.get("counts") or {}
    if counts:
        typer.echo("  so far: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    if view["active"] or view["queue"]:
        typer.echo(f"  going: {', '.join(view['active']) or '-'}; queued: {len(view['queue'])}")
