"""``signal``: send an event to an instance, for its ``wait_for_event`` tasks."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, json_option, print_json


def signal_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    event: str = typer.Argument(..., help="The event's name."),
    data: str = typer.Option(None, "--data", help="The event's data: JSON, or @FILE."),
    by: str = typer.Option(None, "--as", help="Who sends it (default: the OS user)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Send EVENT (with --data) to an instance. The first task waiting for it
    (wait_for_event with that event, whose filter holds) takes it, and its data becomes
    that task's output: a running runner goes on at once; otherwise go on with
    'workflow_cli resume ID'. When no task waits for it yet, the signal is kept and the
    first wait that begins later and matches takes it (once). Recorded with who sent it.
    Refused (exit 2, nothing recorded): data that is not JSON, a finished instance.

    Examples:

    \b
      workflow_cli signal ID payment.received --data '{"order_id": 42}'
      workflow_cli signal ID payment.received --data @payment.json --as billing
      workflow_cli signal ID go --json
    """
    import getpass

    from workflow_cli.engine.approvals import acting_as, approval_settings
    from workflow_cli.engine.event_waits import send_signal

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    value = None if data is None else json_option(data, "--data")
    name = acting_as(by, getpass.getuser(), approval_settings(app.workspace))
    result = send_signal(app.workspace, instance_id, event, value, by=name, clock=app.clock)
    if as_json:
        print_json(result.as_dict())
        return
    typer.echo(f"{instance_id}: {result.signal} ({event}) sent by {name}")
    if result.consumed_by is None:
        typer.echo("  no task waits for it now: kept for the first wait that matches")
        return
    typer.echo(f"  taken by {result.consumed_by}")
    if not result.runner_alive:
        typer.echo(f"  go on with: workflow_cli resume {instance_id}")
