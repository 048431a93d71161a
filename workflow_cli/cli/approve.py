"""``approve`` and ``reject``: decide a waiting approval gate, from any terminal."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json


def _decide(
    ctx: typer.Context,
    instance: str,
    task: str | None,
    by: str,
    comment: str | None,
    decision: str,
    as_json: bool,
) -> None:
    api = app_context(ctx).api
    if decision == "approved":
        result = api.approve(instance, task, by=by, comment=comment)
    else:
        result = api.reject(instance, task, by=by, comment=comment)
    if as_json:
        print_json(
            {
                "id": result.id,
                "task": result.task,
                "decision": result.decision,
                "by": result.by,
                "state": result.state,
            }
        )
        return
    typer.echo(f"{result.id}: {result.task} {decision} by {by}")
    if not result.runner_alive:
        typer.echo(f"  go on with: workflow_cli resume {result.id}")


def approve_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(None, help="The waiting gate (needed when several wait)."),
    by: str = typer.Option(..., "--as", help="Who approves; must be one of the gate's approvers."),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Approve a waiting approval gate. A running runner picks the decision up; otherwise
    go on with 'workflow_cli resume ID'."""
    _decide(ctx, instance, task, by, comment, "approved", as_json)


def reject_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(None, help="The waiting gate (needed when several wait)."),
    by: str = typer.Option(..., "--as", help="Who rejects; must be one of the gate's approvers."),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reject a waiting approval gate: on resume the gate fails (and is not retried)."""
    _decide(ctx, instance, task, by, comment, "rejected", as_json)
