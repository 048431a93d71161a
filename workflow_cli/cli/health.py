"""``health`` and ``alerts``: how the workspace and its instances are doing."""

from __future__ import annotations

from typing import Any

import typer

from workflow_cli.cli.context import AppContext, app_context, check_seconds, print_json
from workflow_cli.errors import NotFoundError, UsageError
from workflow_cli.monitor.explain import PART_TITLES as _PART_TITLES
from workflow_cli.monitor.explain import explain_part

_LISTED = 10  # stuck runs and approvals listed in the text view (--json has them all)
_LEVEL_STYLE = {"healthy": "green", "warning": "yellow", "critical": "red"}


def health_command(
    ctx: typer.Context,
    instance: str = typer.Argument(
        None, help="Instance id (or a unique prefix); without one, the whole workspace."
    ),
    explain: bool = typer.Option(
        False, "--explain", help="Break the instance's score into its parts, with the numbers."
    ),
    stuck_after: float = typer.Option(
        None,
        "--stuck-after",
        min=0.0,
        help="Seconds without progress after which a running instance looks stuck "
        "(default 900, or monitoring.stuck_after in workflow_cli.yaml).",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the health of the workspace, or of one instance.

    The workspace view: instances by state, health scores by level (critical below 50,
    warning below 70, healthy from 70), runs that look stuck, approvals waiting and for
    how long, the machine's CPU and memory and the workspace disk's free space. It also
    writes monitoring/health.json and monitoring/metrics.prom.

    With an instance id: its score (0-100) and level, from monitoring/instances/ID.json
    when nothing has changed since it was written, else rescored now and written there;
    --explain shows each part of the score and the
    figures behind it.

    Examples:
      workflow_cli health
      workflow_cli health sequential_pipeline-20261203-1015 --explain"""
    app = app_context(ctx)
    check_seconds("--stuck-after", stuck_after, finite=True)  # it is written down
    if instance is None:
        if explain:
            raise UsageError("--explain needs an instance id: workflow_cli health ID --explain")
        from workflow_cli.monitor.summary import workspace_health

        summary = workspace_health(app.workspace, app.clock, stuck_after=stuck_after)
        if as_json:
            print_json(summary)
        else:
            _render_workspace(app, summary)
        return
    if stuck_after is not None:
        raise UsageError("--stuck-after applies to the workspace view (no instance id)")
    from workflow_cli.monitor.health import current_health

    instance_id = app.workspace.resolve_instance_id(instance)
    record = current_health(app.workspace, instance_id, app.clock)
    if as_json:
        print_json(record)
        return
    _render_instance(app, record, explain)


def alerts_command(
    ctx: typer.Context,
    level: str = typer.Option(
        None, "--level", help="Only alerts of this level: warning, critical."
    ),
    instance: str = typer.Option(
        None, "--instance", help="Only alerts of this instance (or prefix)."
    ),
    since: str = typer.Option(
        None, "--since", help="Only alerts since an age (30s, 15m, 2h, 7d, 1w) or an ISO time."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the alerts recorded in monitoring/alerts.jsonl, oldest first: resource
    thresholds crossed during runs, runs past their expected duration, and health scores
    that fell to warning or critical.

    Examples:
      workflow_cli alerts --since 1d
      workflow_cli alerts --level critical --json"""
    from workflow_cli.monitor.alerts import parse_since, read_alerts

    app = app_context(ctx)
    moment = parse_since(since, app.clock()) if since is not None else None
    instance_id = None
    if instance is not None:
        # An alert may outlive its instance: an exact id is taken as it is.
        try:
            instance_id = app.workspace.resolve_instance_id(instance)
        except NotFoundError:
            instance_id = instance
    alerts = read_alerts(app.workspace, level=level, instance=instance_id, since=moment)
    if as_json:
        print_json(alerts)
        return
    console = app.console()
    if not alerts:
        console.print("no alerts")
        return
    from rich.markup import escape

    from workflow_cli.cli.rows import Column, print_rows
    from workflow_cli.formats import format_time

    rows: list[list[object]] = []
    markup: list[list[str]] = []
    for alert in alerts:
        style = _LEVEL_STYLE.get(str(alert.get("level", "")), "")
        level = escape(str(alert.get("level")))
        rows.append(
            [
                format_time(alert.get("time"), utc=app.utc),
                alert.get("level"),
                alert.get("instance", ""),
                alert.get("task") or "",
                alert.get("message", ""),
            ]
        )
        markup.append(["", f"[{style}]{level}[/{style}]" if style else "", "", "", ""])
    columns = [
        Column("time", drop=1),
        Column("level"),
        Column("instance", whole=True),
        Column("task"),
        Column("what"),
    ]
    print_rows(columns, rows, markup=markup)


def _render_workspace(app: AppContext, summary: dict[str, Any]) -> None:
    from rich.markup import escape

    console = app.console()
    instances = summary["instances"]
    states = ", ".join(f"{n} {s}" for s, n in instances["by_state"].items() if n)
    console.print(
        f"[bold]{escape(str(summary['workspace']))}[/bold]  {instances['total']} instances"
        + (f": {states}" if states else "")
    )
    health = summary["health"]
    levels = ", ".join(
        f"[{_LEVEL_STYLE[lv]}]{n} {lv}[/{_LEVEL_STYLE[lv]}]" for lv, n in health["by_level"].items()
    )
    average = f" (average {health['average']:g})" if health["average"] is not None else ""
    console.print(f"health: {levels}{average}")
    low = [s for s in health["lowest"] if s["level"] != "healthy"]
    if low:
        console.print("lowest scores:")
        width = max(len(item["id"]) for item in low)
        for item in low:
            style = _LEVEL_STYLE[item["level"]]
            console.print(
                f"  {escape(item['id']):<{width}}  [{style}]{item['score']:>5g} {item['level']:<8}"
                f"[/{style}]  {escape(item['state']):<9}  {escape(str(item['template'] or ''))}"
            )
    if summary["stuck"]:
        console.print(f"[red]stuck ({len(summary['stuck'])}):[/red]")
        for item in summary["stuck"][:_LISTED]:
            console.print(f"  {escape(item['id'])}: {escape(str(item['reason']))}")
        _more(app, len(summary["stuck"]))
    else:
        console.print("stuck: none")
    if summary["approvals"]:
        overdue = summary.get("approvals_overdue", 0)
        late = f", {overdue} overdue: run 'workflow_cli tick'" if overdue else ""
        console.print(f"approvals waiting ({len(summary['approvals'])}{late}, longest first):")
        for item in summary["approvals"][:_LISTED]:
            console.print(
                f"  {escape(item['id'])} {escape(str(item['task']))}: waiting"
                f" {_age(item['waiting_seconds'])} for one of"
                f" {escape(', '.join(str(a) for a in item['approvers']))}"
            )
        _more(app, len(summary["approvals"]))
    else:
        console.print("approvals waiting: none")
    for host, circuit in sorted(summary["circuits"].items()):
        if circuit.get("state") in ("open", "half_open"):
            console.print(
                f"[red]circuit {circuit['state'].replace('_', '-')}[/red] {escape(host)}: "
                f"{circuit.get('failures')} failures in a row since"
                f" {escape(str(circuit.get('opened_at', ''))[:19])}"
                f" (the last: {escape(str(circuit.get('last_error')))})"
            )
    for item in summary["unreadable"]:
        console.print(f"[red]unreadable[/red] {escape(item['id'])}: {escape(str(item['error']))}")
    machine = summary["machine"]
    console.print(
        f"machine: cpu {machine['cpu']:.0%}  memory {machine['memory']:.0%} "
        f"({_bytes(machine['memory_available'])} available)  workspace disk "
        f"{_bytes(machine['disk_free'])} free ({machine['disk']:.0%} used)"
    )
    alerts = summary["alerts"]
    if any(alerts.values()):
        console.print(
            f"alerts: {alerts['warning']} warning, {alerts['critical']} critical "
            "(workflow_cli alerts)"
        )


def _more(app: AppContext, count: int) -> None:
    if count > _LISTED:
        app.console().print(f"  … and {count - _LISTED} more (--json lists them all)")


def _render_instance(app: AppContext, record: dict[str, Any], explain: bool) -> None:
    from rich.markup import escape

    console = app.console()
    style = _LEVEL_STYLE[record["level"]]
    console.print(
        f"[bold]{escape(record['instance'])}[/bold]  template {escape(str(record['template']))}"
        f"  {escape(record['state'])}  "
        f"health [{style}]{record['score']:g} {record['level']}[/{style}]"
    )
    parts = record["parts"]
    if not explain:
        console.print(
            "  "
            + "  ".join(f"{_PART_TITLES[name]} {part['score']:g}" for name, part in parts.items())
            + "   (--explain for the figures)"
        )
        return
    for name, part in parts.items():
        console.print(
            f"  [bold]{_PART_TITLES[name]:<19}[/bold] {part['score']:>6g} x {part['weight']:.2f}"
            f" = {part['weighted']:g}"
        )
        for line in explain_part(name, part["figures"]):
            console.print(f"      {escape(line)}")
    formula = " + ".join(f"{p['weighted']:g}" for p in parts.values())
    console.print(
        f"  score = {formula} = {record['score']:g}  "
        "(critical below 50, warning below 70, healthy from 70)"
    )


def _age(seconds: float | None) -> str:
    from workflow_cli.formats import format_duration

    return "?" if seconds is None else format_duration(seconds)


def _bytes(value: float | None) -> str:
    from workflow_cli.formats import format_size

    return "?" if value is None else format_size(value)
