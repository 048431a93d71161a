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
    from workflow_cli.engine.approvals import record_decision

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    task_id, state = record_decision(
        app.workspace,
        instance_id,
        task,
        decision=decision,
        by=by,
        comment=comment,
        clock=app.clock,
    )
    if as_json:
        print_json(
            {
                "id": instance_id,
                "task": task_id,
                "decision": decision,
                "by": by,
                "state": state["state"],
            }
        )
        return
    typer.echo(f"{instance_id}: {task_id} {decision} by {by}")
    if state.get("runner") is None:
        typer.echo(f"  go on with: workflow_cli resume {instance_id}")


def approve_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(None, help="The waiting gate (needed when several wait)."),
    by: str = typer.Option(..., "--as", help="Who approves; must be one of the gate's approvers."),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Approve a waiting approval gate. A running runner picks the decision up; otherwise
    go on with 'workflow_cli resume ID'.

    Examples:
      workflow_cli approve approval_chain-20261203-0930 --as ann
      workflow_cli approve approval_chain-20261203-0930 level1_approval --as ann --comment ok"""
    _decide(ctx, instance, task, by, comment, "approved", as_json)


def reject_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(None, help="The waiting gate (needed when several wait)."),
    by: str = typer.Option(..., "--as", help="Who rejects; must be one of the gate's approvers."),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reject a waiting approval gate: on resume the gate fails (and is not retried).

    Examples:
      workflow_cli reject approval_chain-20261203-0930 --as bob --comment 'budget exceeded'"""
    _decide(ctx, instance, task, by, comment, "rejected", as_json)
