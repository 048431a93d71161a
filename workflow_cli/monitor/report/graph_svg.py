"""The report's task graph: a column per dependency depth, left to right, each task a box
in the colour of its state.

Every text drawn is escaped; the drawing is SVG markup for the page to embed."""

from __future__ import annotations

from workflow_cli.monitor.graph import NO_STATE_COLOURS, STATE_COLOURS, GraphPicture, graph_layers
from workflow_cli.monitor.report.axis import CHART_W
from workflow_cli.monitor.report.text import clip, escape

# Beyond this many tasks the drawing would be too large to read: the page says so instead.
MAX_GRAPH_NODES = 400

_NODE_W = 204
_MIN_NODE_W = 160
_MIN_COL_GAP = 40
_NODE_H = 60
_COL_GAP = 64
_ROW_GAP = 14
_MARGIN = 12


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
        out = [*out[: lines - 1], clip(" ".join(out[lines - 1 :]), width)]
    return out or [""]


def graph_svg(graph: GraphPicture) -> str:
    """The task graph as an SVG drawing: a column per dependency depth, left to right.

    Nodes narrow (down to a minimum) so that a deeper graph still fits the page's width,
    names take up to two lines, and a drawing somewhat wider than the page is scaled down
    to fit it; a much wider one keeps its size and scrolls sideways."""
    layers = graph_layers(graph)
    columns = len(layers)
    room = CHART_W - 2 * _MARGIN
    gap = _COL_GAP if columns * (_NODE_W + _COL_GAP) - _COL_GAP <= room else _MIN_COL_GAP
    node_w = min(_NODE_W, max(_MIN_NODE_W, (room - (columns - 1) * gap) // columns))
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
    fit = ' style="max-width:100%;height:auto"' if width <= CHART_W * 1.3 else ""
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
            f"<title>{escape(dep)} → {escape(task_id)}</title></path>"
        )
    for task_id in graph.nodes:
        parts.append(_node(graph, task_id, where[task_id], node_w))
    parts.append("</svg>")
    return "".join(parts)


def _node(graph: GraphPicture, task_id: str, at: tuple[float, float], node_w: int) -> str:
    """One task's box: its name in up to two lines, then its id (when the name is not
    the id), its state and its attempts."""
    node = graph.nodes[task_id]
    x, y = at
    fill, stroke, ink = STATE_COLOURS.get(node.state or "", NO_STATE_COLOURS)
    facts = [task_id] if node.name != task_id else []
    if node.state:
        facts.append(node.state)
        if node.attempts > 1:
            facts.append(f"{node.attempts} attempts")
    detail = " · ".join(facts)
    tooltip = f"{node.name} ({task_id})" if node.name != task_id else task_id
    if node.state:
        tooltip += f": {node.state}"
    name_lines = wrap_text(node.name, int((node_w - 18) / 7.2), 2)
    block = 15 * len(name_lines) + (14 if detail else 0)
    baseline = y + (_NODE_H - block) / 2 + 11
    parts = [
        f'<g class="node" data-task="{escape(task_id)}">'
        f"<title>{escape(tooltip)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{_NODE_H}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
        f'<text class="name" fill="{ink}">'
    ]
    for index, line in enumerate(name_lines):
        parts.append(
            f'<tspan x="{x + 10:.1f}" y="{baseline + 15 * index:.1f}">{escape(line)}</tspan>'
        )
    parts.append("</text>")
    if detail:
        detail_chars = int((node_w - 18) / 6.0)
        parts.append(
            f'<text x="{x + 10:.1f}" y="{baseline + 15 * len(name_lines) + 1:.1f}" '
            f'class="detail" fill="{ink}">{escape(clip(detail, detail_chars))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def state_legend(graph: GraphPicture) -> list[dict[str, object]]:
    """The states drawn, in order of first appearance: colours, name and count of each."""
    counts: dict[str, int] = {}
    for node in graph.nodes.values():
        if node.state:
            counts[node.state] = counts.get(node.state, 0) + 1
    legend: list[dict[str, object]] = []
    for state, count in counts.items():
        fill, stroke, _ = STATE_COLOURS.get(state, NO_STATE_COLOURS)
        legend.append({"state": state, "fill": fill, "stroke": stroke, "count": count})
    return legend
