"""``report``: one instance as a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import typer

from workflow_cli.cli.context import app_context, print_json


def report_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    html: Path = typer.Option(
        ..., "--html", metavar="FILE", help="Write the page to FILE (replaced if it exists)."
    ),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ..., "html": FILE}.'),
) -> None:
    """Write a single self-contained HTML page about an instance: its task graph, a
    timeline of every task attempt, its tasks, its health breakdown and its resource
    history. The page has no scripts and loads nothing from the network, so it can be
    mailed or archived as it is.

    Examples:
      workflow_cli report sequential_pipeline-20261203-1015 --html report.html"""
    from workflow_cli.monitor.report import build_report, write_report

    app = app_context(ctx)
    instance_id, page = build_report(app.workspace, instance, app.clock)
    write_report(html, page)
    if as_json:
        print_json({"id": instance_id, "html": str(html.resolve())})
    else:
        typer.echo(f"wrote {html} (report of {instance_id})")
