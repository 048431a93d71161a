"""The report's timeline: a Gantt chart of every task attempt and wait, with the runs of
the runner as shaded bands behind them (the spans come from `workflow_cli.store.spans`).

Every text drawn is escaped; the drawing is SVG markup for the page to embed."""

from __future__ import annotations

from workflow_cli.monitor.report.axis import CHART_W, LABEL_W, TimeAxis
from workflow_cli.monitor.report.text import clip, escape, format_seconds
from workflow_cli.store.spans import AttemptSpan, RunSpan

# Beyond this many rows the chart would be too long to read: the page says what it left out.
MAX_TIMELINE_ROWS = 1500

# Colours of the bars, by how the attempt ended.
OUTCOME_COLOURS = {
    "completed": "#22c55e",
    "failed": "#ef4444",
    "retried": "#f59e0b",  # failed, and another attempt followed
    "lost": "#fb923c",  # its Dask worker died under it; another attempt followed
    "running": "#3b82f6",
    "interrupted": "#94a3b8",  # its runner stopped or died before it ended
    "cancelled": "#c026d3",
    "waiting": "#67e8f9",  # an approval gate, a child workflow, a mailbox
}
OUTCOME_LABELS = {
    "completed": "completed",
    "failed": "failed",
    "retried": "failed, retried",
    "lost": "lost with its worker",
    "running": "running",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
    "waiting": "waiting",
}

_ROW_H = 22
_AXIS_H = 30


def timeline_svg(
    spans: list[AttemptSpan], runs: list[RunSpan], axis: TimeAxis, names: dict[str, str]
) -> str:
    """A Gantt chart: one row per attempt (and per wait), runs as shaded bands."""
    height = _AXIS_H + len(spans) * _ROW_H + 8
    x_of = axis.x
    parts = [
        f'<svg class="timeline" width="{CHART_W}" height="{height}" '
        f'viewBox="0 0 {CHART_W} {height}" role="img" aria-label="timeline of task attempts">'
    ]
    for run in runs:
        x1, x2 = x_of(run.start), x_of(run.end)
        ended = f"ended {run.state}" if run.state else "did not end"
        parts.append(
            f'<rect class="run" x="{x1:.1f}" y="{_AXIS_H - 4}" width="{max(x2 - x1, 1):.1f}" '
            f'height="{height - _AXIS_H}"><title>run {run.number}: '
            f"{escape(format_seconds((run.end - run.start).total_seconds()))}, {escape(ended)}"
            f"</title></rect>"
        )
    ticks = axis.ticks()
    for index, (x, label) in enumerate(ticks):
        anchor = "start" if index == 0 else "end" if index == len(ticks) - 1 else "middle"
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_AXIS_H - 6}" x2="{x:.1f}" y2="{height}"/>'
            f'<text class="tick" x="{x:.1f}" y="{_AXIS_H - 12}" text-anchor="{anchor}">'
            f"{escape(label)}</text>"
        )
    for row, span in enumerate(spans):
        parts.append(_bar(span, _AXIS_H + row * _ROW_H, axis, names.get(span.task, span.task)))
    parts.append("</svg>")
    return "".join(parts)


def _bar(span: AttemptSpan, y: int, axis: TimeAxis, name: str) -> str:
    """One row: its label in the label column, its bar, and its duration after the bar."""
    wait = span.attempt == 0
    suffix = " · waiting" if wait else f" · #{span.attempt}"
    label = clip(name, 34 - len(suffix)) + suffix
    x1, x2 = axis.x(span.start), axis.x(span.end)
    width = max(x2 - x1, 2.0)
    # The label says what the bar shows: its length on the time axis. What the runner
    # measured of the attempt itself (without waiting to be recorded) is in the tooltip.
    seconds = max((span.end - span.start).total_seconds(), 0.0)
    measured = ""
    if span.duration is not None and format_seconds(span.duration) != format_seconds(seconds):
        measured = f" ({format_seconds(span.duration)} measured by the runner)"
    tooltip = (
        f"{name} ({span.task})"
        + ("" if wait else f", attempt {span.attempt}")
        + f": {OUTCOME_LABELS[span.outcome]}, {format_seconds(seconds)}{measured}, "
        f"from {span.start.time().isoformat(timespec='milliseconds')}"
        + (f", on {span.worker}" if span.worker else "")
    )
    if span.error:
        tooltip += f"\n{clip(span.error, 500)}"
    parts = [
        f'<g class="attempt {span.outcome}" data-task="{escape(span.task)}">'
        f"<title>{escape(tooltip)}</title>"
        f'<text class="row-label" x="{LABEL_W - 10}" y="{y + 15}" text-anchor="end">'
        f"{escape(label)}</text>"
        f'<rect x="{x1:.1f}" y="{y + 4}" width="{width:.1f}" height="{_ROW_H - 8}" rx="3" '
        f'fill="{OUTCOME_COLOURS[span.outcome]}"/>'
    ]
    text = format_seconds(seconds) + (f" · {span.worker}" if span.worker else "")
    if x1 + width + 8 + 7 * len(text) < CHART_W:  # after the bar, or else before it
        parts.append(
            f'<text class="bar-label" x="{x1 + width + 5:.1f}" y="{y + 15}">{escape(text)}</text>'
        )
    elif x1 - 8 - 7 * len(text) > LABEL_W:
        parts.append(
            f'<text class="bar-label" x="{x1 - 5:.1f}" y="{y + 15}" text-anchor="end">'
            f"{escape(text)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)
