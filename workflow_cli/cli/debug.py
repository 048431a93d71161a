"""``debug``: what went wrong with a failed or stuck instance, and what to do next."""

from __future__ import annotations

import json
from typing import Any

import typer

from workflow_cli.cli.context import app_context, print_json

# Parameters longer than this many lines (as indented JSON) are cut in the text view.
_PARAMETER_LINES = 30


def debug_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help="Instance id (or a unique prefix)."),
    task: str = typer.Argument(None, help="Only this task (default: every failed or stuck one)."),
    log_lines: int = typer.Option(20, "--lines", min=0, max=10_000, help="Log lines per task."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Explain a failed or stuck instance: each failed (or waiting, or stuck) task's
    error; every attempt with its start, duration, exit code or HTTP status and the
    backoff that followed; the last lines of its log; its parameters as they render;
    each condition with the values it reads and its result; and the commands that would
    help next (retry, skip, rollback to a checkpoint, approve, resume). Secrets are shown
    masked as ***.

    Examples:
      workflow_cli debug sequential_pipeline-20261203-1015
      workflow_cli debug sequential_pipeline-20261203-1015 transform --lines 50"""
    from workflow_cli.monitor.debug import debug_account

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    account = debug_account(app.workspace, instance_id, app.clock, task, log_lines=log_lines)
    if as_json:
        print_json(account)
        return
    _print_account(app.console(), account, log_lines)


def _print_account(console: Any, account: dict[str, Any], log_lines: int) -> None:
    from rich.markup import escape

    from workflow_cli.cli.status import _STATE_STYLE

    def styled(state: str) -> str:
        style = _STATE_STYLE.get(state, "")
        return f"[{style}]{escape(state)}[/{style}]" if style else escape(state)

    console.print(
        f"[bold]{escape(account['id'])}[/bold]  template {escape(str(account['template']))}"
        f"  {styled(account['state'])}"
    )
    if account["reason"]:
        console.print(f"  {escape(account['reason'])}")
    if account["parent"]:
        parent = account["parent"]
        console.print(f"  child of {escape(parent['instance'])} (task {escape(parent['task'])})")
    if account["runner_gone"]:
        console.print("  [red]its runner is gone[/red]: the run died while it was running")
    if not account["tasks"]:
        console.print("  no task failed, waits or is stuck; name a task to see its account")
    for task in account["tasks"]:
        console.print()
        _print_task(console, task, log_lines, styled, escape, account["id"])
    if account["more_tasks"]:
        more = account["more_tasks"]
        console.print()
        console.print(
            f"{len(more)} more tasks in trouble: "
            + escape(", ".join(more[:20]) + (" …" if len(more) > 20 else ""))
            + " (name one to see it)"
        )
    if account["next"]:
        console.print()
        console.print("[bold]next[/bold]")
        for step in account["next"]:
            console.print(f"  {escape(step['command'])}   [dim]{escape(step['why'])}[/dim]")


def _print_task(
    console: Any,
    task: dict[str, Any],
    log_lines: int,
    styled: Any,
    escape: Any,
    account_id: str,
) -> None:
    what = task["action"] or "?"
    if task["agent_id"]:
        what += f" (agent {task['agent_id']})"
    console.print(
        f"[bold]{escape(task['task'])}[/bold]  {escape(what)}  {styled(task['state'])}"
        f"  after {task['attempts_made']} attempt{'s' if task['attempts_made'] != 1 else ''}"
    )
    if task["error"]:
        error = task["error"]
        kind = escape(str(error.get("kind")))
        console.print(f"  error: {escape(str(error.get('message')))}  [dim]({kind})[/dim]")
    if task["reason"]:
        console.print(f"  reason: {escape(task['reason'])}")
    if task["waiting_for"]:
        console.print(f"  waiting for: {escape(json.dumps(task['waiting_for']))}")
    if task["child_instance"]:
        console.print(f"  child instance: {escape(task['child_instance'])}")
    if task.get("cached"):
        from workflow_cli.cli.status import describe_cached

        console.print(f"  {escape(describe_cached(task['cached'], task.get('finished_at')))}")
    if task.get("items"):
        _print_items(console, task["items"], escape)
    if task["attempts"]:
        console.print("  attempts:")
        final = (task["error"] or {}).get("message")
        for attempt in task["attempts"]:
            console.print("    " + escape(_attempt_line(attempt, final)))
    console.print(
        "  parameters"
        + (" (as rendered):" if task["parameters_rendered"] else " (as written; rendering fails):")
    )
    if task["parameters_error"]:
        console.print(f"    [red]{escape(task['parameters_error'])}[/red]")
    lines = json.dumps(task["parameters"], indent=2, ensure_ascii=False).splitlines()
    for line in lines[:_PARAMETER_LINES]:
        console.print("    " + escape(line))
    if len(lines) > _PARAMETER_LINES:
        console.print(f"    … {len(lines) - _PARAMETER_LINES} more lines (--json shows all)")
    if task["conditions"]:
        console.print("  conditions:")
        for condition in task["conditions"]:
            console.print("    " + escape(_condition_line(condition, "result")))
    if task["check"]:
        console.print("  check:")
        console.print("    " + escape(_condition_line(task["check"], "value")))
    log = task["log"]
    if log_lines > 0:
        if not log["exists"]:
            console.print(f"  log: none written ({escape(log['path'])})")
        elif not log["lines"]:
            console.print(f"  log: empty ({escape(log['path'])})")
        else:
            console.print(f"  log, last {len(log['lines'])} lines of {escape(log['path'])}:")
            for line in log["lines"]:
                console.print("    | " + escape(line), overflow="fold")
            whole = f"workflow_cli logs {account_id} {task['task']}"
            console.print(f"    (all of it, attempt by attempt: {escape(whole)})")
    if task["next"]:
        console.print("  next:")
        for step in task["next"]:
            console.print(f"    {escape(step['command'])}   [dim]{escape(step['why'])}[/dim]")


def _print_items(console: Any, items: dict[str, Any], escape: Any) -> None:
    counts = ", ".join(f"{items[k]} {k}" for k in ("completed", "failed", "skipped") if items[k])
    console.print(f"  items: {items['total']} ({escape(counts or 'none ended')})")
    for item in items["failed_items"]:
        error = item.get("error") or {}
        console.print(
            f"    item {item['index']}: failed after {item['attempts']} attempt(s): "
            f"{escape(str(error.get('message')))}"
        )
    if items["shown_item"] is not None:
        console.print(f"  (parameters and conditions below as for item {items['shown_item']})")


def _attempt_line(attempt: dict[str, Any], final_error: str | None) -> str:
    """One attempt: number, start, duration, outcome, exit code or HTTP status, its error
    (unless it is the task's error, shown above), and the backoff that followed."""
    number = attempt.get("attempt")
    parts = [f"#{number}" if number is not None else "-"]
    started = attempt.get("started_at")
    parts.append(started[:23].replace("T", " ") if started else "(did not start)")
    if attempt.get("duration") is not None:
        parts.append(f"{attempt['duration']:.3f}s")
    parts.append(attempt["outcome"])
    if attempt.get("worker"):
        parts.append(f"on {attempt['worker']}")
    if "exit_code" in attempt:
        parts.append(f"exit code {attempt['exit_code']}")
    if "status" in attempt:
        parts.append(f"HTTP {attempt['status']}")
    if attempt.get("error") and attempt["error"] != final_error:
        parts.append(f"{attempt['error']}")
    if attempt.get("backoff") is not None:
        parts.append(f"then waited {attempt['backoff']:.3f}s")
    if attempt.get("note"):
        parts.append(f"({attempt['note']})")
    return "  ".join(parts)


def _condition_line(condition: dict[str, Any], key: str) -> str:
    if "error" in condition:
        outcome = f"error: {condition['error']}"
    else:
        outcome = json.dumps(condition.get(key), ensure_ascii=False)
    values = ", ".join(f"{name} = {_short(value)}" for name, value in condition["values"].items())
    missing = ", ".join(f"{name} (not set)" for name in condition["missing"])
    seen = "; ".join(part for part in (values, missing) if part)
    return f"{condition['expression']}  ->  {outcome}" + (f"   [{seen}]" if seen else "")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
