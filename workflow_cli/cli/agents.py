"""``agents``, ``inbox`` and ``deliver``: the workspace's agents, mailbox assignments, and
results delivered by mailbox agents."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from workflow_cli.cli.context import app_context, json_option, print_json
from workflow_cli.errors import UsageError
from workflow_cli.store.workspace import Workspace


def echo_undeclared(workspace: Workspace, definition: Any) -> list[str]:
    """Print a notice (on stderr) for each agent `definition` names that is neither
    declared nor built in, and so is a mailbox agent; their names."""
    from workflow_cli.engine.agents.registry import undeclared_agents, undeclared_in

    if not isinstance(definition, dict) or undeclared_agents(workspace) != "mailbox":
        return []
    names = undeclared_in(workspace, definition)
    for name in names:
        typer.echo(
            f"notice: agent '{name}' is not declared in agents.yaml: it is a mailbox agent;"
            f" its assignments go to agents/{name}/inbox/ (deliver with 'workflow_cli deliver')",
            err=True,
        )
    return names


def _age(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    seconds = int(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def agents_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the agents as JSON."),
) -> None:
    """List every agent: declared in agents.yaml (command, callable, http, mailbox), built
    in, or named by a workflow without being declared (a mailbox agent). For mailbox
    agents, the assignments waiting in their inbox and how long they have waited; for
    every agent its last runs and failure rate (from the newest 500 instances). Piped,
    one tab-separated row per agent under a header.

    Examples:

    \b
      workflow_cli agents
      workflow_cli agents --json | jq '.[] | select(.waiting | length > 0)'
    """
    overview = app_context(ctx).api.agents()
    if as_json:
        print_json(overview)
        return
    if not overview:
        typer.echo("no agents")
        return
    if not sys.stdout.isatty():
        from workflow_cli.cli.rows import Column, print_rows

        names = ("name", "kind", "source", "runs", "failed", "failure rate", "waiting")
        rows = [
            [
                agent["name"],
                agent["kind"],
                agent["source"],
                agent["runs"],
                agent["failed"],
                "" if agent["failure_rate"] is None else round(agent["failure_rate"], 4),
                len(agent["waiting"]),
            ]
            for agent in overview
        ]
        print_rows([Column(name) for name in names], rows, terminal=False)
        return
    for agent in overview:
        rate = agent["failure_rate"]
        figures = f"{agent['runs']} runs, {agent['failed']} failed" + (
            f" ({rate:.0%})" if rate is not None else ""
        )
        typer.echo(f"{agent['name']}  {agent['kind']} ({agent['source']})  {figures}")
        for waiting in agent["waiting"]:
            typer.echo(
                f"  waiting: {waiting['instance']} {waiting['task']} (attempt"
                f" {waiting['attempt']}, {_age(waiting['age_seconds'])})"
            )
        for run in agent["last_runs"]:
            typer.echo(
                f"  last: {run['instance']} {run['task']} {run['state']}"
                + (f" in {run['duration']:.2f}s" if run.get("duration") is not None else "")
            )


def inbox_command(
    ctx: typer.Context,
    agent: str = typer.Argument(..., help="The mailbox agent."),
    as_json: bool = typer.Option(False, "--json", help="Print the assignments as JSON."),
) -> None:
    """List one mailbox agent's assignments (agents/AGENT/inbox/), oldest first, with
    their parameters, how long each has waited, and its deadline if it has one. An
    assignment whose task no longer waits (its instance was cancelled, or the task
    skipped) is marked with the task's state. Piped, one tab-separated row per
    assignment under a header, its parameters as JSON.

    Examples:

    \b
      workflow_cli inbox reviewer
      workflow_cli inbox reviewer --json
    """
    assignments = app_context(ctx).api.inbox(agent)
    if as_json:
        print_json(assignments)
        return
    if not assignments:
        typer.echo(f"no assignments for {agent}")
        return
    if not sys.stdout.isatty():
        from workflow_cli.cli.rows import Column, print_rows

        names = ("instance", "task", "attempt", "task state", "waiting seconds", "deadline")
        rows = [
            [
                item.get("instance"),
                item.get("task"),
                item.get("attempt"),
                item["task_state"],
                item.get("age_seconds"),
                item.get("deadline") or "",
                json.dumps(item.get("parameters"), ensure_ascii=False),
            ]
            for item in assignments
        ]
        print_rows([Column(n) for n in (*names, "parameters")], rows, terminal=False)
        return
    for item in assignments:
        stale = "" if item["task_state"] in ("waiting", "pending") else f" [{item['task_state']}]"
        typer.echo(
            f"{item.get('instance')} {item.get('task')} attempt {item.get('attempt')},"
            f" waiting {_age(item.get('age_seconds'))}"
            + (f", deadline {item['deadline']}" if item.get("deadline") else "")
            + stale
        )
        if item.get("description"):
            typer.echo(f"  {item['description']}")
        parameters = json.dumps(item.get("parameters"), indent=2, ensure_ascii=False)
        typer.echo("  parameters: " + parameters.replace("\n", "\n  "))
        if not stale:
            typer.echo(
                f"  deliver: workflow_cli deliver {item.get('instance')} {item.get('task')}"
                f" --as {agent} --output JSON"
            )


def deliver_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(..., help="The task whose assignment this answers."),
    agent: str = typer.Option(..., "--as", help="The mailbox agent delivering."),
    output: str = typer.Option(None, "--output", help="The output: JSON, or @FILE."),
    error: str = typer.Option(None, "--error", help="Fail the attempt with this message."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Deliver a mailbox agent's result for a waiting task: --output (checked against the
    task's output_schema; refused with exit 2 and nothing recorded when it does not match)
    or --error (the attempt fails and is retried per the task's policy, as a new
    assignment). The delivery is journaled with who and when; a second one for the same
    attempt is refused. A live runner takes it at once; otherwise 'workflow_cli resume'.

    Examples:

    \b
      workflow_cli deliver review-2026 review --as reviewer --output '{"ok": true}'
      workflow_cli deliver review-2026 review --as reviewer --output @result.json
      workflow_cli deliver review-2026 review --as reviewer --error "source unreadable"
    """
    from dataclasses import asdict

    if (output is None) == (error is None):
        raise UsageError("give --output or --error (one of them)")
    app = app_context(ctx)
    given: dict[str, Any] = {"error": error} if error is not None else {}
    if output is not None:
        given["output"] = json_option(output, "--output")
    result = app.api.deliver(instance, task, agent=agent, **given)
    if as_json:
        print_json(asdict(result))
        return
    what = "an error" if error is not None else "the output"
    typer.echo(f"{result.id}: {task} attempt {result.attempt}: {what} delivered by {agent}")
    if not result.runner:
        typer.echo(f"  go on with: workflow_cli resume {result.id}")
