"""``create``, ``run``, ``start`` and ``resume``: make instances and run them."""

from __future__ import annotations

import contextlib
import getpass
import sys
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import AppContext, app_context, print_json
from workflow_cli.engine.identity import who
from workflow_cli.errors import ExitCode, StateError, UsageError
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State

if TYPE_CHECKING:
    from workflow_cli.api import RunResult
    from workflow_cli.engine.runner import Reporter

PARAM_HELP = "A template parameter as key=value (repeatable); arrays and objects as JSON."
WORKERS_HELP = "How many tasks may run at once."
NO_CACHE_HELP = "Neither reuse nor keep cached task outputs (tasks with 'cache')."
INTERVAL_HELP = "Write an automatic checkpoint every N completed tasks (overrides the definition)."
AS_HELP = (
    "Who asks for the instance, recorded with it (default: the OS user); they may not"
    " approve its gates."
)
EXECUTOR_HELP = (
    "Where tasks run: threads, local-dask (a Dask cluster on this machine) or "
    "dask://HOST:PORT (a Dask scheduler); default: 'executor' in workflow_cli.yaml, else threads."
)


def create_command(
    ctx: typer.Context,
    template: str = typer.Argument(..., help="Template name, or a template/definition file."),
    param: list[str] = typer.Option([], "--param", "-p", help=PARAM_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    as_json: bool = typer.Option(False, "--json", help='Print {"id": ...}.'),
) -> None:
    """Create an instance of a template with its parameters filled in, and print its id.

    Each value is checked against its declared type; every unknown, missing or mistyped
    parameter (and every agent a parameter names that does not exist) is reported at
    once (exit 2), and nothing is written. A definition on an older schema version is
    migrated in memory, with a notice.

    Examples:
      workflow_cli create sequential_pipeline
      workflow_cli create parallel_processing --param worker_agent_1=CA
      workflow_cli create approval_chain --param level1_approver=alice --as carol"""
    app = app_context(ctx)
    instance_id = _create(app, template, param, by)
    if as_json:
        print_json({"id": instance_id})
    else:
        typer.echo(instance_id)


def run_command(
    ctx: typer.Context,
    template: str = typer.Argument(..., help="Template name, or a template/definition file."),
    param: list[str] = typer.Option([], "--param", "-p", help=PARAM_HELP),
    max_workers: int = typer.Option(4, "--max-workers", min=1, max=256, help=WORKERS_HELP),
    checkpoint_interval: int = typer.Option(
        None, "--checkpoint-interval", min=1, help=INTERVAL_HELP
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help=NO_CACHE_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    executor: str = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON only."),
) -> None:
    """Create an instance and run it at once (create + start).

    Examples:
      workflow_cli run sequential_pipeline
      workflow_cli run sequential_pipeline -p min_quantity=2 --max-workers 8 --json
      workflow_cli run parallel_processing --executor dask://10.0.0.5:8786 --max-workers 32"""
    from workflow_cli.engine.executor_choice import dask_settings

    app = app_context(ctx)
    dask_settings(app.workspace, executor)  # a bad choice is refused before anything is made
    instance_id = _create(app, template, param, by)
    if not as_json:
        typer.echo(f"created {instance_id}")
    _run(app, instance_id, max_workers, checkpoint_interval, as_json, no_cache, executor)


def start_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    max_workers: int = typer.Option(4, "--max-workers", min=1, max=256, help=WORKERS_HELP),
    checkpoint_interval: int = typer.Option(
        None, "--checkpoint-interval", min=1, help=INTERVAL_HELP
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help=NO_CACHE_HELP),
    executor: str = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON only."),
) -> None:
    """Run an instance in the foreground until it completes, fails, or waits for an
    approval or a mailbox agent. Exit 0 completed, 1 failed, 3 waiting.

    An instance whose runner died (state running, no live runner) is recovered: tasks
    recorded completed never run again; tasks that were in flight run again.

    Examples:
      workflow_cli start sequential_pipeline-20261203-101500-a1b2c3
      workflow_cli start sequential_pipeline-20261203-1015 --max-workers 2"""
    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    _say_schema_notice(app, instance_id)
    _run(app, instance_id, max_workers, checkpoint_interval, as_json, no_cache, executor)


def resume_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    max_workers: int = typer.Option(4, "--max-workers", min=1, max=256, help=WORKERS_HELP),
    checkpoint_interval: int = typer.Option(
        None, "--checkpoint-interval", min=1, help=INTERVAL_HELP
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help=NO_CACHE_HELP),
    executor: str = typer.Option(None, "--executor", help=EXECUTOR_HELP),
    assignments: list[str] = typer.Option(
        [], "--set", help="Change a task's parameter first: TASK.NAME=VALUE (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --set: only show the changes."),
    by: str = typer.Option(None, "--as", help="Who changes parameters, for the journal."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON only."),
) -> None:
    """Go on with an instance that is waiting (after an approval), paused (stopped, rolled
    back, or after retry/skip), or whose runner died. Completed tasks are not run again.
    A cancelled instance cannot be resumed.

    --set changes a parameter of a task that has not completed (a JSON value, else the
    text as given; used as data, never as a template); it is recorded in the journal
    with who and when.

    Examples:
      workflow_cli resume sequential_pipeline-20261203-101500-a1b2c3
      workflow_cli resume sequential_pipeline-20261203-1015 --set load.format=json --dry-run"""
    from workflow_cli.cli.control import print_parameter_changes
    from workflow_cli.engine.control import plan_parameters, set_parameters

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    state = load_state(open_journal(app.workspace, instance_id, app.clock))
    if state["state"] == "created":
        raise UsageError(f"instance {instance_id} has not started; use 'workflow_cli start'")
    if state["state"] in FINAL_INSTANCE_STATES:
        from workflow_cli.store.state import why_not_runnable

        raise StateError(why_not_runnable(instance_id, state["state"]))
    if dry_run and not assignments:
        raise UsageError("--dry-run goes with --set")
    if assignments:
        changes = plan_parameters(app.workspace, instance_id, assignments, app.clock)
        print_parameter_changes(changes, dry_run, as_json)
        if dry_run:
            return
        set_parameters(app.workspace, instance_id, changes, by=who(by), clock=app.clock)
    _say_schema_notice(app, instance_id)
    _run(app, instance_id, max_workers, checkpoint_interval, as_json, no_cache, executor)


def _create(app: AppContext, template: str, params: list[str], by: str | None) -> str:
    """Create the instance; say so when its definition is on an older schema version."""
    from workflow_cli.engine import lifecycle
    from workflow_cli.engine.identity import requester_of
    from workflow_cli.store.instances import load_definition

    requester = requester_of(app.workspace, who(by), getpass.getuser())
    instance_id = lifecycle.create(app.workspace, template, params, app.clock, requester=requester)
    written = load_definition(app.workspace, instance_id, as_written=True)  # read once
    _say_schema_notice(app, instance_id, written)
    _notices(app, written)
    return instance_id


def _say_schema_notice(
    app: AppContext, instance_id: str, written: dict[str, Any] | None = None
) -> None:
    """One line on stderr when the instance's definition is on an older schema version."""
    from workflow_cli.engine import lifecycle

    notice = lifecycle.schema_notice(app.workspace, instance_id, written)
    if notice:
        typer.echo(notice, err=True)


def _notices(app: AppContext, written: dict[str, Any]) -> None:
    """A notice for each agent the new instance (its definition as `written`) names that
    is a mailbox agent because it is not declared."""
    from workflow_cli.cli.agents import echo_undeclared
    from workflow_cli.definition.migrations import upgrade

    echo_undeclared(app.workspace, upgrade(written))


def _run(
    app: AppContext,
    instance_id: str,
    max_workers: int,
    checkpoint_interval: int | None,
    as_json: bool,
    no_cache: bool = False,
    executor: str | None = None,
) -> None:
    reporter: Reporter | None = None
    scope: Any = contextlib.nullcontext()
    if not as_json:
        from workflow_cli.cli.progress import LineReporter, RichReporter

        if sys.stdout.isatty():
            scope = reporter = RichReporter()
        else:
            reporter = LineReporter()
    with scope:
        result = app.api.run(
            instance_id,
            reporter=reporter,
            max_workers=max_workers,
            checkpoint_interval=checkpoint_interval,
            use_cache=not no_cache,
            executor=executor,
        )
    for problem in result.warnings:
        typer.echo(f"warning: monitoring: {problem}", err=True)
    _report(app, result, as_json)
    raise typer.Exit(result.exit_code)


def _report(app: AppContext, result: RunResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "id": result.id,
                "state": result.state,
                "reason": result.reason,
                "exit_code": result.exit_code,
                "waiting": result.waiting,
            }
        )
        return
    state = load_state(open_journal(app.workspace, result.id, app.clock))
    for line in run_summary(app, state, result.reason):
        typer.echo(line)
    for task_id, waiting_for in result.waiting.items():
        approvers = waiting_for.get("approvers")
        if approvers:
            required = waiting_for.get("required", 1)
            count = "one" if required == 1 else f"{required} different people"
            typer.echo(f"  {task_id} waits for {count} of: {', '.join(approvers)}")
            typer.echo(
                f"    workflow_cli approve {result.id} {task_id} "
                f"--as {approvers[0]}   then   workflow_cli resume {result.id}"
            )
        elif waiting_for.get("kind") == "mailbox":
            agent = waiting_for.get("agent")
            typer.echo(f"  {task_id} waits for agent {agent}: {waiting_for.get('assignment')}")
            typer.echo(
                f"    workflow_cli deliver {result.id} {task_id} --as {agent} "
                f"--output JSON   then   workflow_cli resume {result.id}"
            )
        elif waiting_for.get("child_instance"):
            typer.echo(f"  {task_id} waits for child instance {waiting_for['child_instance']}")
    if result.needs_person:
        typer.echo(
            f"  choose: workflow_cli retry {result.id} | skip {result.id} "
            f"--task T | rollback {result.id} | cancel {result.id}"
        )
    elif result.state == "paused":
        typer.echo(f"  go on with: workflow_cli resume {result.id}")
    if result.exit_code == ExitCode.WORKFLOW_FAILED:
        typer.echo(f"  what went wrong: workflow_cli debug {result.id}")
    elif result.state == "completed":
        typer.echo(f"  next: workflow_cli report {result.id}")


def run_summary(app: AppContext, state: State, reason: str | None) -> list[str]:
    """The end of a run in a few lines: state, total time and tasks by state; the tasks
    that failed without failing the run; the files the tasks wrote."""
    from workflow_cli.formats import format_duration, format_size
    from workflow_cli.store.listing import summarize

    summary = summarize(state)
    counts: dict[str, int] = {}
    for task in state["tasks"].values():
        counts[task["state"]] = counts.get(task["state"], 0) + 1
    order = ("completed", "failed", "skipped", "cancelled", "waiting", "pending")
    by_state = ", ".join(
        f"{counts[name]} {name}"
        for name in sorted(counts, key=lambda n: (n not in order, n))
        if name in counts
    )
    took = f" in {format_duration(summary.duration)}" if summary.duration is not None else ""
    why = f" ({reason})" if reason and state["state"] not in ("waiting", "completed") else ""
    lines = [f"{summary.id}: {state['state']}{took}{why} — {by_state} of {summary.total} tasks"]
    if state["state"] == "completed":
        for task_id, task in state["tasks"].items():
            if task["state"] == "failed":
                message = (task.get("error") or {}).get("message", "")
                lines.append(f"  failed, not critical: {task_id}: {message}")
    written = [
        f"{found['path']} ({format_size(found.get('bytes'))})"
        for task in state["tasks"].values()
        if task["state"] == "completed"
        for found in _files_written(task.get("output"))
    ]
    if written:
        shown = ", ".join(written[:8]) + (
            f" and {len(written) - 8} more" if len(written) > 8 else ""
        )
        lines.append(f"  written: {shown}")
    return lines


def _files_written(output: Any) -> list[dict[str, Any]]:
    """The files a task's output says it wrote: objects with a path and a sha256 (what
    file writes and the built-in agents return), at the top or one level down."""
    candidates = [output]
    if isinstance(output, dict):
        candidates += list(output.values())
    return [
        c
        for c in candidates
        if isinstance(c, dict) and isinstance(c.get("path"), str) and "sha256" in c
    ]
