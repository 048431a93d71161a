"""``migrate``: definitions, templates and instances carried to the current schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from workflow_cli.engine.migration import Migration


def migrate_command(
    ctx: typer.Context,
    target: str = typer.Argument(
        None,
        help="'status', a definition or template file, or a workspace template's name.",
        show_default=False,
    ),
    instance: str = typer.Option(None, "--instance", help="Migrate this instance's definition."),
    undo: bool = typer.Option(False, "--undo", help="With --instance: undo its last migration."),
    every: bool = typer.Option(
        False, "--all", help="Migrate every workspace file and instance not on the current one."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the diff; change nothing."),
    by: str = typer.Option(None, "--as", help="Who migrates, for the journal (instances)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Carry definitions to the current schema version (2.0.0) and report versions.

    Schema versions: 1.0.0 basic tasks; 1.1.0 execution modes; 1.2.0 conditions; 2.0.0
    checkpoints and retries. An older definition is also accepted as it is (migrated in
    memory, with a notice); this command rewrites it. A file is rewritten atomically in
    its own format (YAML stays YAML; a YAML file with comments is refused, as a rewrite
    would lose them). An instance's definition is migrated through a journaled event,
    the one before kept beside it, so that --undo can put it back. An instance being
    run is refused (exit 4).

    Examples:

      workflow_cli migrate status

      workflow_cli migrate old_pipeline.yaml --dry-run

      workflow_cli migrate my_template

      workflow_cli migrate --instance old_pipeline-20260101-120000-abc123

      workflow_cli migrate --instance old_pipeline-20260101-120000-abc123 --undo

      workflow_cli migrate --all --dry-run"""
    from workflow_cli.engine import migration
    from workflow_cli.engine.identity import who

    app = app_context(ctx)
    if sum(1 for given in (target, instance, every) if given) != 1:
        raise UsageError("give one of: status, a file or template, --instance ID, --all")
    if undo and not instance:
        raise UsageError("--undo goes with --instance")
    if undo and dry_run:
        raise UsageError("--undo and --dry-run do not go together")
    if target == "status":
        _print_status(migration.migration_status(app.workspace), as_json)
        return
    if target is not None:
        done = [migration.migrate_file(app.workspace, target, dry_run=dry_run)]
        failed: list[str] = []
    elif instance is not None:
        instance_id = app.workspace.resolve_instance_id(instance)
        if undo:
            step = migration.undo_instance_migration
            done = [step(app.workspace, instance_id, by=who(by), clock=app.clock)]
        else:
            done = [
                migration.migrate_instance(
                    app.workspace, instance_id, by=who(by), clock=app.clock, dry_run=dry_run
                )
            ]
        failed = []
    else:
        done, failed = migration.migrate_all(
            app.workspace, by=who(by), clock=app.clock, dry_run=dry_run
        )
    _print_migrations(done, failed, dry_run=dry_run, undo=undo, as_json=as_json)
    if failed:
        raise typer.Exit(int(ExitCode.BAD_INPUT))


def _print_migrations(
    done: list[Migration], failed: list[str], *, dry_run: bool, undo: bool, as_json: bool
) -> None:
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "migrations": [
                    {
                        "target": m.target,
                        "kind": m.kind,
                        "from_version": m.from_version,
                        "to_version": m.to_version,
                        "written": m.written,
                        "diff": m.diff,
                    }
                    for m in done
                ],
                "failed": failed,
            }
        )
        return
    if not done and not failed:
        typer.echo("nothing to migrate: everything is on the current schema version")
    for m in done:
        if not m.changed:
            typer.echo(f"{m.target}: on schema {m.from_version} already; nothing to migrate")
            continue
        if m.diff:
            typer.echo(m.diff, nl=not m.diff.endswith("\n"))
        verb = "undone" if undo else "migrated"
        if m.written:
            typer.echo(f"{m.target}: {verb}, schema {m.from_version} -> {m.to_version}")
        else:
            typer.echo(
                f"{m.target}: would migrate schema {m.from_version} -> {m.to_version} (dry run)"
            )
    for line in failed:
        typer.echo(f"not migrated: {line}", err=True)


def _print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    current = status["current"]
    typer.echo(f"current schema version: {current} (known: {', '.join(status['versions'])})")
    for group, label in (("templates", "name"), ("definitions", "path"), ("instances", "id")):
        entries = status[group]
        counts = status["counts"].get(group, {})
        summary = ", ".join(f"{n} on {v}" for v, n in sorted(counts.items())) or "none"
        typer.echo(f"{group}: {summary}")
        for entry in entries:
            if entry["version"] != current:
                typer.echo(f"  {entry[label]}: {entry['version']}")
