"""The report's page: what `collect_report` gathered, put into the page template
(``page.html.j2``, styled by ``report.css``; both ship inside the package).

The template escapes every value it prints (Jinja2 autoescape, with the page's escaping:
quotes included). The drawings come in as SVG markup whose texts were escaped where
they were drawn. The page has no script and loads nothing; its Content-Security-Policy
forbids both."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflow_cli.errors import UsageError
from workflow_cli.formats import format_time
from workflow_cli.monitor.explain import PART_TITLES, explain_part
from workflow_cli.monitor.graph import NO_STATE_COLOURS, STATE_COLOURS
from workflow_cli.monitor.report.axis import TimeAxis, time_axis
from workflow_cli.monitor.report.collect import ReportData, collect_report
from workflow_cli.monitor.report.graph_svg import MAX_GRAPH_NODES, graph_svg, state_legend
from workflow_cli.monitor.report.resources_chart import (
    Sample,
    resources_svg,
    series_rows,
    timed_samples,
)
from workflow_cli.monitor.report.text import (
    MAX_TEXT,
    clip,
    format_bytes,
    format_score,
    format_seconds,
    short_time,
)
from workflow_cli.monitor.report.timeline_svg import (
    MAX_TIMELINE_ROWS,
    OUTCOME_COLOURS,
    OUTCOME_LABELS,
    timeline_svg,
)
from workflow_cli.store.journal import Clock
from workflow_cli.store.state import completed
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from jinja2 import Template

_LEVEL_COLOURS = {"healthy": "#16a34a", "warning": "#ca8a04", "critical": "#dc2626"}


def build_report(workspace: Workspace, ref: str, clock: Clock) -> tuple[str, str]:
    """The instance id that `ref` names, and the HTML page of its report."""
    instance_id = workspace.resolve_instance_id(ref)
    return instance_id, render_report(collect_report(workspace, instance_id, clock))


def write_report(path: Path, page: str) -> None:
    """Write the page to `path` (a whole file or none); an unwritable path is a UsageError."""
    from workflow_cli.store.files import write_atomic

    try:
        if path.is_dir():
            raise UsageError(f"cannot write the report to {path}: it is a folder")
        write_atomic(path, page.encode("utf-8"), durable=False, mode=None)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot write the report to {path}: {reason}") from exc


def render_report(data: ReportData) -> str:
    """The whole page for `data`."""
    from markupsafe import Markup

    template, css = _page_template()
    samples = timed_samples(data.history)
    timeline = data.timeline
    moments = [s.start for s in timeline.spans] + [s.end for s in timeline.spans]
    moments += [r.start for r in timeline.runs] + [r.end for r in timeline.runs]
    axis = time_axis(moments + [moment for moment, _ in samples])
    title = str(data.definition.get("name") or data.instance_id)
    return template.render(
        css=Markup(css),
        title=title,
        instance_id=data.instance_id,
        description=_description(data),
        cards=_cards(data),
        facts=_facts(data),
        params=[
            (name, clip(json.dumps(value, ensure_ascii=False), MAX_TEXT))
            for name, value in (data.state.get("params") or {}).items()
        ],
        graph=_graph(data),
        timeline=_timeline(data, axis),
        tasks=_tasks(data),
        approvals=[
            {**row, "time": short_time(row["time"]), "detail": clip(row["detail"], MAX_TEXT)}
            for row in data.approvals
        ],
        compensations=_compensations(data),
        health=_health(data),
        resources=_resources(samples, axis),
        generated=short_time(data.generated_at.isoformat()),
    )


def instance_parts(data: ReportData) -> dict[str, Any]:
    """The report's pieces that the web dashboard shows on an instance's page: the
    summary cards, the graph, the timeline and the task rows (drawings as markup)."""
    timeline = data.timeline
    moments = [s.start for s in timeline.spans] + [s.end for s in timeline.spans]
    moments += [r.start for r in timeline.runs] + [r.end for r in timeline.runs]
    return {
        "cards": _cards(data),
        "facts": _facts(data),
        "graph": _graph(data),
        "timeline": _timeline(data, time_axis(moments)),
        "tasks": _tasks(data),
    }


@cache
def _page_template() -> tuple[Template, str]:
    """The page template and the stylesheet, read from the package once."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    loader = PackageLoader("workflow_cli.monitor.report", ".")
    environment = Environment(
        loader=loader,
        autoescape=True,
        finalize=_escaped,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    css, _, _ = loader.get_source(environment, "report.css")
    return environment.get_template("page.html.j2"), css


def _escaped(value: Any) -> Any:
    """Every value the template prints, escaped as the page escapes text (``'`` as
    ``&#x27;``); markup (a drawing, the stylesheet, a macro's output) as it is, and
    nothing for None."""
    from markupsafe import Markup

    if value is None:
        return Markup("")
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


def _badge(state: Any) -> dict[str, str] | None:
    if not state:
        return None
    fill, stroke, ink = STATE_COLOURS.get(str(state), NO_STATE_COLOURS)
    return {"state": str(state), "fill": fill, "stroke": stroke, "ink": ink}


def _description(data: ReportData) -> str | None:
    description = data.definition.get("description")
    return clip(str(description), MAX_TEXT) if description else None


def _cards(data: ReportData) -> list[dict[str, Any]]:
    timeline = data.timeline
    done, total = completed(data.state), len(data.state["tasks"])
    health = "—"
    if data.health and isinstance(data.health.get("score"), int | float):
        health = format_score(data.health["score"])
    return [
        {"label": "state", "badge": _badge(data.state.get("state"))},
        {"label": "tasks completed", "value": f"{done} / {total}"},
        {"label": "task attempts", "value": sum(1 for s in timeline.spans if s.attempt)},
        {"label": "runs", "value": len(timeline.runs)},
        {
            "label": "run time",
            "value": format_seconds(timeline.run_seconds()) if timeline.runs else "—",
        },
        {"label": "health", "value": health},
    ]


def _facts(data: ReportData) -> list[tuple[str, str]]:
    state, definition = data.state, data.definition
    facts = [
        ("instance", state.get("id")),
        ("template", state.get("template")),
        ("workflow", f"{definition.get('id', '')} {definition.get('version', '')}"),
        ("created", short_time(state.get("created_at"))),
        ("finished", short_time(state.get("finished_at"))),
    ]
    if state.get("reason"):
        facts.append(("reason", state["reason"]))
    if parent := state.get("parent"):
        facts.append(("parent", f"{parent.get('instance')} (task {parent.get('task')})"))
    return [(name, clip(str(value), MAX_TEXT)) for name, value in facts if value]


def _graph(data: ReportData) -> dict[str, Any]:
    from markupsafe import Markup

    count = len(data.graph.nodes)
    if count > MAX_GRAPH_NODES:
        return {"too_many": True, "count": count, "limit": MAX_GRAPH_NODES}
    return {
        "too_many": False,
        "svg": Markup(graph_svg(data.graph)),
        "legend": state_legend(data.graph),
    }


def _timeline(data: ReportData, axis: TimeAxis | None) -> dict[str, Any] | None:
    from markupsafe import Markup

    timeline = data.timeline
    if not timeline.spans or axis is None:
        return None
    spans = timeline.spans[:MAX_TIMELINE_ROWS]
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.outcome] = counts.get(span.outcome, 0) + 1
    names = {task_id: node.name for task_id, node in data.graph.nodes.items()}
    return {
        "svg": Markup(timeline_svg(spans, timeline.runs, axis, names)),
        "legend": [
            {"colour": OUTCOME_COLOURS[o], "label": OUTCOME_LABELS[o], "count": n}
            for o, n in counts.items()
        ],
        "runs": bool(timeline.runs),
        "shown": len(spans),
        "total": len(timeline.spans),
    }


def _tasks(data: ReportData) -> list[dict[str, Any]]:
    rows = []
    for task_id, node in data.graph.nodes.items():
        task: Mapping[str, Any] = data.state["tasks"].get(task_id) or {}
        detail = ""
        if error := task.get("error"):
            detail = str(error.get("message", ""))
        elif task.get("state") == "skipped":
            detail = str(task.get("reason") or "")
        elif task.get("state") == "waiting":
            approvers = (task.get("waiting_for") or {}).get("approvers") or []
            detail = "waiting for " + (", ".join(map(str, approvers)) or "a decision")
        duration = task.get("duration")
        rows.append(
            {
                "id": task_id,
                "name": node.name if node.name != task_id else "",
                "badge": _badge(task.get("state")),
                "attempts": task.get("attempts", 0),
                "duration": format_seconds(duration) if duration is not None else "",
                "after": ", ".join(node.dependencies),
                "detail": clip(detail, MAX_TEXT),
            }
        )
    return rows


def _compensations(data: ReportData) -> list[dict[str, Any]]:
    """The compensations that ran (the approvals have a section of their own)."""
    rows = []
    for task_id, record in (data.state.get("compensations") or {}).items():
        if not isinstance(record, dict):
            continue
        error = record.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        rows.append(
            {
                "task": str(task_id),
                "state": str(record.get("state") or ""),
                "attempts": record.get("attempts", 0),
                "time": format_time(record.get("time")),
                "detail": clip(str(message or ""), MAX_TEXT),
            }
        )
    return rows


def _health(data: ReportData) -> dict[str, Any]:
    health = data.health or {}
    score = health.get("score")
    if data.health_error or not isinstance(score, int | float):
        return {"error": data.health_error, "score": None}
    level = str(health.get("level", ""))
    parts = health.get("parts")
    rows = []
    for name, part in parts.items() if isinstance(parts, dict) else []:
        if not isinstance(part, dict):
            continue
        part_score = part.get("score")
        row: dict[str, Any] = {"name": name, "score": None}
        if isinstance(part_score, int | float):
            fraction = min(max(part_score / 100, 0.0), 1.0)
            row.update(
                score=format_score(part_score),
                percent=f"{fraction * 100:.0f}",
                colour="#22c55e"
                if fraction >= 0.7
                else "#eab308"
                if fraction >= 0.5
                else "#ef4444",
            )
        weight = part.get("weight")
        row["weight"] = f"{weight * 100:.0f}%" if isinstance(weight, int | float) else ""
        row["title"] = PART_TITLES.get(name, name)
        row["lines"] = _explained(name, part.get("figures"))
        row["figures"] = (
            []
            if row["lines"]
            else [(key, clip(text, 300)) for key, text in _figures(part.get("figures"))]
        )
        rows.append(row)
    return {
        "error": None,
        "score": format_score(score),
        "level": level,
        "colour": _LEVEL_COLOURS.get(level, "#64748b"),
        "parts": rows,
    }


def _explained(name: str, figures: Any) -> list[str]:
    """A part's figures in the words of ``health --explain``; [] when they are not the
    figures this version writes (the raw figures are shown instead)."""
    if not isinstance(figures, dict):
        return []
    try:
        return [clip(line, 300) for line in explain_part(name, figures)]
    except (KeyError, TypeError, ValueError, AttributeError):
        return []


def _meter_colour(fraction: float) -> str:
    return "#22c55e" if fraction >= 0.7 else "#eab308" if fraction >= 0.5 else "#ef4444"


def _figures(figures: Any) -> list[tuple[str, str]]:
    """A part's figures as (key, text) pairs; nested objects flattened with their key as
    a prefix, empty values left out."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix} {key}".strip(), item)
        elif value is not None and value != [] and value != "":
            if prefix.endswith("rss") and isinstance(value, int | float):
                value = format_bytes(value)
            pairs.append((prefix.replace("_", " "), _figure(value)))

    walk("", figures)
    return pairs


def _figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str | int | bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return "; ".join(
            ", ".join(f"{k} {_figure(v)}" for k, v in item.items() if v is not None)
            for item in value
        )
    return json.dumps(value, ensure_ascii=False, default=str)


def _resources(samples: list[Sample], axis: TimeAxis | None) -> dict[str, Any] | None:
    from markupsafe import Markup

    if not samples or axis is None:
        return None
    return {
        "svg": Markup(resources_svg(samples, axis)),
        "count": len(samples),
        "span": format_seconds((samples[-1][0] - samples[0][0]).total_seconds()),
        "start": short_time(samples[0][0].isoformat()),
        "rows": series_rows(samples),
    }
