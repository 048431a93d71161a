"""The picture of a workflow's task graph: from a template (its tasks only) or an instance
(its tasks with their states), as data and as text.

`build_graph` checks a definition and draws its tasks on the one task graph model
(`workflow_cli.definition.graph.TaskGraph`: dependencies, dependents, depths, cycles);
`load_graph` finds what a reference names; `graph_outline` gives the tree the CLI draws,
`render_mermaid` and `render_dot` the text of a Mermaid flowchart and a Graphviz digraph,
`graph_view` the plain data of ``--format json``, and `graph_layers` the columns of a
layered drawing. Nothing here prints.

Task ids are safe names (``^[A-Za-z_][A-Za-z0-9_-]*$``) but a task's name is any text, so
every label is escaped for the language it is written in.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from workflow_cli.definition.graph import TaskGraph, resolve_groups
from workflow_cli.definition.loader import pointer_join
from workflow_cli.errors import DefinitionError, NotFoundError, Problem, UsageError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace, check_instance_id

# Fill, stroke and text colours of each task state in the pictures (Mermaid, DOT, HTML);
# the same hues as the terminal's colours in `workflow_cli.cli.status`.
STATE_COLOURS: dict[str, tuple[str, str, str]] = {
    "completed": ("#dcfce7", "#16a34a", "#14532d"),
    "failed": ("#fee2e2", "#dc2626", "#7f1d1d"),
    "running": ("#dbeafe", "#2563eb", "#1e3a8a"),
    "retrying": ("#fef9c3", "#ca8a04", "#713f12"),
    "waiting": ("#cffafe", "#0891b2", "#164e63"),
    "skipped": ("#f3f4f6", "#9ca3af", "#4b5563"),
    "pending": ("#ffffff", "#6b7280", "#111827"),
    "cancelled": ("#fae8ff", "#c026d3", "#701a75"),
}
NO_STATE_COLOURS = ("#ffffff", "#64748b", "#0f172a")


@readonly_dataclass
class GraphNode:
    """One task: its id, the name shown for it, and where it sits in the graph."""

    id: str
    name: str  # the task's name, or its id when it has none
    dependencies: tuple[str, ...]
    depth: int  # the longest chain of dependencies above it; 0 for a task that has none
    state: str | None = None  # the instance's task state; None in a template's graph
    attempts: int = 0


@readonly_dataclass
class GraphPicture:
    """What a picture of the graph shows: the tasks of a template or an instance, in
    definition order, on their task graph."""

    kind: str  # "instance" or "template"
    ref: str  # the instance id or the template name
    title: str  # the workflow's name
    nodes: dict[str, GraphNode]
    model: TaskGraph  # the task graph it draws
    state: str | None = None  # the instance's state

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(dependency, dependent) pairs, in definition order."""
        return [(dep, node.id) for node in self.nodes.values() for dep in node.dependencies]


@dataclass
class OutlineItem:
    """One line of the tree view: a task, and under it the tasks it is the main
    dependency of. A task with several dependencies is drawn in full under the deepest
    one and as a `reference` (a line without children) under the others."""

    task: str
    reference: bool = False
    shown_under: str | None = None  # for a reference: the task it is drawn in full under
    children: list[OutlineItem] = field(default_factory=list)


def build_graph(
    definition: dict[str, Any],
    *,
    kind: str,
    ref: str,
    source: str,
    task_states: dict[str, Any] | None = None,
    state: str | None = None,
) -> GraphPicture:
    """The picture of `definition`'s tasks; a definition that cannot be drawn (tasks not
    an object, unknown dependencies, a cycle) raises DefinitionError naming `source`."""
    tasks = definition.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise DefinitionError(source, [Problem("/tasks", "must be an object of tasks")])
    problems: list[Problem] = []
    dependencies: dict[str, tuple[str, ...]] = {}
    groups = {
        task_id: task["parallel_group"]
        for task_id, task in tasks.items()
        if isinstance(task, dict) and isinstance(task.get("parallel_group"), str)
    }
    for task_id, task in tasks.items():
        where = pointer_join("/tasks", task_id)
        if not isinstance(task, dict):
            problems.append(Problem(where, "must be an object"))
            continue
        deps = task.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            problems.append(Problem(f"{where}/dependencies", "must be a list of task ids"))
            continue
        for dep in deps:
            if dep not in tasks and dep not in groups.values():
                problems.append(Problem(f"{where}/dependencies", f"unknown task '{dep}'"))
        dependencies[task_id] = tuple(deps)
    if problems:
        raise DefinitionError(source, problems)
    graph = TaskGraph.build(resolve_groups(dependencies, groups))
    cycle = graph.cycle()
    if cycle is not None:
        problem = Problem("/tasks", f"dependency cycle: {' -> '.join(cycle)}")
        raise DefinitionError(source, [problem])
    depth = graph.depths()
    nodes = {}
    for task_id, task in tasks.items():
        name = task.get("name")
        task_state = (task_states or {}).get(task_id) or {}
        nodes[task_id] = GraphNode(
            id=task_id,
            name=name if isinstance(name, str) and name.strip() else task_id,
            dependencies=graph.dependencies[task_id],
            depth=depth[task_id],
            state=task_state.get("state") if task_states is not None else None,
            attempts=int(task_state.get("attempts") or 0),
        )
    title = definition.get("name")
    return GraphPicture(
        kind=kind,
        ref=ref,
        title=title if isinstance(title, str) else ref,
        nodes=nodes,
        model=graph,
        state=state,
    )


def load_graph(workspace: Workspace, ref: str, clock: Clock) -> GraphPicture:
    """The graph of what `ref` names: an instance's exact id first, then a template name
    or template/definition file, then a unique prefix of an instance id.

    Template names come before id prefixes because every instance id starts with its
    template's name: ``graph sequential_pipeline`` means the template, not the one
    instance made of it.
    """
    from workflow_cli.definition.templates import find_template, template_names

    if _is_instance_id(workspace, ref):
        return instance_graph(workspace, ref, clock)
    try:
        template = find_template(workspace.templates_dir, ref)
    except NotFoundError:
        pass
    else:
        return build_graph(template.workflow, kind="template", ref=template.name, source=ref)
    try:
        check_instance_id(ref)
    except UsageError:
        looks_like_id = False
    else:
        looks_like_id = True
    if looks_like_id:
        try:
            return instance_graph(workspace, workspace.resolve_instance_id(ref), clock)
        except NotFoundError:
            pass
    known = template_names(workspace.templates_dir) + workspace.instance_ids()
    close = difflib.get_close_matches(ref, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise NotFoundError(f"no instance or template '{ref}'{hint}")


def _is_instance_id(workspace: Workspace, ref: str) -> bool:
    try:
        check_instance_id(ref)
    except UsageError:
        return False
    return (workspace.instances_dir / ref / "events.jsonl").is_file()


def instance_graph(workspace: Workspace, instance_id: str, clock: Clock) -> GraphPicture:
    """The graph of an instance's definition, with each task's state and attempts."""
    from workflow_cli.store.instances import load_definition, load_state, open_journal

    definition = load_definition(workspace, instance_id)
    state = load_state(open_journal(workspace, instance_id, clock))
    return build_graph(
        definition,
        kind="instance",
        ref=instance_id,
        source=str(workspace.instance_dir(instance_id) / "definition.json"),
        task_states=state["tasks"],
        state=state["state"],
    )


def graph_view(graph: GraphPicture) -> dict[str, Any]:
    """The graph as plain data: what ``graph --format json`` prints."""
    return {
        "kind": graph.kind,
        "ref": graph.ref,
        "name": graph.title,
        "state": graph.state,
        "nodes": [
            {
                "id": node.id,
                "name": node.name,
                "state": node.state,
                "attempts": node.attempts,
                "depth": node.depth,
                "dependencies": list(node.dependencies),
            }
            for node in graph.nodes.values()
        ],
        "edges": [{"from": dep, "to": task_id} for dep, task_id in graph.edges],
    }


def graph_outline(graph: GraphPicture) -> list[OutlineItem]:
    """The tree view: the tasks without dependencies at the top, each task under the
    deepest of its dependencies (the last of them on a tie), and a reference to it under
    each other one. Every task is drawn in full exactly once."""
    main_parent: dict[str, str] = {}
    for node in graph.nodes.values():
        if node.dependencies:
            deepest = max(graph.nodes[d].depth for d in node.dependencies)
            main_parent[node.id] = [
                d for d in node.dependencies if graph.nodes[d].depth == deepest
            ][-1]
    dependents = graph.model.dependents
    # Built bottom-up from a table rather than recursively: a chain of thousands of tasks
    # would overflow Python's stack.
    items = {task_id: OutlineItem(task_id) for task_id in graph.nodes}
    for task_id in graph.nodes:
        for child in dependents[task_id]:
            if main_parent[child] == task_id:
                items[task_id].children.append(items[child])
            else:
                items[task_id].children.append(
                    OutlineItem(child, reference=True, shown_under=main_parent[child])
                )
    return [items[node.id] for node in graph.nodes.values() if not node.dependencies]


def graph_layers(graph: GraphPicture) -> list[list[str]]:
    """Tasks in columns by depth, each column ordered to keep edges short: a task sits
    near the mean position of its dependencies (one barycentre pass)."""
    layers: list[list[str]] = []
    for node in graph.nodes.values():
        while len(layers) <= node.depth:
            layers.append([])
        layers[node.depth].append(node.id)
    position: dict[str, float] = {}
    for index, layer in enumerate(layers):
        if index > 0:
            order = {task_id: i for i, task_id in enumerate(layer)}
            layer.sort(
                key=lambda t: (
                    sum(position[d] for d in graph.nodes[t].dependencies)
                    / len(graph.nodes[t].dependencies),
                    order[t],
                )
            )
        for i, task_id in enumerate(layer):
            position[task_id] = (i + 0.5) / len(layer)
    return layers


# -- Mermaid ---------------------------------------------------------------------------

_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "`": "#96;",
}


def mermaid_text(text: str) -> str:
    """`text` safe inside a quoted Mermaid label: entity codes for the characters Mermaid
    or HTML would read, and one line."""
    flat = " ".join(text.split())
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in flat)


def render_mermaid(graph: GraphPicture) -> str:
    """A Mermaid flowchart (top-down): one node per task labelled with its id and name,
    one edge per dependency, and the task's state as the node's class."""
    names = {task_id: f"t{index}" for index, task_id in enumerate(graph.nodes)}
    lines = ["flowchart TD", f"    %% {graph.kind} {' '.join(graph.ref.split())}"]
    used_states: list[str] = []
    for task_id, node in graph.nodes.items():
        label = mermaid_text(task_id)
        if node.name != task_id:
            label += "<br/>" + mermaid_text(node.name)
        line = f'    {names[task_id]}["{label}"]'
        if node.state:
            line += f":::{node.state}"
            if node.state not in used_states:
                used_states.append(node.state)
        lines.append(line)
    lines.extend(f"    {names[dep]} --> {names[task_id]}" for dep, task_id in graph.edges)
    for state in used_states:
        fill, stroke, text = STATE_COLOURS.get(state, NO_STATE_COLOURS)
        lines.append(f"    classDef {state} fill:{fill},stroke:{stroke},color:{text}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT ----------------------------------------------------------------------


def dot_quote(text: str) -> str:
    """`text` as a DOT double-quoted string (backslashes, quotes and line breaks escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(graph: GraphPicture) -> str:
    """A Graphviz digraph: one box per task labelled with its id and name (filled in its
    state's colour for an instance), one edge per dependency."""
    lines = [
        f"digraph {dot_quote(graph.ref)} {{",
        f"    label={dot_quote(graph.title)};",
        "    labelloc=t;",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica", fillcolor="#ffffff"];',
    ]
    for task_id, node in graph.nodes.items():
        label = task_id if node.name == task_id else f"{task_id}\n{node.name}"
        attributes = [f"label={dot_quote(label)}"]
        if node.state:
            fill, stroke, text = STATE_COLOURS.get(node.state, NO_STATE_COLOURS)
            attributes += [
                f"class={dot_quote(node.state)}",
                f'fillcolor="{fill}"',
                f'color="{stroke}"',
                f'fontcolor="{text}"',
                f"tooltip={dot_quote(node.state)}",
            ]
        lines.append(f"    {dot_quote(task_id)} [{', '.join(attributes)}];")
    lines.extend(f"    {dot_quote(dep)} -> {dot_quote(task_id)};" for dep, task_id in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"
