"""The report's resource history: the runner's and the machine's usage over time as lines
on a 0-100 % chart (on the timeline's time axis), and the last, mean and peak of each.

Every text drawn is escaped; the drawing is SVG markup for the page to embed."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from workflow_cli.monitor.report.axis import CHART_W, LABEL_W, PLOT_W, TimeAxis
from workflow_cli.monitor.report.text import escape, format_bytes
from workflow_cli.store.spans import parse_time

Sample = tuple[datetime, dict[str, Any]]

# (group, key, label, colour) of each line: a fraction of a CPU, the memory or the disk.
SERIES = (
    ("process", "cpu", "runner CPU", "#2563eb"),
    ("machine", "cpu", "machine CPU", "#f97316"),
    ("process", "memory", "runner memory", "#06b6d4"),
    ("machine", "memory", "machine memory", "#a855f7"),
    ("machine", "disk", "machine disk", "#64748b"),
)


def timed_samples(history: list[dict[str, Any]]) -> list[Sample]:
    """The resource samples with a readable time, oldest first."""
    samples: list[Sample] = []
    for sample in history:
        moment = parse_time(sample.get("time"))
        if moment is not None:
            samples.append((moment, sample))
    samples.sort(key=lambda pair: pair[0])
    return samples


def sample_value(sample: dict[str, Any], group: str, key: str) -> float | None:
    """One figure of a sample, when it is a finite number."""
    section = sample.get(group)
    value = section.get(key) if isinstance(section, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def series_rows(samples: list[Sample]) -> list[dict[str, str]]:
    """The last, mean and peak of each line (as percentages) and of the runner's memory
    in bytes: the table under the chart."""
    rows = []
    for group, key, label, colour in SERIES:
        values = [v for _, s in samples if (v := sample_value(s, group, key)) is not None]
        if values:
            rows.append(
                {
                    "label": label,
                    "colour": colour,
                    "last": f"{values[-1] * 100:.0f}%",
                    "mean": f"{sum(values) / len(values) * 100:.0f}%",
                    "peak": f"{max(values) * 100:.0f}%",
                }
            )
    rss = [v for _, s in samples if (v := sample_value(s, "process", "rss")) is not None]
    if rss:
        rows.append(
            {
                "label": "runner memory (RSS)",
                "colour": "",
                "last": format_bytes(rss[-1]),
                "mean": format_bytes(sum(rss) / len(rss)),
                "peak": format_bytes(max(rss)),
            }
        )
    return rows


def resources_svg(samples: list[Sample], axis: TimeAxis) -> str:
    """The usage fractions over time as lines on a 0-100 % chart, on the same time axis
    as the timeline of attempts (so a peak lines up with the tasks running then), with
    the legend in the label column."""
    width, height = CHART_W, 240
    left, top, bottom = LABEL_W, 14, 30
    plot_h = height - top - bottom
    peak = max(
        (v for _, s in samples for g, k, _, _ in SERIES if (v := sample_value(s, g, k))),
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
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + PLOT_W}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{fraction * 100:.0f}%</text>"
        )
    for x, label in axis.ticks():
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    legend_y = top + 4
    for group, key, label, colour in SERIES:
        points = []
        for moment, sample in samples:
            value = sample_value(sample, group, key)
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
            f'stroke-width="3"/><text class="legend-label" x="42" y="{legend_y}">'
            f"{escape(label)}</text>"
        )
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>')
        else:
            parts.append(
                f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" '
                f'points="{" ".join(points)}"><title>{escape(label)}</title></polyline>'
            )
    parts.append("</svg>")
    return "".join(parts)
