"""``failures``: the dead letters of the workspace — tasks and items that failed for good."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json


def failures_command(
    ctx: typer.Context,
    instance: str = typer.Option(
        None, "--instance", "-i", help="Only this instance (id or a unique prefix)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the failures as JSON."),
) -> None:
    """List the tasks (and items of for_each tasks) that failed for good after their
    retries, across the workspace, oldest first: where, when, after how many attempts,
    the last error, the parameters the last attempt was given, and the command that runs
    it again in its instance ('retry', then 'resume'). Cancelled instances are left out.

    Examples:
      workflow_cli failures
      workflow_cli failures --json
      workflow_cli failures --instance wf-20260101-000000-ab12cd"""
    from workflow_cli.monitor.failures import dead_letters

    app = app_context(ctx)
    letters = dead_letters(app.workspace, app.clock)
    if instance is not None:
        wanted = app.workspace.resolve_instance_id(instance)
        letters = [letter for letter in letters if letter.instance == wanted]
    if as_json:
        print_json([letter.as_dict() for letter in letters])
        return
    if not letters:
        typer.echo("no failures")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("instance", "task", "attempts", "failed at", "error", "retry with"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        where = letter.task if letter.item is None else f"{letter.task}[{letter.item}]"
        table.add_row(
            escape(letter.instance),
            escape(where),
            str(letter.attempts),
            escape(str(letter.failed_at or "")[:19].replace("T", " ")),
            escape(str(letter.error.get("message", ""))),
            escape(letter.retry),
        )
    app.console().print(table)
