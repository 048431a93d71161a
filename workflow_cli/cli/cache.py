"""``cache``: the outputs kept for tasks with ``cache`` — list them, clear them."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json

app = typer.Typer(
    help="Task outputs kept for reuse (tasks with 'cache'): 'cache list', 'cache clear'.\n\n"
    "Examples:\n"
    "  workflow_cli cache list\n"
    "  workflow_cli cache clear --older-than 7d",
    no_args_is_help=True,
)


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
) -> None:
    """List the kept outputs, newest first: key, where each came from, when.

    Examples:
      workflow_cli cache list
      workflow_cli cache list --json"""
    from workflow_cli.engine.cache import list_entries

    app = app_context(ctx)
    entries = list_entries(app.workspace)
    if as_json:
        print_json([{**entry.origin(), "age_seconds": entry.age(app.clock())} for entry in entries])
        return
    if not entries:
        typer.echo("no cached outputs")
        return
    typer.echo("KEY\tFROM\tMADE")
    for entry in entries:
        typer.echo(f"{entry.key}\t{entry.instance}/{entry.task}\t{entry.created_at}")


@app.command("clear")
def clear_command(
    ctx: typer.Context,
    older_than: str = typer.Option(
        None, "--older-than", metavar="AGE", help="Only entries older than AGE (30m, 2h, 7d)."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"deleted": [keys]}.'),
) -> None:
    """Delete kept outputs (all of them, or those older than --older-than); the next run
    of their tasks runs them again.

    Examples:
      workflow_cli cache clear
      workflow_cli cache clear --older-than 7d"""
    from workflow_cli.engine.cache import clear
    from workflow_cli.monitor.alerts import parse_since

    app = app_context(ctx)
    before = None if older_than is None else parse_since(older_than, app.clock(), "--older-than")
    gone = clear(app.workspace, before=before)
    if as_json:
        print_json({"deleted": [entry.key for entry in gone]})
    else:
        typer.echo(f"deleted {len(gone)} cached output(s)")
