"""``workflow_cli validate``: every problem with a definition or template file."""

from __future__ import annotations

from pathlib import Path

import typer

from workflow_cli.cli.context import app_context, print_json
from workflow_cli.errors import DefinitionError, ExitCode, Problem


def validate_command(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A workflow definition or template (JSON or YAML)."),
    as_json: bool = typer.Option(False, "--json", help="Print the problems as JSON."),
) -> None:
    """Check a definition or template file and report every problem at once, each at a
    JSON pointer: schema errors, unknown dependencies, cycles, duplicate ids, unknown
    actions, expressions that do not parse or refer to unknown names. An agent that is
    neither declared nor built in is a mailbox agent, with a notice (an error when the
    workspace sets 'undeclared_agents: error'). Exit 0 when valid, 2 when not; nothing
    is written.

    Examples:

    \b
      workflow_cli validate my_workflow.yaml
      workflow_cli validate templates/report.yaml --json
    """
    from workflow_cli.cli.agents import echo_undeclared
    from workflow_cli.definition.loader import load_document
    from workflow_cli.definition.templates import read_template
    from workflow_cli.engine.lifecycle import definition_problems

    workspace = app_context(ctx).workspace
    notices: list[str] = []
    try:
        document = load_document(file)
        if isinstance(document, dict) and "workflow" in document:
            template = read_template(file)
            problems = [
                Problem("/workflow" + p.pointer, p.message)
                for p in definition_problems(
                    workspace, template.workflow, param_names=template.parameters
                )
            ]
            notices = echo_undeclared(workspace, template.workflow)
        else:
            problems = definition_problems(workspace, document)
            notices = echo_undeclared(workspace, document)
    except DefinitionError as exc:
        problems = exc.problems
    if as_json:
        print_json(
            {
                "file": str(file),
                "valid": not problems,
                "problems": [{"pointer": p.pointer, "message": p.message} for p in problems],
                "mailbox_agents": notices,  # named, not declared: mailbox agents
            }
        )
    elif problems:
        typer.echo(f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}", err=True)
        for problem in problems:
            typer.echo(f"  {problem}", err=True)
    else:
        typer.echo(f"{file}: valid")
    if problems:
        raise typer.Exit(int(ExitCode.BAD_INPUT))
