"""``tokens``: who may call ``workflow_cli serve``, and in which role."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json

app = typer.Typer(
    help="API tokens for 'workflow_cli serve': 'tokens add', 'tokens list', 'tokens revoke'.\n\n"
    "Examples:\n"
    "  workflow_cli tokens add ci --role operator\n"
    "  workflow_cli tokens revoke ci",
    no_args_is_help=True,
)


@app.command("add")
def add_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Who the token is for; approvals are made as NAME."),
    role: str = typer.Option(
        ..., "--role", help="viewer, operator, approver or admin (see 'workflow_cli serve')."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"name", "role", "token"}.'),
) -> None:
    """Make a token and print it, once: only its hash is kept (server/tokens.json,
    readable by its owner only). Send it as 'Authorization: Bearer TOKEN'.

    Roles: viewer reads; operator also creates, starts, resumes, stops and cancels;
    approver also approves and rejects (as NAME); admin does everything.

    Examples:

    \b
      workflow_cli tokens add ci --role operator
      workflow_cli tokens add team_lead --role approver --json"""
    from workflow_cli.store.tokens import add_token

    app = app_context(ctx)
    info, token = add_token(app.workspace, name, role, app.clock())
    if as_json:
        print_json({"name": info.name, "role": info.role, "token": token})
        return
    typer.echo(token)
    typer.echo(
        f"token '{info.name}' ({info.role}); it is shown only now, keep it somewhere safe",
        err=True,
    )


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the tokens: name, role and when each was made (never the tokens).

    Examples:

    \b
      workflow_cli tokens list
      workflow_cli tokens list --json"""
    from workflow_cli.store.tokens import list_tokens

    found = list_tokens(app_context(ctx).workspace)
    if as_json:
        print_json([{"name": t.name, "role": t.role, "created_at": t.created_at} for t in found])
        return
    if not found:
        typer.echo("no tokens; make one with: workflow_cli tokens add NAME --role ROLE")
    for token in found:
        typer.echo(f"{token.name}\t{token.role}\t{token.created_at}")


@app.command("revoke")
def revoke_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The token's name."),
) -> None:
    """Revoke a token: a running server refuses it from its next request on.

    Examples:

    \b
      workflow_cli tokens revoke ci"""
    from workflow_cli.store.tokens import revoke_token

    revoke_token(app_context(ctx).workspace, name)
    typer.echo(f"token '{name}' revoked")
