"""``approve``, ``reject``, ``reassign``, ``approvals`` and ``tick``: people deciding
approval gates, from any terminal, and the deadlines that act when they do not."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

import typer

from workflow_cli.cli.context import AppContext, app_context, print_json

if TYPE_CHECKING:
    from workflow_cli.engine.timers import TickReport

INSTANCE_HELP = "Instance id (or a unique prefix)."
TASK_HELP = "The waiting gate (needed when several wait)."
AS_HELP = "Who decides (default: the OS user); must be one of the gate's approvers."
FORM_HELP = "A form value as key=value (repeatable); checked against the gate's inputs."


def _acting_as(app: AppContext, by: str | None) -> str:
    from workflow_cli.engine.approvals import acting_as, approval_settings

    return acting_as(by, getpass.getuser(), approval_settings(app.workspace))


def _decide(
    ctx: typer.Context,
    instance: str,
    task: str | None,
    by: str | None,
    comment: str | None,
    decision: str,
    as_json: bool,
    *,
    form: list[str] | None = None,
    form_json: str | None = None,
    rewind_to: str | None = None,
) -> None:
    from workflow_cli.engine.approvals import Decision, push_back, record_decision

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    chosen = Decision(decision, _acting_as(app, by), comment, tuple(form or ()), form_json)
    reset: list[str] = []
    if rewind_to is not None:
        task_id, state, reset = push_back(
            app.workspace, instance_id, task, chosen, rewind_to, clock=app.clock
        )
    else:
        task_id, state = record_decision(app.workspace, instance_id, task, chosen, clock=app.clock)
    if as_json:
        result = {
            "id": instance_id,
            "task": task_id,
            "decision": decision,
            "by": chosen.by,
            "state": state["state"],
        }
        print_json({**result, "rewound": reset} if rewind_to else result)
        return
    typer.echo(f"{instance_id}: {task_id} {decision} by {chosen.by}")
    if reset:
        typer.echo(f"  sent back to {rewind_to}: {', '.join(reset)} pending again")
    if state.get("runner") is None:
        typer.echo(f"  go on with: workflow_cli resume {instance_id}")


def approve_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    task: str = typer.Argument(None, help=TASK_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    form: list[str] = typer.Option([], "--set", "--input", help=FORM_HELP),
    form_json: str = typer.Option(None, "--inputs", help="The form's values as a JSON object."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Approve a waiting approval gate. A running runner picks the decision up; otherwise
    go on with 'workflow_cli resume ID'. Refused: a name that is not a current approver,
    the instance's requester (unless the gate allows self-approval), a second decision
    by the same person, a gate already decided, form values that do not fit its inputs.

    Examples:

    \b
      workflow_cli approve ID --as bob --comment "ok"
      workflow_cli approve ID level1_approval --set amount=1200 --set note=ok
      workflow_cli approve ID --inputs '{"amount": 1200}'
    """
    _decide(ctx, instance, task, by, comment, "approved", as_json, form=form, form_json=form_json)


def reject_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    task: str = typer.Argument(None, help=TASK_HELP),
    by: str = typer.Option(None, "--as", help=AS_HELP),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    rewind_to: str = typer.Option(
        None,
        "--rewind-to",
        help="Push back instead of failing: this earlier task and every task after it "
        "(the gate included) go back to pending.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Reject a waiting approval gate: on resume the gate fails (and is not retried).
    With --rewind-to, the run goes back to an earlier task instead, and the gate asks
    again when the run reaches it (refused while a runner runs).

    Examples:

    \b
      workflow_cli reject ID --as bob --comment "too expensive"
      workflow_cli reject ID --as bob --rewind-to request --comment "fix the numbers"
    """
    _decide(ctx, instance, task, by, comment, "rejected", as_json, rewind_to=rewind_to)


def reassign_command(
    ctx: typer.Context,
    instance: str = typer.Argument(..., help=INSTANCE_HELP),
    task: str = typer.Argument(None, help=TASK_HELP),
    to: str = typer.Option(..., "--to", help="Who decides instead."),
    by: str = typer.Option(None, "--as", help="Who hands it on (default: the OS user)."),
    comment: str = typer.Option(None, "--comment", help="Why (kept in the history)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Hand a waiting gate on to someone else. A current approver puts NAME in their own
    place; an admin (approvals.admins in workflow_cli.yaml) adds NAME. Recorded.

    Examples:

    \b
      workflow_cli reassign ID --to carol --as bob --comment "on leave"
    """
    from workflow_cli.engine.approvals import approval_settings, reassign

    app = app_context(ctx)
    instance_id = app.workspace.resolve_instance_id(instance)
    settings = approval_settings(app.workspace)
    name = _acting_as(app, by)
    task_id, state = reassign(
        app.workspace,
        instance_id,
        task,
        to=to,
        by=name,
        comment=comment,
        settings=settings,
        clock=app.clock,
    )
    approvers = (state["tasks"][task_id].get("waiting_for") or {}).get("approvers") or []
    if as_json:
        print_json(
            {"id": instance_id, "task": task_id, "to": to, "by": name, "approvers": approvers}
        )
        return
    typer.echo(f"{instance_id}: {task_id} reassigned to {to} by {name}")
    typer.echo(f"  approvers now: {', '.join(approvers)}")


def approvals_command(
    ctx: typer.Context,
    for_name: str = typer.Option(None, "--for", help="Only gates this person may decide."),
    overdue: bool = typer.Option(False, "--overdue", help="Only gates past their deadline."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The inbox: every approval gate waiting across the workspace, oldest first, with
    its message, approvers, level, decisions so far, waiting since and deadline. Piped,
    the rows are tab-separated with a header, every value whole.

    Examples:

    \b
      workflow_cli approvals
      workflow_cli approvals --for bob --json
      workflow_cli approvals --overdue
    """
    app = app_context(ctx)
    gates = app.api.approvals(for_name=for_name, overdue=overdue)
    if as_json:
        print_json(gates)
        return
    if not gates:
        typer.echo("no approvals waiting" + (f" for {for_name}" if for_name else ""))
        return
    if sys.stdout.isatty():
        _print_gates(gates, utc=app.utc)
        return
    from workflow_cli.cli.rows import Column, print_rows

    columns = [
        Column(name)
        for name in (
            "instance", "task", "level", "approvers", "needs", "decided", "waiting since",
            "deadline", "message",
        )
    ]  # fmt: skip
    print_rows(
        columns,
        [
            [
                gate["instance"],
                gate["task"],
                gate["level"],
                ", ".join(gate["approvers"]),
                gate["required"],
                ", ".join(f"{d['decision']} by {d['by']}" for d in gate["decisions"]),
                gate["waiting_since"],
                (gate["deadline"] or "") + (" OVERDUE" if gate["overdue"] else ""),
                gate["message"] or "",
            ]
            for gate in gates
        ],
        terminal=False,
    )


def _print_gates(gates: list[dict[str, Any]], *, utc: bool) -> None:
    """The gates for a person at a terminal: a few lines each, nothing cut."""
    from workflow_cli.formats import format_time

    for gate in gates:
        late = "  OVERDUE" if gate["overdue"] else ""
        typer.echo(f"{gate['instance']}  {gate['task']}  level {gate['level']}{late}")
        if gate["message"]:
            typer.echo(f"  {gate['message']}")
        decided = ", ".join(f"{d['decision']} by {d['by']}" for d in gate["decisions"])
        typer.echo(
            f"  approvers: {', '.join(gate['approvers'])} (needs {gate['required']})"
            + (f"; so far: {decided}" if decided else "")
        )
        typer.echo(
            f"  waiting since {format_time(gate['waiting_since'], utc=utc)}"
            + (
                f", deadline {format_time(gate['deadline'], utc=utc)}"
                if gate["deadline"]
                else ", no deadline"
            )
        )


def print_timers(report: TickReport, resumed: dict[str, str]) -> None:
    """What a tick did with timers, for a person."""
    count = sum(1 for events in report.fired.values() for e in events if e["type"] == "timer_fired")
    typer.echo(f"{count} timer(s) fired")
    for instance_id, events in report.fired.items():
        for event in events:
            if event["type"] == "timer_fired":
                typer.echo(
                    f"  {instance_id}: {event['kind']} of {event['target']}"
                    f" (due {event['due']}, fired {event['fired_at']})"
                )
            elif event["type"] == "approval_escalated":
                typer.echo(
                    f"  {instance_id}: {event['task']} escalated to level {event['level']}"
                    f" ({', '.join(event['approvers'])})"
                )
            elif event["type"] == "approval_recorded":
                typer.echo(f"  {instance_id}: {event['task']} {event['decision']} by deadline")
    for instance_id in report.to_resume:
        if instance_id in resumed:
            typer.echo(f"  {instance_id}: resumed, now {resumed[instance_id]}")
        else:
            typer.echo(f"  go on with: workflow_cli resume {instance_id}")
    for instance_id, message in report.errors.items():
        typer.echo(f"  {instance_id}: {message}", err=True)


def resume_decided(app: AppContext, instance_ids: list[str]) -> dict[str, str]:
    """Run each instance (one after another) until it completes, fails or waits again;
    its state after, or the error that kept it from running."""
    from workflow_cli.engine import lifecycle
    from workflow_cli.errors import WorkflowCliError
    from workflow_cli.monitor.session import monitored_run

    states: dict[str, str] = {}
    for instance_id in instance_ids:
        try:
            with monitored_run(app.workspace, instance_id, app.clock, None) as monitored:
                outcome = lifecycle.run(
                    app.workspace, instance_id, clock=app.clock, reporter=monitored
                )
            states[instance_id] = outcome.state
        except WorkflowCliError as exc:
            states[instance_id] = f"not resumed: {exc.message}"
    return states
