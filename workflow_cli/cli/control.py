"""``stop``, ``cancel``, ``checkpoint``, ``rollback``, ``retry`` and ``skip``: control an
instance from any terminal.

stop vs cancel: ``stop`` pauses — nothing new starts, tasks in flight finish (or are
interrupted after ``--grace``), a checkpoint is written, and ``resume`` goes on later.
``cancel`` ends the instance for good — tasks in flight are killed, the rest are
cancelled, compensations run if the workflow asks for them, and it cannot be resumed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.engine.identity import who
from workflow_cli.errors import UsageError

if TYPE_CHECKING:
    from workflow_cli.engine.compensation import CompensationOutcome
    from workflow_cli.engine.control import ResetPlan, RollbackPlan, StopOutcome

INSTANCE_HELP = "Instance id (or a unique prefix)."
AS_HELP = "Who does it, for the journal (default: your user name)."
WAIT_HELP = "Seconds to wait for a live runner to end."
DRY_RUN_HELP = "Only print the plan; change nothing."


def stop_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    grace: float = typer.Option(
        None, "--grace", min=0, help="Interrupt tasks still in flight after this many seconds."
    ),
    wait: float = typer.Option(30.0, "--wait", min=0, help=WAIT_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Pause an instance: nothing new starts, tasks in flight finish (or, after --grace
    seconds, are interrupted and recorded as interrupted, to run again on resume), a
    checkpoint is written and the instance is left paused. Go on with 'resume'.

    Unlike 'cancel', a stopped instance can always be resumed.

    Examples:
      workflow_cli stop sequential_pipeline-20261203-1015
      workflow_cli stop sequential_pipeline-20261203-1015 --grace 10 --wait 60"""
    outcome = app_context(ctx).api.stop(instance, by=who(by), grace=grace, wait=wait)
    _print_stop(outcome, as_json)


def cancel_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    wait: float = typer.Option(30.0, "--wait", min=0, help=WAIT_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel an instance for good: tasks in flight are killed (their whole process
    groups), the others are cancelled, and compensations run if the workflow sets
    'on_failure: compensate'. A cancelled instance cannot be resumed (use 'stop' to
    pause instead).

    Examples:
      workflow_cli cancel sequential_pipeline-20261203-1015
      workflow_cli cancel sequential_pipeline-20261203-1015 --as ops --json"""
    outcome = app_context(ctx).api.cancel(instance, by=who(by), wait=wait)
    _print_stop(outcome, as_json)


def _print_stop(outcome: StopOutcome, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "id": outcome.instance_id,
                "state": outcome.state,
                "requested": outcome.requested,
                "runner_ended": outcome.runner_ended,
                "message": outcome.message,
                "compensations": [vars(c) for c in outcome.compensations],
            }
        )
        return
    typer.echo(f"{outcome.instance_id}: {outcome.state} ({outcome.message})")
    _print_compensations(outcome.compensations)


def _print_compensations(outcomes: list[CompensationOutcome]) -> None:
    for item in outcomes:
        line = f"  compensation of {item.task}: {item.state} after {item.attempts} attempt(s)"
        typer.echo(line + (f": {item.error}" if item.error else ""))


def checkpoint_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    label: str = typer.Option(None, "--label", help="A note to find it by."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Write a manual checkpoint of an instance as it stands now (it may be running).

    Examples:
      workflow_cli checkpoint sequential_pipeline-20261203-1015 --label 'before the load'"""
    from workflow_cli.engine.control import take_checkpoint

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    document = take_checkpoint(
        app.workspace, instance_id, kind="manual", label=label, clock=app.clock
    )
    if as_json:
        print_json({key: document[key] for key in ("id", "instance", "kind", "label", "seq")})
    else:
        typer.echo(f"{instance_id}: checkpoint {document['id']} at journal event {document['seq']}")


def rollback_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    checkpoint: str = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint id or number (default: the newest usable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Roll an instance back to a checkpoint by hand; it is left paused, for 'resume'.

    Prints the plan first: which tasks go back to pending, which of those have side
    effects that will happen again, and which compensations will run (newest first).
    Asks before going on unless --yes; when not at a terminal, --yes is required. A
    pre-rollback checkpoint is written first, so a rollback can itself be rolled back.
    The journal is only appended to. Refused while a runner executes the instance.
    Default checkpoint: the newest usable one that differs from the current state
    (pre-rollback checkpoints are not chosen by default).

    Examples:
      workflow_cli rollback sequential_pipeline-20261203-1015 --dry-run
      workflow_cli rollback sequential_pipeline-20261203-1015 --checkpoint 0002-milestone --yes"""
    from workflow_cli.engine.control import plan_rollback, rollback

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    plan = plan_rollback(app.workspace, instance_id, checkpoint, app.clock)
    if dry_run or not as_json:
        _show_rollback(plan, as_json)
    if dry_run:
        return
    _confirm(f"roll {instance_id} back to checkpoint {plan.checkpoint.id}?", yes)
    outcome = rollback(app.workspace, instance_id, plan.checkpoint.id, by=who(by), clock=app.clock)
    failed = [c for c in outcome.compensations if c.state != "completed"]
    if as_json:
        print_json(
            {
                **outcome.plan.as_dict(),
                "pre_rollback_checkpoint": outcome.pre_rollback,
                "compensation_outcomes": [vars(c) for c in outcome.compensations],
                "state": outcome.state,
            }
        )
    else:
        _print_compensations(outcome.compensations)
        typer.echo(
            f"{instance_id}: rolled back to {plan.checkpoint.id} (undo with: workflow_cli "
            f"rollback {instance_id} --checkpoint {outcome.pre_rollback}); now {outcome.state}"
        )
        typer.echo(f"  go on with: workflow_cli resume {instance_id}")
    if failed:
        raise typer.Exit(1)


def _show_rollback(plan: RollbackPlan, as_json: bool) -> None:
    if as_json:
        print_json(plan.as_dict())
        return
    info = plan.checkpoint
    label = f" ({info.label})" if info.label else ""
    typer.echo(f"rollback of {plan.instance_id} to checkpoint {info.id}{label}, {info.time}")
    if not plan.changes:
        typer.echo("  no task changes")
    for change in plan.changes:
        typer.echo(f"  {change.task}: {change.now} -> {change.then}")
    effects = [c for c in plan.changes if c.side_effect]
    if effects:
        typer.echo("side effects that will happen again on resume:")
        for change in effects:
            typer.echo(f"  {change.task} {change.side_effect}")
    if plan.compensations:
        typer.echo(f"compensations to run, in order: {', '.join(plan.compensations)}")
    for approval in plan.approvals_undone:
        typer.echo(
            f"  the {approval['decision']} of {approval['task']} by {approval['by']} is undone"
        )


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("not at a terminal: add --yes to go on (or --dry-run to only look)")
    if not typer.confirm(question, default=False):
        typer.echo("nothing changed")
        raise typer.Exit(0)


def retry_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    task: str = typer.Option(None, "--task", "-t", help="The task to run again."),
    item: int = typer.Option(
        None, "--item", min=0, help="Only this item (its index) of the for_each task --task."
    ),
    downstream: bool = typer.Option(
        False, "--downstream", help="Also reset every task after it, completed ones included."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Put a failed (or completed, or skipped) task back to pending, with the tasks after
    it that were skipped or cancelled because of it; --downstream resets every task after
    it. Without --task, every failed task. Then 'resume'. Refused while a runner runs.

    A failed for_each task runs again only its failed items; --item K runs item K of
    --task again (failed, completed or skipped), the other items keep their outputs.

    Examples:
      workflow_cli retry wf-20260101-000000-ab12cd
      workflow_cli retry wf-20260101-000000-ab12cd --task load --downstream
      workflow_cli retry wf-20260101-000000-ab12cd --task each --item 17"""
    from workflow_cli.engine.control import plan_retry, retry

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    plan = plan_retry(
        app.workspace, instance_id, task, downstream=downstream, clock=app.clock, item=item
    )
    if not dry_run:
        retry(app.workspace, instance_id, plan, by=who(by), clock=app.clock)
    _print_reset(plan, dry_run, as_json)


def skip_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    task: str = typer.Option(..., "--task", "-t", help="The failed or waiting task to skip."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    force: bool = typer.Option(False, "--force", help="Needed to skip an approval gate."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Mark a failed, waiting or pending task skipped so the run can go on; the tasks
    after it see it as skipped. Then 'resume'. Refused while a runner runs. An approval
    gate needs --force (who skipped it is recorded).

    Examples:
      workflow_cli skip sequential_pipeline-20261203-1015 --task load"""
    from workflow_cli.engine.control import plan_skip, skip

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    plan = plan_skip(app.workspace, instance_id, task, app.clock, force=force)
    if not dry_run:
        skip(app.workspace, instance_id, plan, by=who(by), clock=app.clock)
    _print_reset(plan, dry_run, as_json)


def _print_reset(plan: ResetPlan, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({**plan.as_dict(), "dry_run": dry_run})
        return
    verb = "would" if dry_run else "will"
    if plan.skip:
        typer.echo(f"{plan.instance_id}: {plan.skip} {'would be' if dry_run else 'is'} skipped")
    for change in plan.reset:
        effect = f" ({change.side_effect})" if change.side_effect else ""
        which = plan.items.get(change.task)
        if which is not None:
            shown = ", ".join(str(i) for i in which[:20]) + (" …" if len(which) > 20 else "")
            effect = f", items {shown} only{effect}"
        typer.echo(f"  {change.task}: {change.now} -> pending, {verb} run again{effect}")
    if not dry_run:
        typer.echo(f"  go on with: workflow_cli resume {plan.instance_id}")


def print_parameter_changes(changes: list[Any], dry_run: bool, as_json: bool) -> None:
    if as_json and dry_run:
        print_json({"set": [vars(c) for c in changes], "dry_run": True})
        return
    if as_json:
        return
    verb = "would change" if dry_run else "changed"
    for change in changes:
        typer.echo(f"  {change.task}.{change.name}: {change.old!r} -> {change.new!r} ({verb})")
