"""The ``workflow_cli`` command: global options, the commands, and the one error boundary.

Exit codes: 0 success (a workflow completed); 1 a workflow failed; 2 bad usage or
invalid input (definitions, parameters, unknown names); 3 a workflow is waiting for an
approval or a mailbox agent; 4 busy (another process holds the instance or its
journal); 5 a damaged journal; 6 the disk is full; 70 an internal error; 130
interrupted. Set WORKFLOW_CLI_TRACEBACK=1 to see the Python traceback of an internal
error. For tests only, WORKFLOW_CLI_NOW pins the commands' clock (an ISO 8601 time, or
@FILE to read it from FILE).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from workflow_cli.cli import (
    agents,
    approve,
    cache,
    checkpoints,
    control,
    instances,
    migrate,
    prune,
    serve,
    status,
    templates,
    tokens,
    validate,
)
from workflow_cli.cli import debug as debug_cli
from workflow_cli.cli import events as events_cli
from workflow_cli.cli import failures as failures_cli
from workflow_cli.cli import graph as graph_cli
from workflow_cli.cli import health as health_cli
from workflow_cli.cli import hooks as hooks_cli
from workflow_cli.cli import logs as logs_cli
from workflow_cli.cli import monitor as monitor_cli
from workflow_cli.cli import report as report_cli
from workflow_cli.cli import schedules as schedules_cli
from workflow_cli.cli import signal as signal_cli
from workflow_cli.cli import tick as tick_cli
from workflow_cli.cli.context import AppContext, clock_from_env
from workflow_cli.errors import ExitCode, WorkflowCliError


class _Group(TyperGroup):
    """Turns every WorkflowCliError into its message and exit code, for real runs and
    for tests that call the app in-process alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from workflow_cli.cli.completion import decorate_params

        decorate_params(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except WorkflowCliError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            for line in exc.details():
                typer.echo(f"  {line}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if _is_usage_error(exc) or os.environ.get("WORKFLOW_CLI_TRACEBACK"):
                raise
            typer.echo(
                f"internal error: {type(exc).__name__}: {exc} "
                "(set WORKFLOW_CLI_TRACEBACK=1 for the traceback)",
                err=True,
            )
            ctx.exit(int(ExitCode.INTERNAL))
        finally:
            _warn_about_plugins()


def _warn_about_plugins() -> None:
    """Action plugins that failed to load are reported, once, after the command."""
    registry = sys.modules.get("workflow_cli.engine.actions")
    for warning in getattr(registry, "plugin_warnings", []):
        typer.echo(f"warning: {warning}", err=True)
    if registry is not None:
        registry.plugin_warnings.clear()


def _is_usage_error(exc: Exception) -> bool:
    """Click's own errors (unknown option, bad value): it prints them and exits 2.
    Typer may vendor Click, so the class is found by name rather than imported."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


app = typer.Typer(
    cls=_Group,
    name="workflow_cli",
    help="A local, durable workflow engine: templates, instances, a runner, approvals.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain Click help: Typer's Rich help costs ~0.1 s at start-up
    add_completion=True,  # --install-completion and --show-completion
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from workflow_cli import __version__

        typer.echo(f"workflow_cli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Path = typer.Option(
        None,
        "--home",
        envvar="WORKFLOW_HOME",
        help="Workspace folder (default: the current folder).",
        show_default=False,
    ),
    utc: bool = typer.Option(False, "--utc", help="Show times in UTC, not local time."),
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        is_eager=True,
        callback=_print_version,
        help="Print the version and exit.",
    ),
) -> None:
    ctx.obj = AppContext(home or Path.cwd(), clock_from_env(os.environ), utc=utc)


app.add_typer(templates.app, name="templates")
app.command("validate")(validate.validate_command)
app.command("migrate")(migrate.migrate_command)
app.command("create")(instances.create_command)
app.command("run")(instances.run_command)
app.command("start")(instances.start_command)
app.command("resume")(instances.resume_command)
app.command("status")(status.status_command)
app.command("list")(status.list_command)
app.command("approve")(approve.approve_command)
app.command("deliver")(agents.deliver_command)
app.command("agents")(agents.agents_command)
app.command("inbox")(agents.inbox_command)
app.command("reject")(approve.reject_command)
app.command("reassign")(approve.reassign_command)
app.command("approvals")(approve.approvals_command)
app.command("signal")(signal_cli.signal_command)
app.command("tick")(tick_cli.tick_command)
app.command("stop")(control.stop_command)
app.command("cancel")(control.cancel_command)
app.command("checkpoint")(control.checkpoint_command)
app.add_typer(checkpoints.app, name="checkpoints")
app.add_typer(cache.app, name="cache")
app.command("rollback")(control.rollback_command)
app.command("retry")(control.retry_command)
app.command("skip")(control.skip_command)
app.command("failures")(failures_cli.failures_command)
app.command("health")(health_cli.health_command)
app.command("alerts")(health_cli.alerts_command)
app.command("monitor")(monitor_cli.monitor_command)
app.command("events")(events_cli.events_command)
app.command("debug")(debug_cli.debug_command)
app.command("logs")(logs_cli.logs_command)
app.command("graph")(graph_cli.graph_command)
app.command("report")(report_cli.report_command)
app.command("serve")(serve.serve_command)
app.add_typer(tokens.app, name="tokens")
app.command("schedules")(schedules_cli.schedules_command)
app.command("hooks")(hooks_cli.hooks_command)
app.command("delete")(prune.delete_command)
app.command("prune")(prune.prune_command)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app(prog_name="workflow_cli", standalone_mode=True))
