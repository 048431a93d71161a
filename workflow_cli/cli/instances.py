"""``create``, ``run``, ``start`` and ``resume``: make instances and run them."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import AppContext, app_context, print_json
from workflow_cli.errors import ExitCode, UsageError
from workflow_cli.store.instances import load_state, open_journal

if TYPE_CHECKING:
    from workflow_cli.engine.runner import Reporter, RunOutcome

PARAM_HELP = "A template parameter as key=value (repeatable); arrays and objects as JSON."
WORKERS_HELP = "How many tasks may run at once."


def create_command(
    ctx: typer.Context,
    template: str = typer.Argument(..., help="Template name, or a template/definition file."),
    param: list[str] = typer.Option([], "--param", "-p", help=PARAM_HELP),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ...}.'),
) -> None:
    """Create an instance of a template with its parameters filled in, and print its id.

    Each value is checked against its declared type; an unknown, missing or mistyped
    parameter is an error (exit 2) and nothing is written."""
    from workflow_cli.engine import lifecycle

    app = app_context(ctx)
    instance_id = lifecycle.create(app.workspace, template, param, app.clock)
    if as_json:
        print_json({"id": instance_id})
    else:
        typer.echo(instance_id)


def run_command(
    ctx: typer.Context,
    template: str = typer.Argument(..., help="Template name, or a template/definition file."),
    param: list[str] = typer.Option([], "--param", "-p", help=PARAM_HELP),
    max_workers: int = typer.Option(4, "--max-workers", min=1, max=256, help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON only."),
) -> None:
    """Create an instance and run it at once (create + start)."""
    from workflow_cli.engine import lifecycle

    app = app_context(ctx)
    instance_id = lifecycle.create(app.workspace, template, param, app.clock)
    if not as_json:
        typer.echo(f"created {instance_id}")
    _run(app, instance_id, max_workers, as_json)


def start_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    max_workers: int = typer.Option(4, "--max-workers", min=1, max=256, help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON only."),
) -> None:
    """Run an instance in the foreground until it completes, fails, or waits for an
    approval. Exit 0 completed, 1 failed, 3 waiting for approval.

    An instance whose runner died (state running, no live runner) is recovered: tasks
    recorded completed never run again; tasks that were in flight run again."""
    app = app_context(ctx)
    _run(app, app.workspace.resolve_instance_id(instance), max_workers, as_json)


def resume_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    max_workers: int = typer.Option(4, "--max-workers", min=1, max=256, help=WORKERS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON only."),
) -> None:
    """Go on with an instance that is waiting (after an approval), paused, or whose
    runner died. Completed tasks are not run again."""
    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    state = load_state(open_journal(app.workspace, instance_id, app.clock))
    if state["state"] == "created":
        raise UsageError(f"instance {instance_id} has not started; use 'workflow_cli start'")
    _run(app, instance_id, max_workers, as_json)


def _run(app: AppContext, instance_id: str, max_workers: int, as_json: bool) -> None:
    from workflow_cli.engine import lifecycle
    from workflow_cli.engine.runner import RunOptions

    options = RunOptions(max_workers=max_workers)
    reporter: Reporter | None = None
    scope: Any = contextlib.nullcontext()
    if not as_json:
        from workflow_cli.cli.progress import LineReporter, RichReporter

        if sys.stdout.isatty():
            scope = reporter = RichReporter()
        else:
            reporter = LineReporter()
    with scope:
        outcome = lifecycle.run(
            app.workspace, instance_id, clock=app.clock, reporter=reporter, options=options
        )
    _report(app, outcome, as_json)
    raise typer.Exit(int(outcome.exit_code))


def _report(app: AppContext, outcome: RunOutcome, as_json: bool) -> None:
    state = load_state(open_journal(app.workspace, outcome.instance_id, app.clock))
    waiting = {
        task_id: task.get("waiting_for") or {}
        for task_id, task in state["tasks"].items()
        if task["state"] == "waiting"
    }
    if as_json:
        print_json(
            {
                "id": outcome.instance_id,
                "state": outcome.state,
                "reason": outcome.reason,
                "exit_code": int(outcome.exit_code),
                "waiting": waiting,
            }
        )
        return
    typer.echo(
        f"{outcome.instance_id}: {outcome.state}"
        + (f" ({outcome.reason})" if outcome.reason and outcome.state != "waiting" else "")
    )
    for task_id, waiting_for in waiting.items():
        approvers = waiting_for.get("approvers")
        if approvers:
            typer.echo(f"  {task_id} waits for one of: {', '.join(approvers)}")
            typer.echo(
                f"    workflow_cli approve {outcome.instance_id} {task_id} "
                f"--as {approvers[0]}   then   workflow_cli resume {outcome.instance_id}"
            )
        elif waiting_for.get("child_instance"):
            typer.echo(f"  {task_id} waits for child instance {waiting_for['child_instance']}")
    if outcome.exit_code == ExitCode.WORKFLOW_FAILED:
        typer.echo(f"  see: workflow_cli status {outcome.instance_id}")
