"""``logs``: what a task wrote to its log (agent stderr, tracebacks), attempt by attempt."""

from __future__ import annotations

import time

import typer

from workflow_cli.cli.context import AppContext, app_context, print_json
from workflow_cli.errors import UsageError

# How often --follow looks for new lines.
FOLLOW_POLL = 0.2


def logs_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., metavar="ID", help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(None, help="Only this task's log."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new lines until the run ends."
    ),
    failed: bool = typer.Option(False, "--failed", help="Only attempts that failed."),
    attempt: int = typer.Option(
        None, "--attempt", metavar="N", min=1, help="Only attempt number N."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (not with --follow)."),
) -> None:
    """Print a task's log: what its agent wrote to stderr, tracebacks, and what built-in
    agents note. Each attempt starts with a '--- attempt N (outcome) ---' line. With no
    TASK, every task's log, attempt by attempt in the order they started, each line
    prefixed with its task.

    Examples:
      workflow_cli logs etl-20261203-101500-a1b2c3 extract
      workflow_cli logs etl-20261203-101500-a1b2c3 --failed
      workflow_cli logs etl-20261203-101500-a1b2c3 extract --attempt 2
      workflow_cli logs etl-20261203-101500-a1b2c3 --follow"""
    from workflow_cli.monitor.logs import read_logs

    if follow and as_json:
        raise UsageError("--follow prints lines as they come; it does not go with --json")
    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    if follow:
        if failed:
            raise UsageError("--failed is known only once attempts end; not with --follow")
        _follow(app, instance_id, task, task is None, attempt)
        return
    sections = read_logs(
        app.workspace, instance_id, app.clock, task=task, attempt=attempt, failed=failed
    )
    if as_json:
        print_json(
            [
                {
                    "task": s.task,
                    "attempt": s.attempt,
                    "outcome": s.outcome,
                    "start": s.start.isoformat() if s.start else None,
                    "lines": s.lines,
                }
                for s in sections
            ]
        )
        return
    prefixed = task is None
    for section in sections:
        if section.attempt is not None:
            _echo(section.task, _header(section.attempt, section.outcome), prefixed)
        for line in section.lines:
            _echo(section.task, line, prefixed)
    if not sections:
        which = f"task {task}" if task else instance_id
        narrowed = " matching" if failed or attempt is not None else ""
        typer.echo(f"no{narrowed} log lines for {which}", err=True)


def _header(attempt: int, outcome: str | None) -> str:
    return f"--- attempt {attempt}" + (f" ({outcome})" if outcome else "") + " ---"


def _echo(task: str, line: str, prefixed: bool) -> None:
    typer.echo(f"{task} | {line}" if prefixed else line)


def _follow(
    app: AppContext, instance_id: str, task: str | None, prefixed: bool, attempt: int | None
) -> None:
    """Print what the logs hold, then lines as they are written, until the instance's
    runner ends (or Ctrl-C, which ends only the watching)."""
    from workflow_cli.monitor.logs import attempt_of_marker, log_names, log_path, read_new_lines
    from workflow_cli.store.runlock import runner_alive

    names = log_names(app.workspace, instance_id, task)
    paths = {name: log_path(app.workspace, instance_id, name) for name in names}
    offsets = dict.fromkeys(names, 0)
    current: dict[str, int | None] = dict.fromkeys(names)
    instance_dir = app.workspace.instance_dir(instance_id)
    try:
        while True:
            alive = runner_alive(instance_dir)  # looked at before the last read
            for name, path in paths.items():
                lines, offsets[name] = read_new_lines(path, offsets[name])
                for line in lines:
                    number = attempt_of_marker(line)
                    if number is not None:
                        current[name] = number
                        if attempt is None or attempt == number:
                            _echo(name, _header(number, None), prefixed)
                    elif attempt is None or current[name] == attempt:
                        _echo(name, line, prefixed)
            if not alive:
                typer.echo(f"(no run of {instance_id} is going on)", err=True)
                return
            time.sleep(FOLLOW_POLL)
    except KeyboardInterrupt:
        typer.echo("stopped following; the run goes on", err=True)
