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

from workflow_cli.cli.context import AppContext, clock_from_env
from workflow_cli.errors import ExitCode, WorkflowCliError


class _Group(TyperGroup):
    """Turns every WorkflowCliError into its message and exit code, for real runs and
    for tests that call the app in-process alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from workflow_cli.cli.completion import decorate_params

        decorate_params(self)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in self.commands and name in COMMANDS:
            self.commands[name] = _build_command(name)
        return self.commands.get(name)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)  # checked in `invoke`, inside the error boundary
        return list(super().parse_args(ctx, args))

    def invoke(self, ctx: Any) -> Any:
        try:
            _refuse_undecodable(ctx.meta.get(_ARGS, []))
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


_ARGS = "workflow_cli.args"


def _refuse_undecodable(args: list[str]) -> None:
    """An argument whose bytes are not UTF-8 (Python keeps them as lone surrogates) is
    refused before any command reads it: as text it could not be journaled or shown."""
    from workflow_cli.errors import UsageError

    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise UsageError(f"argument '{shown}' is not UTF-8 text") from None


def _build_command(name: str) -> Any:
    """The Click command `name` of `COMMANDS`, with its placeholders and completion."""
    from importlib import import_module

    import typer.main
    from typer.models import CommandInfo, TyperInfo

    from workflow_cli.cli.completion import decorate_params

    module, attribute = COMMANDS[name]
    target = getattr(import_module(f"workflow_cli.cli.{module}"), attribute)
    if isinstance(target, typer.Typer):  # built as the root's own, in plain Click help
        command: Any = typer.main.get_group_from_info(
            TyperInfo(target, name=name),
            pretty_exceptions_short=True,
            suggest_commands=True,
            rich_markup_mode=None,
        )
    else:
        command = typer.main.get_command_from_info(
            CommandInfo(name=name, callback=target),
            pretty_exceptions_short=True,
            rich_markup_mode=None,
        )
    decorate_params(command)
    return command


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


# Every command: its name -> the module of workflow_cli.cli and the function (or, for a
# command with subcommands, the Typer app) that is it. A command's module is imported,
# and its Click command built, only when that command is run (or help lists them all):
# building all of them costs every command a twentieth of a second.
COMMANDS: dict[str, tuple[str, str]] = {
    "templates": ("templates", "app"),
    "validate": ("validate", "validate_command"),
    "migrate": ("migrate", "migrate_command"),
    "create": ("instances", "create_command"),
    "run": ("instances", "run_command"),
    "start": ("instances", "start_command"),
    "resume": ("instances", "resume_command"),
    "status": ("status", "status_command"),
    "list": ("status", "list_command"),
    "approve": ("approve", "approve_command"),
    "deliver": ("agents", "deliver_command"),
    "agents": ("agents", "agents_command"),
    "inbox": ("agents", "inbox_command"),
    "reject": ("approve", "reject_command"),
    "reassign": ("approve", "reassign_command"),
    "approvals": ("approve", "approvals_command"),
    "signal": ("signal", "signal_command"),
    "tick": ("tick", "tick_command"),
    "stop": ("control", "stop_command"),
    "cancel": ("control", "cancel_command"),
    "checkpoint": ("control", "checkpoint_command"),
    "checkpoints": ("checkpoints", "app"),
    "cache": ("cache", "app"),
    "rollback": ("control", "rollback_command"),
    "retry": ("control", "retry_command"),
    "skip": ("control", "skip_command"),
    "failures": ("failures", "failures_command"),
    "health": ("health", "health_command"),
    "alerts": ("health", "alerts_command"),
    "monitor": ("monitor", "monitor_command"),
    "events": ("events", "events_command"),
    "debug": ("debug", "debug_command"),
    "logs": ("logs", "logs_command"),
    "graph": ("graph", "graph_command"),
    "report": ("report", "report_command"),
    "serve": ("serve", "serve_command"),
    "tokens": ("tokens", "app"),
    "schedules": ("schedules", "schedules_command"),
    "hooks": ("hooks", "hooks_command"),
    "delete": ("prune", "delete_command"),
    "prune": ("prune", "prune_command"),
}


def main() -> None:
    """Console-script entry point."""
    sys.exit(app(prog_name="workflow_cli", standalone_mode=True))
