"""``tick``: do once what is due now — fire the schedules whose windows have come."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import ExitCode


def tick_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the firings and problems as JSON."),
) -> None:
    """Fire every schedule window that is due (schedules: in workflow_cli.yaml), once:
    each firing creates an instance and starts it in the background. Made to be run
    every minute by the system's cron; two ticks at once never fire a window twice.
    Exit 2 when a schedule cannot be read or a firing failed (the others fire all the
    same).

    Examples:
      workflow_cli tick
      workflow_cli tick --json
      * * * * *  cd /path/to/workspace && workflow_cli tick >> schedules/tick.log 2>&1"""
    from workflow_cli.engine.schedules import run_due_schedules

    app = app_context(ctx)
    report = run_due_schedules(app.workspace, app.clock(), clock=app.clock)
    failed = [f for f in report.firings if f.outcome == "failed"]
    if as_json:
        print_json(
            {
                "firings": [firing.as_dict() for firing in report.firings],
                "problems": [str(problem) for problem in report.problems],
            }
        )
    else:
        for firing in report.firings:
            instance = f" {firing.instance}" if firing.instance else ""
            reason = f" ({firing.reason})" if firing.reason else ""
            typer.echo(f"{firing.schedule} {firing.window} {firing.outcome}{instance}{reason}")
        for problem in report.problems:
            typer.echo(f"error: {problem}", err=True)
    if report.problems or failed:
        raise typer.Exit(int(ExitCode.BAD_INPUT))
