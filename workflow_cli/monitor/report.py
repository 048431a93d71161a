"""The HTML report of one instance: a single self-contained page with its task graph, a
Gantt timeline of every task attempt, its tasks, its health breakdown and its resource
history.

`collect_report` gathers what the page shows (definition, state, journal, health,
resource samples); `render_report` turns that into the page; `write_report` writes it.
Everything is drawn as inline SVG and styled by one inline stylesheet: the page has no
script and loads no font, stylesheet or image (its Content-Security-Policy forbids them
too), so it opens anywhere, with no network. Every text that comes from a definition, a
parameter, an error or an agent is HTML-escaped. Nothing here prints.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from workflow_cli.errors import UsageError, WorkflowCliError
from workflow_cli.monitor.graph import (
    NO_STATE_COLOURS,
    STATE_COLOURS,
    TaskGraph,
    build_graph,
    graph_layers,
)
from workflow_cli.store.journal import Clock, Event
from workflow_cli.store.state import State, progress
from workflow_cli.store.workspace import Workspace

# Beyond these sizes a drawing would be too large to read: the page says what it left out.
MAX_GRAPH_NODES = 400
MAX_TIMELINE_ROWS = 1500
MAX_TEXT = 2000

# Colours of the bars of the timeline, by how the attempt ended.
OUTCOME_COLOURS = {
    "completed": "#22c55e",
    "failed": "#ef4444",
    "retried": "#f59e0b",  # failed, and another attempt followed
    "running": "#3b82f6",
    "interrupted": "#94a3b8",  # its runner stopped or died before it ended
    "waiting": "#67e8f9",  # an approval gate or an event wait
}
OUTCOME_LABELS = {
    "completed": "completed",
    "failed": "failed",
    "retried": "failed, retried",
    "running": "running",
    "interrupted": "interrupted",
    "waiting": "waiting",
}
_END_EVENTS = {"task_completed": "completed", "task_failed": "failed", "task_retrying": "retried"}
_TASK_EVENTS = {"task_started", "task_skipped", "task_waiting", *_END_EVENTS}


@dataclass(frozen=True)
class AttemptSpan:
    """One bar of the timeline: an attempt of a task, or a time it spent waiting."""

    task: str
    attempt: int  # 0 for a waiting span
    start: datetime
    end: datetime
    outcome: str  # a key of OUTCOME_COLOURS
    duration: float | None = None  # as the runner measured it
    error: str | None = None


@dataclass(frozen=True)
class RunSpan:
    """One run of the instance, from run_started to run_ended (or to the end of the
    journal, for a run still going or whose runner died)."""

    number: int
    start: datetime
    end: datetime
    state: str | None  # the state run_ended recorded; None if it has not ended


@dataclass(frozen=True)
class Timeline:
    spans: list[AttemptSpan]
    runs: list[RunSpan]
    start: datetime | None
    end: datetime | None


@dataclass
class ReportData:
    """Everything the page shows, gathered by `collect_report`."""

    instance_id: str
    definition: dict[str, Any]
    state: State
    graph: TaskGraph
    timeline: Timeline
    generated_at: datetime
    health: dict[str, Any] | None = None
    health_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def parse_time(text: str) -> datetime:
    """A journal time (ISO 8601 with its UTC offset)."""
    return datetime.fromisoformat(text)


def read_timeline(events: list[Event], *, now: datetime, live: bool) -> Timeline:
    """Every task attempt, waiting time and run in `events` (a whole journal).

    An attempt lasts from its task_started to the event that ended it; an attempt the
    runner recorded at once (an inline action) gets the duration it measured. Attempts
    still open when their run ended, or when a new run began after a runner died, were
    interrupted. With `live` (a runner is executing the instance) what is still open is
    running and lasts until `now`.
    """
    spans: list[AttemptSpan] = []
    runs: list[RunSpan] = []
    open_attempts: dict[str, tuple[int, datetime]] = {}
    waiting: dict[str, datetime] = {}
    run_start: datetime | None = None
    last: datetime | None = None

    def close_open(at: datetime, outcome: str) -> None:
        for task, (number, start) in open_attempts.items():
            spans.append(AttemptSpan(task, number, start, max(at, start), outcome))
        open_attempts.clear()

    for event in events:
        kind = event.get("type")
        try:
            time = parse_time(str(event["time"]))
        except (KeyError, ValueError):
            continue
        task = event.get("task")
        if kind in _TASK_EVENTS and isinstance(task, str):
            if kind != "task_waiting" and task in waiting:
                spans.append(AttemptSpan(task, 0, waiting[task], time, "waiting"))
                del waiting[task]
            if kind == "task_started":
                if task in open_attempts:
                    number, start = open_attempts.pop(task)
                    spans.append(AttemptSpan(task, number, start, time, "interrupted"))
                open_attempts[task] = (int(event.get("attempt") or 0), time)
            elif kind in _END_EVENTS:
                duration = event.get("duration")
                seconds = float(duration) if isinstance(duration, int | float) else 0.0
                if task in open_attempts:
                    number, start = open_attempts.pop(task)
                else:
                    number, start = int(event.get("attempt") or 0), time
                    start -= timedelta(seconds=seconds)
                end = max(time, start + timedelta(seconds=seconds))
                error = event.get("error")
                message = error.get("message") if isinstance(error, dict) else None
                spans.append(
                    AttemptSpan(
                        task,
                        number,
                        start,
                        end,
                        _END_EVENTS[kind],
                        duration=seconds if duration is not None else None,
                        error=str(message) if message is not None else None,
                    )
                )
            elif kind == "task_waiting":
                waiting.setdefault(task, time)
        elif kind == "run_started":
            if run_start is not None and last is not None:  # the previous runner died
                close_open(last, "interrupted")
                runs.append(RunSpan(len(runs) + 1, run_start, last, None))
            run_start = time
        elif kind == "run_ended":
            close_open(time, "interrupted")
            if run_start is not None:
                runs.append(RunSpan(len(runs) + 1, run_start, time, str(event.get("state"))))
            run_start = None
        last = time
    final = max(now, last) if live and last is not None else last
    if final is not None:
        close_open(final, "running" if live else "interrupted")
        if run_start is not None:
            runs.append(RunSpan(len(runs) + 1, run_start, final, None))
        spans.extend(AttemptSpan(t, 0, start, final, "waiting") for t, start in waiting.items())
    spans.sort(key=lambda s: (s.start, s.end))
    starts = [s.start for s in spans] + [r.start for r in runs]
    ends = [s.end for s in spans] + [r.end for r in runs]
    return Timeline(spans, runs, min(starts, default=None), max(ends, default=None))


def collect_report(workspace: Workspace, instance_id: str, clock: Clock) -> ReportData:
    """What the report of `instance_id` shows (the id must be resolved already)."""
    from workflow_cli.monitor.health import current_health
    from workflow_cli.monitor.resources import read_history
    from workflow_cli.store.instances import load_definition, load_state, open_journal
    from workflow_cli.store.runlock import runner_alive

    definition = load_definition(workspace, instance_id)
    journal = open_journal(workspace, instance_id, clock)
    state = load_state(journal)
    journal.seek(0, 0)
    events = journal.read_new()
    journal.close()
    now = clock()
    live = state["state"] == "running" and runner_alive(workspace.instance_dir(instance_id))
    graph = build_graph(
        definition,
        kind="instance",
        ref=instance_id,
        source=str(workspace.instance_dir(instance_id) / "definition.json"),
        task_states=state["tasks"],
        state=state["state"],
    )
    data = ReportData(
        instance_id=instance_id,
        definition=definition,
        state=state,
        graph=graph,
        timeline=read_timeline(events, now=now, live=live),
        generated_at=now,
    )
    try:
        data.health = current_health(workspace, instance_id, clock)
    except WorkflowCliError as exc:
        data.health_error = exc.message
    data.history = [s for s in read_history(workspace, instance_id) if isinstance(s, dict)]
    return data


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
        write_atomic(path, page.encode("utf-8"), durable=False)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot write the report to {path}: {reason}") from exc


# -- the page ----------------------------------------------------------------------------


def _e(value: Any) -> str:
    """`value` as text escaped for HTML (and SVG inside HTML), quotes included."""
    return html.escape(str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "…"


def format_seconds(seconds: float) -> str:
    """A duration for people: 340 ms, 2.5 s, 3 min 05 s, 2 h 07 min."""
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min"


def _short_time(text: str | None) -> str:
    return (text or "")[:19].replace("T", " ")


def _badge(state: str | None) -> str:
    if not state:
        return ""
    fill, stroke, ink = STATE_COLOURS.get(state, NO_STATE_COLOURS)
    return (
        f'<span class="badge" style="background:{fill};border-color:{stroke};color:{ink}">'
        f"{_e(state)}</span>"
    )


def render_report(data: ReportData) -> str:
    """The whole page for `data`."""
    state = data.state
    title = data.definition.get("name") or data.instance_id
    done, total = progress(state)
    samples = _samples(data.history)
    moments = [s.start for s in data.timeline.spans] + [s.end for s in data.timeline.spans]
    moments += [r.start for r in data.timeline.runs] + [r.end for r in data.timeline.runs]
    axis = time_axis(moments + [moment for moment, _ in samples])
    sections = [
        _header(data, str(title), done, total),
        _section("Task graph", "graph", _graph_section(data.graph)),
        _section("Timeline", "timeline", _timeline_section(data, axis)),
        _section("Tasks", "tasks", _tasks_section(data)),
        _section("Health", "health", _health_section(data)),
        _section("Resources", "resources", _resources_section(samples, axis)),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)} · {_e(data.instance_id)} · workflow_cli report</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(sections)
        + f"\n<footer>Report generated {_e(_short_time(data.generated_at.isoformat()))} "
        f"UTC by workflow_cli from the instance's journal.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def _section(heading: str, anchor: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(heading)}</h2>\n{body}\n</section>'


def _header(data: ReportData, title: str, done: int, total: int) -> str:
    state = data.state
    timeline = data.timeline
    attempts = sum(1 for s in timeline.spans if s.outcome != "waiting")
    run_seconds = sum((run.end - run.start).total_seconds() for run in timeline.runs)
    elapsed = format_seconds(run_seconds) if timeline.runs else "—"
    health = "—"
    if data.health and isinstance(data.health.get("score"), int | float):
        health = f"{_format_score(data.health['score'])}"
    cards = [
        ("state", _badge(state.get("state"))),
        ("tasks done", f"{done} / {total}"),
        ("task attempts", str(attempts)),
        ("runs", str(len(timeline.runs))),
        ("run time", _e(elapsed)),
        ("health", _e(health)),
    ]
    facts = [
        ("instance", state.get("id")),
        ("template", state.get("template")),
        ("workflow", f"{data.definition.get('id', '')} {data.definition.get('version', '')}"),
        ("created", _short_time(state.get("created_at"))),
        ("finished", _short_time(state.get("finished_at"))),
    ]
    if state.get("reason"):
        facts.append(("reason", state["reason"]))
    if state.get("parent"):
        parent = state["parent"]
        facts.append(("parent", f"{parent.get('instance')} (task {parent.get('task')})"))
    rows = "".join(
        f"<tr><th>{_e(name)}</th><td>{_e(_clip(str(value), MAX_TEXT))}</td></tr>"
        for name, value in facts
        if value
    )
    params = state.get("params") or {}
    param_rows = "".join(
        f"<tr><th>{_e(name)}</th><td><code>"
        f"{_e(_clip(json.dumps(value, ensure_ascii=False), MAX_TEXT))}</code></td></tr>"
        for name, value in params.items()
    )
    params_html = (
        f'<table class="facts"><caption>parameters</caption>{param_rows}</table>'
        if param_rows
        else '<p class="note">No parameters.</p>'
    )
    card_html = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="value">{value}</div></div>'
        for label, value in cards
    )
    description = data.definition.get("description")
    description_html = (
        f'<p class="description">{_e(_clip(str(description), MAX_TEXT))}</p>' if description else ""
    )
    return (
        f'<header>\n<p class="kicker">workflow_cli instance report</p>\n'
        f"<h1>{_e(title)}</h1>\n{description_html}\n"
        f'<div class="cards">{card_html}</div>\n'
        f'<div class="columns"><table class="facts">{rows}</table>{params_html}</div>\n'
        "</header>"
    )


# -- the graph ---------------------------------------------------------------------------

_NODE_W = 204
_MIN_NODE_W = 160
_MIN_COL_GAP = 40
_NODE_H = 60
_COL_GAP = 64
_ROW_GAP = 14
_MARGIN = 12


def _graph_section(graph: TaskGraph) -> str:
    if len(graph.nodes) > MAX_GRAPH_NODES:
        return (
            f'<p class="note">The graph has {len(graph.nodes)} tasks, too many to draw '
            f"(at most {MAX_GRAPH_NODES}); the task table below lists them. "
            "<code>workflow_cli graph ID --format dot</code> gives it for Graphviz.</p>"
        )
    return f'<div class="scroll">{graph_svg(graph)}</div>\n{_state_legend(graph)}'


def _state_legend(graph: TaskGraph) -> str:
    states = list(dict.fromkeys(n.state for n in graph.nodes.values() if n.state))
    items = []
    for state in states:
        fill, stroke, _ = STATE_COLOURS.get(state, NO_STATE_COLOURS)
        count = sum(1 for n in graph.nodes.values() if n.state == state)
        items.append(
            f'<span class="key"><span class="swatch" style="background:{fill};'
            f'border-color:{stroke}"></span>{_e(state)} ({count})</span>'
        )
    return f'<p class="legend">{"".join(items)}</p>' if items else ""


def wrap_text(text: str, width: int, lines: int) -> list[str]:
    """`text` in at most `lines` lines of at most `width` characters: broken between
    words (inside a word longer than a line), the last line clipped with "…"."""
    words = text.split()
    out: list[str] = []
    line = ""
    for word in words:
        while len(word) > width and not line:
            out.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    if len(out) > lines:
        out = [*out[: lines - 1], _clip(" ".join(out[lines - 1 :]), width)]
    return out or [""]


def graph_svg(graph: TaskGraph) -> str:
    """The task graph as an SVG drawing: a column per dependency depth, left to right.

    Nodes narrow (down to a minimum) so that a deeper graph still fits the page's width,
    names take up to two lines, and a drawing somewhat wider than the page is scaled down
    to fit it; a much wider one keeps its size and scrolls sideways."""
    layers = graph_layers(graph)
    columns = len(layers)
    room = _CHART_W - 2 * _MARGIN
    gap = _COL_GAP if columns * (_NODE_W + _COL_GAP) - _COL_GAP <= room else _MIN_COL_GAP
    node_w = min(_NODE_W, max(_MIN_NODE_W, (room - (columns - 1) * gap) // columns))
    name_chars = int((node_w - 18) / 7.2)
    detail_chars = int((node_w - 18) / 6.0)
    tallest = max(len(layer) for layer in layers)
    height = 2 * _MARGIN + tallest * _NODE_H + (tallest - 1) * _ROW_GAP
    width = 2 * _MARGIN + columns * node_w + (columns - 1) * gap
    where: dict[str, tuple[float, float]] = {}
    for column, layer in enumerate(layers):
        column_height = len(layer) * _NODE_H + (len(layer) - 1) * _ROW_GAP
        top = (height - column_height) / 2
        for row, task_id in enumerate(layer):
            x = float(_MARGIN + column * (node_w + gap))
            where[task_id] = (x, top + row * (_NODE_H + _ROW_GAP))
    fit = ' style="max-width:100%;height:auto"' if width <= _CHART_W * 1.3 else ""
    parts = [
        f'<svg class="graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f'{fit} role="img" aria-label="task graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#94a3b8"/></marker></defs>',
    ]
    for dep, task_id in graph.edges:
        x1, y1 = where[dep]
        x2, y2 = where[task_id]
        x1 += node_w
        y1 += _NODE_H / 2
        y2 += _NODE_H / 2
        bend = (x2 - x1) / 2
        parts.append(
            f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} '
            f'{x2 - bend:.1f},{y2:.1f} {x2 - 2:.1f},{y2:.1f}" marker-end="url(#arrow)">'
            f"<title>{_e(dep)} → {_e(task_id)}</title></path>"
        )
    for task_id, node in graph.nodes.items():
        x, y = where[task_id]
        fill, stroke, ink = STATE_COLOURS.get(node.state or "", NO_STATE_COLOURS)
        # Under the name: the task's id when the name is not the id, then its state.
        facts = [task_id] if node.name != task_id else []
        if node.state:
            facts.append(node.state)
            if node.attempts > 1:
                facts.append(f"{node.attempts} attempts")
        detail = " · ".join(facts)
        tooltip = f"{node.name} ({task_id})" if node.name != task_id else task_id
        if node.state:
            tooltip += f": {node.state}"
        name_lines = wrap_text(node.name, name_chars, 2)
        block = 15 * len(name_lines) + (14 if detail else 0)
        baseline = y + (_NODE_H - block) / 2 + 11
        parts.append(
            f'<g class="node" data-task="{_e(task_id)}">'
            f"<title>{_e(tooltip)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{_NODE_H}" rx="8" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text class="name" fill="{ink}">'
        )
        for index, line in enumerate(name_lines):
            parts.append(
                f'<tspan x="{x + 10:.1f}" y="{baseline + 15 * index:.1f}">{_e(line)}</tspan>'
            )
        parts.append("</text>")
        if detail:
            parts.append(
                f'<text x="{x + 10:.1f}" y="{baseline + 15 * len(name_lines) + 1:.1f}" '
                f'class="detail" fill="{ink}">{_e(_clip(detail, detail_chars))}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# -- the timeline ------------------------------------------------------------------------

_CHART_W = 1100
_LABEL_W = 230
_ROW_H = 22
_AXIS_H = 30
_PLOT_W = _CHART_W - _LABEL_W - 24


def _timeline_section(data: ReportData, axis: TimeAxis | None) -> str:
    timeline = data.timeline
    if not timeline.spans or axis is None:
        return '<p class="note empty">No task has run yet: there are no attempts to draw.</p>'
    names = {task_id: node.name for task_id, node in data.graph.nodes.items()}
    note = ""
    spans = timeline.spans
    if len(spans) > MAX_TIMELINE_ROWS:
        note = (
            f'<p class="note">Showing the first {MAX_TIMELINE_ROWS} of {len(spans)} attempts.</p>'
        )
        spans = spans[:MAX_TIMELINE_ROWS]
    used = list(dict.fromkeys(s.outcome for s in spans))
    legend = "".join(
        f'<span class="key"><span class="swatch" style="background:{OUTCOME_COLOURS[o]}">'
        f"</span>{_e(OUTCOME_LABELS[o])} ({sum(1 for s in spans if s.outcome == o)})</span>"
        for o in used
    )
    if timeline.runs:
        legend += '<span class="key"><span class="swatch run"></span>a run of the runner</span>'
    svg = timeline_svg(spans, timeline.runs, axis, names)
    return f'<div class="scroll">{svg}</div>\n<p class="legend">{legend}</p>\n{note}'


@dataclass(frozen=True)
class TimeAxis:
    """The time window both charts share: from `origin`, `total` seconds, ticks every
    `step` seconds; x positions run from the end of the label column to the right margin."""

    origin: datetime
    total: float
    step: float

    def x(self, moment: datetime) -> float:
        return _LABEL_W + (moment - self.origin).total_seconds() / self.total * _PLOT_W

    def ticks(self) -> list[tuple[float, str]]:
        """(x, label) of each tick."""
        count = round(self.total / self.step)
        return [
            (_LABEL_W + i * self.step / self.total * _PLOT_W, _tick_label(i * self.step, self.step))
            for i in range(count + 1)
        ]


def time_axis(moments: list[datetime]) -> TimeAxis | None:
    """The axis covering `moments`, widened to a whole number of round steps."""
    if not moments:
        return None
    origin = min(moments)
    total = max((max(moments) - origin).total_seconds(), 0.001)
    step = _nice_step(total)
    return TimeAxis(origin, math.ceil(total / step - 1e-9) * step, step)


def _samples(history: list[dict[str, Any]]) -> list[tuple[datetime, dict[str, Any]]]:
    """The resource samples with a readable time, oldest first."""
    samples: list[tuple[datetime, dict[str, Any]]] = []
    for sample in history:
        try:
            samples.append((parse_time(str(sample["time"])), sample))
        except (KeyError, ValueError):
            continue
    samples.sort(key=lambda pair: pair[0])
    return samples


def _nice_step(span: float, ticks: int = 8) -> float:
    """A round tick step giving at most about `ticks` ticks over `span` seconds."""
    raw = span / ticks
    if raw >= 60:
        for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
            if step >= raw:
                return float(step)
        return 86400.0 * math.ceil(raw / 86400)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 0.001
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _tick_label(seconds: float, step: float) -> str:
    if step < 1:
        decimals = max(0, -math.floor(math.log10(step)))
        return f"{seconds:.{decimals}f}s"
    if seconds < 60 or (step < 60 and seconds < 600):
        return f"{seconds:.0f}s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours}h{rest:02d}m" if rest else f"{hours}h"


def timeline_svg(
    spans: list[AttemptSpan], runs: list[RunSpan], axis: TimeAxis, names: dict[str, str]
) -> str:
    """A Gantt chart: one row per attempt (and per waiting time), runs as shaded bands."""
    height = _AXIS_H + len(spans) * _ROW_H + 8
    x_of = axis.x
    parts = [
        f'<svg class="timeline" width="{_CHART_W}" height="{height}" '
        f'viewBox="0 0 {_CHART_W} {height}" role="img" aria-label="timeline of task attempts">'
    ]
    for run in runs:
        x1, x2 = x_of(run.start), x_of(run.end)
        ended = f"ended {run.state}" if run.state else "did not end"
        parts.append(
            f'<rect class="run" x="{x1:.1f}" y="{_AXIS_H - 4}" width="{max(x2 - x1, 1):.1f}" '
            f'height="{height - _AXIS_H}"><title>run {run.number}: '
            f"{_e(format_seconds((run.end - run.start).total_seconds()))}, {_e(ended)}"
            f"</title></rect>"
        )
    ticks = axis.ticks()
    for index, (x, label) in enumerate(ticks):
        anchor = "start" if index == 0 else "end" if index == len(ticks) - 1 else "middle"
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_AXIS_H - 6}" x2="{x:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{x:.1f}" y="{_AXIS_H - 12}" text-anchor="{anchor}">'
            f"{_e(label)}</text>"
        )
    for row, span in enumerate(spans):
        y = _AXIS_H + row * _ROW_H
        name = names.get(span.task, span.task)
        suffix = " · waiting" if span.outcome == "waiting" else f" · #{span.attempt}"
        label = _clip(name, 34 - len(suffix)) + suffix
        x1, x2 = x_of(span.start), x_of(span.end)
        width = max(x2 - x1, 2.0)
        seconds = (
            span.duration if span.duration is not None else (span.end - span.start).total_seconds()
        )
        tooltip = (
            f"{name} ({span.task})"
            + ("" if span.outcome == "waiting" else f", attempt {span.attempt}")
            + f": {OUTCOME_LABELS[span.outcome]}, {format_seconds(seconds)}, "
            f"from {span.start.time().isoformat(timespec='milliseconds')}"
        )
        if span.error:
            tooltip += f"\n{_clip(span.error, 500)}"
        parts.append(
            f'<g class="attempt {span.outcome}" data-task="{_e(span.task)}">'
            f"<title>{_e(tooltip)}</title>"
            f'<text class="row-label" x="{_LABEL_W - 10}" y="{y + 15}" text-anchor="end">'
            f"{_e(label)}</text>"
            f'<rect x="{x1:.1f}" y="{y + 4}" width="{width:.1f}" height="{_ROW_H - 8}" rx="3" '
            f'fill="{OUTCOME_COLOURS[span.outcome]}"/>'
        )
        text = format_seconds(seconds)
        if x1 + width + 8 + 7 * len(text) < _CHART_W:
            parts.append(
                f'<text class="bar-label" x="{x1 + width + 5:.1f}" y="{y + 15}">{_e(text)}</text>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# -- the tasks ---------------------------------------------------------------------------


def _tasks_section(data: ReportData) -> str:
    rows = []
    for task_id, node in data.graph.nodes.items():
        task = data.state["tasks"].get(task_id) or {}
        detail = ""
        if task.get("error"):
            detail = str(task["error"].get("message", ""))
        elif task.get("state") == "skipped":
            detail = str(task.get("reason") or "")
        elif task.get("state") == "waiting":
            approvers = (task.get("waiting_for") or {}).get("approvers") or []
            detail = "waiting for " + (", ".join(map(str, approvers)) or "a decision")
        duration = task.get("duration")
        rows.append(
            "<tr>"
            f"<td><code>{_e(task_id)}</code></td>"
            f"<td>{_e(node.name) if node.name != task_id else ''}</td>"
            f"<td>{_badge(task.get('state'))}</td>"
            f'<td class="num">{_e(task.get("attempts", 0))}</td>'
            f'<td class="num">{_e(format_seconds(duration)) if duration is not None else ""}</td>'
            f"<td>{_e(', '.join(node.dependencies))}</td>"
            f'<td class="detail">{_e(_clip(detail, MAX_TEXT))}</td>'
            "</tr>"
        )
    return (
        '<div class="scroll"><table class="grid-table"><thead><tr><th>task</th><th>name</th>'
        "<th>state</th><th>attempts</th><th>duration</th><th>after</th><th>detail</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


# -- health ------------------------------------------------------------------------------


def _format_score(score: float) -> str:
    """A health score (0 to 100) as shown: 87.5, 100."""
    return f"{round(score, 1):g}"


def _health_section(data: ReportData) -> str:
    if data.health_error:
        return f'<p class="note">Health is not available: {_e(data.health_error)}</p>'
    health = data.health or {}
    score = health.get("score")
    if not isinstance(score, int | float):
        return '<p class="note">Health is not available for this instance.</p>'
    level = str(health.get("level", ""))
    colour = _LEVEL_COLOURS.get(level, "#64748b")
    parts = health.get("parts")
    rows = []
    for name, part in parts.items() if isinstance(parts, dict) else []:
        if not isinstance(part, dict):
            continue
        part_score = part.get("score")
        bar = ""
        if isinstance(part_score, int | float):
            fraction = min(max(part_score / 100, 0.0), 1.0)
            bar = (
                f'<span class="meter"><span style="width:{fraction * 100:.0f}%;'
                f'background:{_meter_colour(fraction)}"></span></span> '
                f"<b>{_e(_format_score(part_score))}</b>"
            )
        weight = part.get("weight")
        weight_text = f"{weight * 100:.0f}%" if isinstance(weight, int | float) else ""
        rows.append(
            f'<tr><th>{_e(name)}</th><td class="nowrap">{bar}</td>'
            f'<td class="num">{_e(weight_text)}</td>'
            f'<td class="detail">{_figures_html(part.get("figures"))}</td></tr>'
        )
    table = (
        '<table class="grid-table"><thead><tr><th>part</th><th>score</th><th>weight</th>'
        f"<th>figures</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    return (
        f'<div class="health"><div class="score" style="border-color:{colour};color:{colour}">'
        f'<span class="big">{_e(_format_score(score))}</span><span class="of">/ 100</span>'
        f'<span class="level">{_e(level)}</span></div>{table}</div>'
    )


_LEVEL_COLOURS = {"healthy": "#16a34a", "warning": "#ca8a04", "critical": "#dc2626"}


def _meter_colour(fraction: float) -> str:
    return "#22c55e" if fraction >= 0.7 else "#eab308" if fraction >= 0.5 else "#ef4444"


def _figures_html(figures: Any) -> str:
    """A part's figures as "key value" pairs; nested objects flattened with their key
    as a prefix, empty values left out."""
    pairs: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix} {key}".strip(), item)
        elif value is not None and value != [] and value != "":
            if prefix.endswith("rss") and isinstance(value, int | float):
                value = _bytes(value)
            pairs.append((prefix.replace("_", " "), value))

    walk("", figures)
    return " ".join(
        f'<span class="figure"><span class="key">{_e(key)}</span> '
        f"{_e(_clip(_figure(value), 300))}</span>"
        for key, value in pairs
    )


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


# -- resources ---------------------------------------------------------------------------

_SERIES = (
    ("process", "cpu", "runner CPU", "#2563eb"),
    ("machine", "cpu", "machine CPU", "#f97316"),
    ("process", "memory", "runner memory", "#06b6d4"),
    ("machine", "memory", "machine memory", "#a855f7"),
    ("machine", "disk", "machine disk", "#64748b"),
)


def _sample_value(sample: dict[str, Any], group: str, key: str) -> float | None:
    section = sample.get(group)
    value = section.get(key) if isinstance(section, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _resources_section(
    samples: list[tuple[datetime, dict[str, Any]]], axis: TimeAxis | None
) -> str:
    if not samples or axis is None:
        return (
            '<p class="note empty">No resource history: no resource samples were recorded '
            "for this instance (it has not run, or ran without sampling).</p>"
        )
    rows = []
    for group, key, label, colour in _SERIES:
        values = [v for _, s in samples if (v := _sample_value(s, group, key)) is not None]
        if values:
            rows.append(
                f'<tr><th><span class="swatch" style="background:{colour}"></span>'
                f'{_e(label)}</th><td class="num">{values[-1] * 100:.0f}%</td>'
                f'<td class="num">{sum(values) / len(values) * 100:.0f}%</td>'
                f'<td class="num">{max(values) * 100:.0f}%</td></tr>'
            )
    rss = [v for _, s in samples if (v := _sample_value(s, "process", "rss")) is not None]
    if rss:
        rows.append(
            f'<tr><th>runner memory (RSS)</th><td class="num">{_e(_bytes(rss[-1]))}</td>'
            f'<td class="num">{_e(_bytes(sum(rss) / len(rss)))}</td>'
            f'<td class="num">{_e(_bytes(max(rss)))}</td></tr>'
        )
    span = (samples[-1][0] - samples[0][0]).total_seconds()
    summary = (
        f'<p class="note">{len(samples)} samples over {_e(format_seconds(span))}, '
        f"from {_e(_short_time(samples[0][0].isoformat()))} UTC.</p>"
    )
    table = (
        '<table class="grid-table compact"><thead><tr><th>series</th><th>last</th>'
        f"<th>mean</th><th>peak</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return f'<div class="scroll">{resources_svg(samples, axis)}</div>\n{summary}\n{table}'


def _bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def resources_svg(samples: list[tuple[datetime, dict[str, Any]]], axis: TimeAxis) -> str:
    """The usage fractions over time as lines on a 0-100 % chart, on the same time axis
    as the timeline of attempts (so a peak lines up with the tasks running then), with
    the legend in the label column."""
    width, height = _CHART_W, 240
    left, top, bottom = _LABEL_W, 14, 30
    plot_h = height - top - bottom
    peak = max(
        (v for _, s in samples for g, k, _, _ in _SERIES if (v := _sample_value(s, g, k))),
        default=1.0,
    )
    ceiling = max(1.0, math.ceil(peak * 4) / 4)
    parts = [
        f'<svg class="resources" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="resource history">'
    ]
    for index in range(int(ceiling * 4) + 1):
        fraction = index / 4
        y = top + plot_h - fraction / ceiling * plot_h
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + _PLOT_W}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{fraction * 100:.0f}%</text>"
        )
    for x, label in axis.ticks():
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{_e(label)}</text>"
        )
    legend_y = top + 4
    for group, key, label, colour in _SERIES:
        points = []
        for moment, sample in samples:
            value = _sample_value(sample, group, key)
            if value is None:
                continue
            x = axis.x(moment)
            y = top + plot_h - min(value, ceiling) / ceiling * plot_h
            points.append(f"{x:.1f},{y:.1f}")
        if not points:
            continue
        legend_y += 18
        parts.append(
            f'<line x1="16" y1="{legend_y - 4}" x2="36" y2="{legend_y - 4}" stroke="{colour}" '
            f'stroke-width="3"/><text class="legend-label" x="42" y="{legend_y}">{_e(label)}</text>'
        )
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        elif points:
            parts.append(
                f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" '
                f'points="{" ".join(points)}"><title>{_e(label)}</title></polyline>'
            )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f1f5f9; color: #0f172a;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 20px 40px; }
header, section { background: #fff; border: 1px solid #e2e8f0; border-radius: 12px;
  padding: 18px 22px; margin-bottom: 18px; box-shadow: 0 1px 2px rgba(15,23,42,.05); }
h1 { margin: 0 0 4px; font-size: 24px; }
h2 { margin: 0 0 12px; font-size: 17px; color: #1e293b; }
.kicker { margin: 0; color: #64748b; font-size: 12px; text-transform: uppercase;
  letter-spacing: .06em; }
.description { margin: 4px 0 12px; color: #475569; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 14px; }
.card { flex: 1 1 130px; border: 1px solid #e2e8f0; border-radius: 10px; padding: 8px 12px;
  background: #f8fafc; }
.card .label { color: #64748b; font-size: 12px; }
.card .value { font-size: 20px; font-weight: 600; }
.columns { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table.facts { border-collapse: collapse; }
table.facts caption { text-align: left; color: #64748b; font-size: 12px; padding-bottom: 2px; }
table.facts th { text-align: left; color: #64748b; font-weight: 500; padding: 2px 14px 2px 0;
  vertical-align: top; }
table.facts td { padding: 2px 0; word-break: break-word; }
code { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", monospace; }
.badge { display: inline-block; border: 1px solid; border-radius: 999px; padding: 0 9px;
  font-size: 12.5px; font-weight: 600; }
.card .badge { font-size: 15px; padding: 1px 12px; }
.scroll { overflow-x: auto; }
svg { display: block; font-family: inherit; }
svg text { font-size: 12px; fill: #334155; }
svg .name { font-weight: 600; font-size: 12.5px; }
svg .detail { font-size: 11px; opacity: .85; }
svg .edge { fill: none; stroke: #94a3b8; stroke-width: 1.5; }
svg .grid { stroke: #e2e8f0; stroke-width: 1; }
svg .tick { fill: #64748b; font-size: 11px; }
svg .run { fill: #eef2ff; }
svg .row-label { fill: #1e293b; }
svg .bar-label { fill: #64748b; font-size: 11px; }
svg .legend-label { fill: #334155; font-size: 12px; }
svg .attempt:hover rect { filter: brightness(.9); }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0 0; color: #475569;
  font-size: 12.5px; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px;
  border: 1px solid transparent; margin-right: 5px; vertical-align: -1px; }
.swatch.run { background: #eef2ff; border-color: #c7d2fe; }
.note { color: #475569; margin: 6px 0; }
.note.empty { padding: 14px 16px; background: #f8fafc; border: 1px dashed #cbd5e1;
  border-radius: 8px; }
table.grid-table { border-collapse: collapse; width: 100%; }
table.grid-table th, table.grid-table td { text-align: left; padding: 5px 10px;
  border-bottom: 1px solid #e2e8f0; vertical-align: top; }
table.grid-table thead th { color: #64748b; font-weight: 500; font-size: 12.5px; }
table.grid-table.compact { width: auto; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.detail { white-space: pre-wrap; word-break: break-word; color: #475569; max-width: 460px; }
.health { display: flex; flex-wrap: wrap; gap: 22px; align-items: flex-start; }
.score { border: 3px solid; border-radius: 14px; padding: 10px 18px; text-align: center;
  min-width: 130px; }
.score .big { font-size: 40px; font-weight: 700; line-height: 1.1; }
.score .of { font-size: 14px; margin-left: 3px; color: #64748b; }
.score .level { display: block; font-weight: 600; text-transform: uppercase;
  letter-spacing: .05em; font-size: 12.5px; }
.health table { flex: 1 1 500px; }
.meter { display: inline-block; width: 110px; height: 9px; background: #e2e8f0;
  border-radius: 5px; overflow: hidden; vertical-align: 0; }
.meter span { display: block; height: 100%; }
.nowrap { white-space: nowrap; }
.figure { display: inline-block; max-width: 100%; margin: 0 12px 2px 0; }
.figure .key { color: #64748b; }
footer { color: #64748b; font-size: 12px; text-align: center; margin-top: 10px; }
"""
