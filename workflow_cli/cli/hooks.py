"""``hooks``: an instance's hook deliveries — which were made, which failed and why."""

from __future__ import annotations

import typer

from workflow_cli.cli.context import app_context, print_json


def hooks_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    as_json: bool = typer.Option(False, "--json", help="Print the hooks and deliveries as JSON."),
) -> None:
    """Show the hooks of an instance (its definition's and workflow_cli.yaml's) and every
    delivery recorded in its journal: the hook, the event, the target, how many tries,
    and the HTTP status, exit code or error.

    Examples:
      workflow_cli hooks nightly-20260301-020000-3fa2c1
      workflow_cli hooks nightly-2026 --json"""
    from workflow_cli.definition.model import parse_hooks
    from workflow_cli.engine.hooks import read_deliveries, workspace_hooks
    from workflow_cli.store.instances import load_definition
    from workflow_cli.store.secrets import mask_url

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    definition = load_definition(app.workspace, instance_id)
    hooks = parse_hooks(definition.get("hooks"), "definition") + workspace_hooks(app.workspace)
    deliveries = read_deliveries(app.workspace, instance_id, app.clock)
    failed = [d for d in deliveries if d["type"] == "hook_failed"]
    if as_json:
        print_json(
            {
                "instance": instance_id,
                "hooks": [
                    {
                        "name": hook.name,
                        "events": sorted(hook.events),
                        "kind": "url" if hook.url is not None else "command",
                        "target": mask_url(hook.target) if hook.url else hook.target,
                    }
                    for hook in hooks
                ],
                "deliveries": deliveries,
                "delivered": len(deliveries) - len(failed),
                "failed": len(failed),
            }
        )
    else:
        if not hooks:
            typer.echo(f"{instance_id}: no hooks")
        for hook in hooks:
            target = mask_url(hook.target) if hook.url else hook.target
            typer.echo(f"{hook.name}: on {', '.join(sorted(hook.events))} -> {target}")
        if hooks and not deliveries:
            typer.echo("no deliveries yet")
        for delivery in deliveries:
            when = str(delivery.get("time", ""))[:19].replace("T", " ")
            task = f" ({delivery['task']})" if delivery.get("task") else ""
            status = delivery.get("status")
            shown = f", status {status}" if status is not None else ""
            outcome = "delivered" if delivery["type"] == "hook_delivered" else "FAILED"
            line = (
                f"{when}  {delivery['hook']}  {delivery['event']}{task}  {outcome} "
                f"after {delivery['attempts']} tr{'y' if delivery['attempts'] == 1 else 'ies'}"
                f"{shown}"
            )
            if delivery["type"] == "hook_failed":
                line += f": {delivery.get('error')}"
            typer.echo(line)
