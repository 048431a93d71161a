"""``checkpoints``: list, show, compare and clean up an instance's checkpoints."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import typer
from typer.core import TyperGroup

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import UsageError

INSTANCE_HELP = "Instance id (or a unique prefix)."
# A day count beyond this reaches back before year 1 (or just means "all of them").
MAX_AGE_DAYS = 100_000


class _ListByDefault(TyperGroup):
    """``checkpoints ID`` is short for ``checkpoints list ID``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ListByDefault,
    help="An instance's checkpoints: 'checkpoints ID' lists them (newest first); "
    "'show ID CP', 'diff ID A B' and 'cleanup' do the rest.\n\n"
    "Examples:\n"
    "  workflow_cli checkpoints sequential_pipeline-20261203-1015\n"
    "  workflow_cli checkpoints diff sequential_pipeline-20261203-1015 1 3",
    no_args_is_help=True,
)


@app.command("list")
def list_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List an instance's checkpoints, newest first; damaged ones are shown as such.

    Examples:
      workflow_cli checkpoints sequential_pipeline-20261203-1015
      workflow_cli checkpoints list sequential_pipeline-20261203-1015 --json"""
    from workflow_cli.store.checkpoints import list_checkpoints

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    infos = list_checkpoints(app.workspace, instance_id)
    if as_json:
        print_json([info.as_dict() for info in infos])
        return
    if not infos:
        typer.echo(f"{instance_id} has no checkpoints")
        return
    from workflow_cli.cli.rows import Column, print_rows
    from workflow_cli.formats import format_time

    rows: list[list[object]] = []
    for info in infos:
        if info.valid:
            rows.append([info.id, format_time(info.time, utc=app.utc), info.seq, info.label or ""])
        else:
            rows.append([info.id, "", "", f"DAMAGED: {info.problem}"])
    columns = [Column("checkpoint", whole=True), Column("time"), Column("event"), Column("label")]
    print_rows(columns, rows)


@app.command("show")
def show_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    checkpoint: str = typer.Argument(..., help="Checkpoint id or number."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole checkpoint as JSON."),
) -> None:
    """Show one checkpoint: what it is and the state of every task in it.

    Examples:
      workflow_cli checkpoints show sequential_pipeline-20261203-1015 2"""
    from workflow_cli.store.checkpoints import load_checkpoint

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    document = load_checkpoint(app.workspace, instance_id, checkpoint)
    if as_json:
        print_json(document)
        return
    saved = document["state"]
    label = f" ({document['label']})" if document["label"] else ""
    typer.echo(f"checkpoint {document['id']} of {instance_id}{label}")
    typer.echo(f"  kind {document['kind']}, {document['time']}, journal event {document['seq']}")
    typer.echo(f"  instance {saved.get('state')}")
    for task_id, task in saved["tasks"].items():
        typer.echo(f"  {task_id:<24} {task['state']:<10} attempts {task.get('attempts', 0)}")


@app.command("diff")
def diff_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    first: str = typer.Argument(..., help="The older checkpoint."),
    second: str = typer.Argument(..., help="The newer checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show which tasks differ between two checkpoints (state, attempts or output).

    Examples:
      workflow_cli checkpoints diff sequential_pipeline-20261203-1015 1 3"""
    from workflow_cli.store.checkpoints import load_checkpoint

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    a = load_checkpoint(app.workspace, instance_id, first)
    b = load_checkpoint(app.workspace, instance_id, second)
    differences = []
    for task_id, old in a["state"]["tasks"].items():
        new = b["state"]["tasks"].get(task_id, {})
        changed = [k for k in ("state", "attempts", "output") if old.get(k) != new.get(k)]
        if changed:
            differences.append(
                {
                    "task": task_id,
                    "from": old.get("state"),
                    "to": new.get("state"),
                    "changed": changed,
                }
            )
    if as_json:
        print_json({"from": a["id"], "to": b["id"], "tasks": differences})
        return
    typer.echo(f"{a['id']} -> {b['id']}: {len(differences)} task(s) differ")
    for item in differences:
        typer.echo(
            f"  {item['task']:<24} {item['from']} -> {item['to']}  ({', '.join(item['changed'])})"
        )


@app.command("cleanup")
def cleanup_command(
    ctx: typer.Context,
    instance: str = typer.Argument(None, help=INSTANCE_HELP + " Omit with --all."),
    every: bool = typer.Option(False, "--all", help="Every instance's checkpoints."),
    max_age_days: float = typer.Option(
        None, "--max-age-days", min=0, help="Delete checkpoints older than this."
    ),
    max_count: int = typer.Option(
        None, "--max-count", min=0, help="Keep at most this many per instance (the newest)."
    ),
    keep_milestone: bool = typer.Option(
        False, "--keep-milestone", help="Never delete milestone checkpoints."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would go."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete old checkpoints and say how many went. Damaged ones count like the rest.

    Examples:
      workflow_cli checkpoints cleanup sequential_pipeline-20261203-1015 --max-count 5
      workflow_cli checkpoints cleanup --all --max-age-days 30 --dry-run"""
    from workflow_cli.store.checkpoints import delete_checkpoints, list_checkpoints

    app = app_context(ctx)
    if every == (instance is not None):
        raise UsageError("name one instance, or give --all")
    if max_age_days is None and max_count is None:
        raise UsageError("say what to delete: --max-age-days N and/or --max-count N")
    workspace = app.workspace
    ids = workspace.instance_ids() if every else [workspace.resolve_instance_id(instance)]
    cutoff = None
    if max_age_days is not None:
        if not math.isfinite(max_age_days) or max_age_days > MAX_AGE_DAYS:
            raise UsageError(f"--max-age-days must be a number of days up to {MAX_AGE_DAYS:,}")
        cutoff = (app.clock() - timedelta(days=max_age_days)).isoformat(timespec="milliseconds")
    doomed = []
    for instance_id in ids:
        infos = list_checkpoints(workspace, instance_id)
        for index, info in enumerate(infos):
            if keep_milestone and info.kind == "milestone":
                continue
            too_many = max_count is not None and index >= max_count
            too_old = cutoff is not None and (info.time is None or info.time < cutoff)
            if too_many or too_old:
                doomed.append(info)
    deleted = len(doomed) if dry_run else delete_checkpoints(doomed)
    if as_json:
        print_json({"deleted": deleted, "dry_run": dry_run, "checkpoints": [i.id for i in doomed]})
        return
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {deleted} checkpoint(s) of {len(ids)} instance(s)")
