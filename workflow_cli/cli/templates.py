"""``workflow_cli templates``: the built-in and workspace templates."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import app_context, print_json

if TYPE_CHECKING:
    from workflow_cli.definition.templates import Template

app = typer.Typer(
    help="List templates, or show one with 'templates show NAME'.\n\n"
    "Examples:\n"
    "  workflow_cli templates\n"
    "  workflow_cli templates show approval_chain",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _summary(template: Template) -> dict[str, Any]:
    return {
        "name": template.name,
        "description": template.description,
        "source": template.source,
        "parameters": template.parameters_schema(),
        "tasks": list(template.workflow.get("tasks", {})),
    }


@app.callback()
def list_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List every template (built-in, and the workspace's templates/ folder) with its
    description and parameters.

    Examples:
      workflow_cli templates
      workflow_cli templates --json"""
    from workflow_cli.definition.templates import list_templates

    if ctx.invoked_subcommand is not None:
        return
    found = list_templates(app_context(ctx).workspace.templates_dir)
    if as_json:
        print_json([_summary(t) for t in found])
        return
    from workflow_cli.cli.rows import Column, print_rows

    rows = []
    for template in found:
        params = ", ".join(
            f"{n}={json.dumps(s['default'])}" if "default" in s else f"{n} (required)"
            for n, s in template.parameters.items()
        )
        rows.append([template.name, template.description, params])
    columns = [
        Column("template", whole=True, style="bold"),
        Column("description"),
        Column("parameters", drop=1),
    ]
    print_rows(columns, rows)


@app.command("show")
def show_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Template name (or a template file)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one template: its parameters (type, default, description) and its tasks.

    Examples:
      workflow_cli templates show approval_chain
      workflow_cli templates show approval_chain --json"""
    from workflow_cli.definition.templates import find_template

    template = find_template(app_context(ctx).workspace.templates_dir, name)
    if as_json:
        print_json({**_summary(template), "workflow": template.workflow})
        return
    from rich.markup import escape

    console = app_context(ctx).console()
    console.print(f"[bold]{escape(template.name)}[/bold] — {escape(template.description)}")
    console.print(f"source: {escape(template.source)}")
    console.print("\n[bold]parameters[/bold]")
    for param, spec in template.parameters.items():
        extra = f" default {json.dumps(spec['default'])}" if "default" in spec else " required"
        if "enum" in spec:
            extra += f" one of {json.dumps(spec['enum'])}"
        line = f"  {param} ({spec.get('type')}){extra}: {spec.get('description', '')}"
        console.print(escape(line))
    console.print("\n[bold]tasks[/bold]")
    for task_id, task in template.workflow.get("tasks", {}).items():
        deps = ", ".join(task.get("dependencies") or []) or "-"
        line = f"  {task_id}: {task.get('action')} (after: {deps}) {task.get('name', '')}"
        console.print(escape(line))
