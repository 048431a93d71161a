"""``delete`` and ``prune``: remove an instance, or the old ones, with their checkpoints,
logs and monitoring records."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import UsageError
from workflow_cli.store.state import INSTANCE_STATES


def delete_command(
    ctx: typer.Context,
    instances: list[str] = typer.Argument(
        ..., metavar="ID...", help="Instance ids (or unique prefixes)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print what was removed as JSON."),
) -> None:
    """Remove instances for good: the folder (journal, state, logs), checkpoints and
    health record of each. An instance whose runner is alive is refused (exit 4): stop
    or cancel it first.

    Examples:
      workflow_cli delete etl-20261203-101500-a1b2c3
      workflow_cli list --state failed --all | tail -n +2 | cut -f1 | xargs workflow_cli delete"""
    from workflow_cli.engine.control.removal import delete_instance
    from workflow_cli.formats import format_size

    app = app_context(ctx)
    ids = [app.workspace.resolve_instance_id(given) for given in instances]
    removed = [delete_instance(app.workspace, instance_id, app.clock) for instance_id in ids]
    if as_json:
        print_json({"deleted": [r.as_dict() for r in removed]})
        return
    for removal in removed:
        typer.echo(f"deleted {removal.instance_id} ({format_size(removal.size)})")


def prune_command(
    ctx: typer.Context,
    older_than: str = typer.Option(
        ...,
        "--older-than",
        metavar="AGE",
        help="Remove instances that ended more than AGE ago (30m, 12h, 7d, 2w).",
    ),
    states: list[str] = typer.Option(
        [],
        "--state",
        metavar="STATE",
        help="Only instances in these states (repeatable or comma-separated; "
        "default: completed, failed, cancelled).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would go."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove old instances with their checkpoints, logs and health records: those that
    ended (or, when not ended, last changed) more than --older-than ago. An instance
    whose runner is alive is never removed.

    Examples:
      workflow_cli prune --older-than 7d --dry-run
      workflow_cli prune --older-than 30d --state completed,failed
      workflow_cli prune --older-than 2h --state created"""
    from workflow_cli.engine.control.removal import PRUNED_BY_DEFAULT, plan_prune, prune
    from workflow_cli.formats import format_size
    from workflow_cli.monitor.alerts import parse_since

    wanted = {part.strip() for given in states for part in given.split(",") if part.strip()}
    for name in sorted(wanted):
        if name not in INSTANCE_STATES:
            raise UsageError(f"unknown state '{name}' (one of: {', '.join(INSTANCE_STATES)})")
    app = app_context(ctx)
    now = app.clock()
    before = parse_since(older_than, now, "--older-than")
    if before > now:
        raise UsageError(f"--older-than '{older_than}' is in the future")
    plan = plan_prune(app.workspace, app.clock, before=before, states=wanted or PRUNED_BY_DEFAULT)
    done = plan if dry_run else prune(app.workspace, app.clock, plan)
    freed = sum(r.size for r in done.removals)
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "removed": [r.as_dict() for r in done.removals],
                "passed_over": done.passed_over,
                "bytes": freed,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    for removal in done.removals:
        typer.echo(f"{verb} {removal.instance_id}\t{removal.state}\t{format_size(removal.size)}")
    for instance_id in done.passed_over:
        typer.echo(f"kept {instance_id}: its runner is alive", err=True)
    typer.echo(f"{verb} {len(done.removals)} instance(s), {format_size(freed)}")
