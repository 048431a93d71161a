"""``tick``: do once what is due now — timers of waiting gates, and schedule windows."""

from __future__ import annotations

from typing import Any

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import ExitCode


def tick_command(
    ctx: typer.Context,
    resume: bool = typer.Option(
        False, "--resume", help="Then run the instances whose gate a deadline decided."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fire every due timer (approval deadlines, escalations, reminders, event-wait
    timeouts) of every instance of the workspace, and every schedule window that is
    due (schedules: in workflow_cli.yaml), once; record when each was due and when it
    fired. Made for cron; an instance a runner is executing is left to its runner; two
    ticks at once never fire a window twice. Each schedule firing creates an instance
    and starts it in the background. An instance whose gate a deadline decided (or
    whose event wait timed out) goes on with 'workflow_cli resume ID' (or at once with
    --resume). Exit 2 when a schedule cannot be read or a firing failed (the others
    fire all the same).

    Examples:

    \b
      workflow_cli tick
      workflow_cli tick --json
      workflow_cli tick --resume
      * * * * *  cd /path/to/workspace && workflow_cli tick   (a crontab line)
    """
    from workflow_cli.cli.approve import print_timers, resume_decided
    from workflow_cli.engine.schedules import run_due_schedules
    from workflow_cli.engine.timers import fire_in_workspace

    app = app_context(ctx)
    report = fire_in_workspace(app.workspace, app.clock)
    resumed = resume_decided(app, report.to_resume) if resume else {}
    schedules = run_due_schedules(app.workspace, app.clock(), clock=app.clock)
    failed = [f for f in schedules.firings if f.outcome == "failed"]
    if as_json:
        value: dict[str, Any] = report.as_dict()
        if resume:
            value["resumed"] = resumed
        value["firings"] = [firing.as_dict() for firing in schedules.firings]
        value["problems"] = [str(problem) for problem in schedules.problems]
        print_json(value)
    else:
        print_timers(report, resumed)
        for firing in schedules.firings:
            instance = f" {firing.instance}" if firing.instance else ""
            reason = f" ({firing.reason})" if firing.reason else ""
            typer.echo(f"{firing.schedule} {firing.window} {firing.outcome}{instance}{reason}")
        for problem in schedules.problems:
            typer.echo(f"error: {problem}", err=True)
    if schedules.problems or failed:
        raise typer.Exit(int(ExitCode.BAD_INPUT))
