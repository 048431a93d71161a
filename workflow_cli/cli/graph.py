"""``graph``: an instance's or a template's task graph, as a tree, Mermaid, DOT or JSON."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from workflow_cli.cli.context import app_context, print_json

if TYPE_CHECKING:
    from rich.text import Text
    from rich.tree import Tree

    from workflow_cli.monitor.graph import GraphNode, GraphPicture, OutlineItem


class GraphFormat(StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


def graph_command(
    ctx: typer.Context,
    ref: str = typer.Argument(
        ...,
        metavar="ID|TEMPLATE",
        help="Instance id (or a unique prefix), template name, or template/definition file.",
    ),
    output_format: GraphFormat = typer.Option(
        GraphFormat.tree,
        "--format",
        "-f",
        help="tree (coloured by task state), mermaid (flowchart), dot (Graphviz), "
        "or json (nodes and edges).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Show the task graph of an instance (each task in the colour of its state) or of
    a template (its tasks as written; parameters do not change the graph).

    An exact instance id is looked up first, then a template name or file, then a
    unique prefix of an instance id. Mermaid and DOT print text to paste into a
    renderer, e.g. 'workflow_cli graph ID --format dot | dot -Tsvg > graph.svg'.

    Examples:
      workflow_cli graph sequential_pipeline
      workflow_cli graph sequential_pipeline-20261203-1015 --format mermaid"""
    from workflow_cli.monitor.graph import graph_view, load_graph, render_dot, render_mermaid

    app = app_context(ctx)
    graph = load_graph(app.workspace, ref, app.clock)
    if as_json or output_format is GraphFormat.json:
        print_json(graph_view(graph))
    elif output_format is GraphFormat.mermaid:
        typer.echo(render_mermaid(graph), nl=False)
    elif output_format is GraphFormat.dot:
        typer.echo(render_dot(graph), nl=False)
    else:
        tree, width = _tree(graph)
        console = app.console()
        # Rich cuts tree lines at the console's width; a deep graph or a long name must
        # still show every task whole, so the width grows to the widest line.
        console.width = max(console.width, width)
        console.print(tree)


def _tree(graph: GraphPicture) -> tuple[Tree, int]:
    """The Rich tree of `graph`, and the width its widest line needs."""
    from rich.text import Text
    from rich.tree import Tree

    from workflow_cli.cli.status import _STATE_STYLE
    from workflow_cli.monitor.graph import graph_outline

    header = Text.assemble((graph.kind + " ", "dim"), (graph.ref, "bold"))
    if graph.title != graph.ref:
        header.append("  " + " ".join(graph.title.split()))
    if graph.state:
        header.append("  ")
        header.append(graph.state, _STATE_STYLE.get(graph.state, ""))
    root = Tree(header, guide_style="dim")
    # An explicit stack: a chain of thousands of tasks would overflow Python's.
    stack: list[tuple[Tree, OutlineItem, int]] = [
        (root, item, 1) for item in reversed(graph_outline(graph))
    ]
    width = header.cell_len
    while stack:
        parent, item, level = stack.pop()
        node = graph.nodes[item.task]
        if item.reference:
            label = Text(f"→ {node.id}  (shown under {item.shown_under})", style="dim")
        else:
            label = _task_label(node, _STATE_STYLE)
        width = max(width, 4 * level + label.cell_len)
        branch = parent.add(label)
        stack.extend((branch, child, level + 1) for child in reversed(item.children))
    return root, width + 1


def _task_label(node: GraphNode, styles: dict[str, str]) -> Text:
    from rich.text import Text

    label = Text()
    label.append(node.id, "bold")
    if node.name != node.id:
        label.append("  " + " ".join(node.name.split()))
    if node.state:
        label.append("  ")
        label.append(node.state, styles.get(node.state, ""))
        if node.attempts > 1:
            label.append(f" ({node.attempts} attempts)", "dim")
    return label
