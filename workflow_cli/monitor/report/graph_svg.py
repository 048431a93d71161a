"""The report's task graph: a column per dependency depth, left to right, each task a box
in the colour of its state; edges that skip columns are routed around the boxes.

Every text drawn is escaped; the drawing is SVG markup for the page to embed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

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
_WAYPOINT_H = 10  # the gap a long edge takes in a column it passes


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


@dataclass
class _Slot:
    """One place in a column: a task's box, or a waypoint of an edge that passes the
    column (a long edge is routed through such gaps, never across a box)."""

    key: str  # the task id, or "edge:DEP>TASK:COLUMN"
    height: float
    y: float = 0.0


def _layered(graph: GraphPicture) -> tuple[list[list[_Slot]], dict[tuple[str, str], list[str]]]:
    """Columns of slots (tasks by depth, plus a waypoint in each column a long edge
    passes), ordered by barycentre sweeps to keep edges short and few crossing; and
    each edge's waypoints from its dependency's column to its task's."""
    columns: list[list[str]] = [list(layer) for layer in graph_layers(graph)]
    depth = {task_id: c for c, layer in enumerate(columns) for task_id in layer}
    routes: dict[tuple[str, str], list[str]] = {}
    links: dict[str, list[str]] = {key: [] for layer in columns for key in layer}
    for dep, task_id in graph.edges:
        chain = [dep]
        for column in range(depth[dep] + 1, depth[task_id]):
            waypoint = f"edge:{dep}>{task_id}:{column}"
            columns[column].append(waypoint)
            links[waypoint] = []
            chain.append(waypoint)
        chain.append(task_id)
        routes[(dep, task_id)] = chain[1:-1]
        for left, right in itertools.pairwise(chain):
            links[left].append(right)
            links[right].append(left)
    for _sweep in range(4):  # down, up, down, up: each column by its neighbours' mean
        order = range(1, len(columns)) if _sweep % 2 == 0 else range(len(columns) - 2, -1, -1)
        for column in order:
            side = columns[column - 1] if _sweep % 2 == 0 else columns[column + 1]
            place = {key: i for i, key in enumerate(side)}
            current = {key: i for i, key in enumerate(columns[column])}

            def weight(
                key: str, place: dict[str, int] = place, current: dict[str, int] = current
            ) -> float:
                near = [place[k] for k in links[key] if k in place]
                return sum(near) / len(near) if near else float(current[key])

            columns[column].sort(key=lambda k: (weight(k), current[k]))
    slots = [
        [_Slot(key, _WAYPOINT_H if key.startswith("edge:") else _NODE_H) for key in layer]
        for layer in columns
    ]
    return slots, routes


def graph_svg(graph: GraphPicture) -> str:
    """The task graph as an SVG drawing: a column per dependency depth, left to right.

    A layered layout: an edge that skips columns is routed through a gap of its own in
    each column it passes, so no edge crosses a box. Nodes narrow (down to a minimum) so
    that a deeper graph still fits the page's width, names take up to two lines, and a
    drawing somewhat wider than the page is scaled down to fit it; a much wider one keeps
    its size and scrolls sideways."""
    slots, routes = _layered(graph)
    columns = len(slots)
    room = CHART_W - 2 * _MARGIN
    gap = _COL_GAP if columns * (_NODE_W + _COL_GAP) - _COL_GAP <= room else _MIN_COL_GAP
    node_w = min(_NODE_W, max(_MIN_NODE_W, (room - (columns - 1) * gap) // columns))

    def column_height(layer: list[_Slot]) -> float:
        return sum(slot.height for slot in layer) + (len(layer) - 1) * _ROW_GAP

    height = int(2 * _MARGIN + max(column_height(layer) for layer in slots))
    width = 2 * _MARGIN + columns * node_w + (columns - 1) * gap
    where: dict[str, tuple[float, float]] = {}
    for column, layer in enumerate(slots):
        y = (height - column_height(layer)) / 2
        for slot in layer:
            slot.y = y
            where[slot.key] = (float(_MARGIN + column * (node_w + gap)), y)
            y += slot.height + _ROW_GAP
    fit = ' style="max-width:100%;height:auto"' if width <= CHART_W * 1.3 else ""
    parts = [
        f'<svg class="graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f'{fit} role="img" aria-label="task graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#94a3b8"/></marker></defs>',
    ]
    for dep, task_id in graph.edges:
        x, y = where[dep]
        points = [(x + node_w, y + _NODE_H / 2)]
        for waypoint in routes[(dep, task_id)]:
            wx, wy = where[waypoint]
            points += [(wx, wy + _WAYPOINT_H / 2), (wx + node_w, wy + _WAYPOINT_H / 2)]
        x2, y2 = where[task_id]
        points.append((x2 - 2, y2 + _NODE_H / 2))
        path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
        for (ax, ay), (bx, by) in itertools.pairwise(points):
            if ay == by or bx - ax <= 0:
                path += f" L{bx:.1f},{by:.1f}"
            else:
                bend = (bx - ax) / 2
                path += f" C{ax + bend:.1f},{ay:.1f} {bx - bend:.1f},{by:.1f} {bx:.1f},{by:.1f}"
        parts.append(
            f'<path class="edge" d="{path}" marker-end="url(#arrow)">'
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
