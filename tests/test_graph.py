"""``graph``: the task graph of a template or an instance as a tree, Mermaid, DOT and JSON,
through the real CLI, plus the outline and layering the pictures are drawn from."""

from __future__ import annotations

import json
import re
import sys

import pytest
from conftest import write_definition

from workflow_cli.monitor.graph import build_graph, graph_layers, graph_outline

PARALLEL_TASKS = {
    "extract",
    "prepare",
    "split",
    *(f"process_{i}" for i in range(4)),
    *(f"check_{i}" for i in range(4)),
    "aggregate",
}
HOSTILE = 'Say "hi" <script>alert(1)</script> & #quot; `x` \\N back\\slash\nnext line'


def check(expression: str = "1", **more):
    return {"action": "condition_check", "parameters": {"expression": expression}, **more}


def fails(**more):
    """A task that fails for real: it reads a file that is not there."""
    parameters = {"operation": "read", "path": "absent.txt"}
    return {"action": "file_operation", "parameters": parameters, **more}


def template_edges(name: str) -> set[tuple[str, str]]:
    """The template's edges, a dependency on a parallel_group standing for its tasks."""
    from workflow_cli.definition.graph import resolve_groups
    from workflow_cli.definition.templates import builtin_dir

    tasks = json.loads((builtin_dir() / f"{name}.json").read_text())["workflow"]["tasks"]
    resolved = resolve_groups(
        {task_id: task["dependencies"] for task_id, task in tasks.items()},
        {task_id: task.get("parallel_group") for task_id, task in tasks.items()},
    )
    return {(dep, task_id) for task_id, deps in resolved.items() for dep in deps}


# -- parsing what the formats print ------------------------------------------------------

_MERMAID_NODE = re.compile(r'^    (t\d+)\["((?:[^"])*)"\](?::::([a-z]+))?$')
_MERMAID_EDGE = re.compile(r"^    (t\d+) --> (t\d+)$")
_MERMAID_CLASS = re.compile(r"^    classDef ([a-z]+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},")


def mermaid_entities(text: str) -> str:
    named = {"quot": '"', "amp": "&", "lt": "<", "gt": ">"}

    def decode(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code)) if code.isdigit() else named[code]

    return re.sub(r"#(\d+|[a-z]+);", decode, text)


def parse_mermaid(text: str) -> tuple[dict[str, tuple[str, str | None]], set[tuple[str, str]]]:
    """{task id: (label, class)} and the edges as task ids; every line must be one of
    the shapes a flowchart allows here."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, tuple[str, str, str | None]] = {}
    edges: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for line in lines[1:]:
        if node := _MERMAID_NODE.match(line):
            label = node.group(2)
            task_id = mermaid_entities(label.split("<br/>")[0])
            nodes[node.group(1)] = (task_id, label, node.group(3))
        elif edge := _MERMAID_EDGE.match(line):
            edges.add((edge.group(1), edge.group(2)))
        elif defined := _MERMAID_CLASS.match(line):
            classes.add(defined.group(1))
        else:
            assert line.startswith("    %% "), line
    used = {cls for _, _, cls in nodes.values() if cls}
    assert used == classes  # every class used is defined, and only those
    by_name = {name: task_id for name, (task_id, _, _) in nodes.items()}
    return (
        {task_id: (label, cls) for task_id, label, cls in nodes.values()},
        {(by_name[a], by_name[b]) for a, b in edges},
    )


_DOT_STRING = r'"((?:[^"\\]|\\.)*)"'


def dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], set[tuple[str, str]]]:
    """{node id: attributes} and the edges, from a digraph with one statement a line."""
    lines = text.splitlines()
    assert re.fullmatch(rf"digraph {_DOT_STRING} \{{", lines[0]), lines[0]
    assert lines[-1] == "}"
    nodes: dict[str, dict[str, str]] = {}
    edges: set[tuple[str, str]] = set()
    attribute = re.compile(rf'(\w+)=({_DOT_STRING}|[\w#."]+)')
    for line in lines[1:-1]:
        if edge := re.fullmatch(rf"    {_DOT_STRING} -> {_DOT_STRING};", line):
            edges.add((dot_unescape(edge.group(1)), dot_unescape(edge.group(2))))
        elif node := re.fullmatch(rf"    {_DOT_STRING} \[(.*)\];", line):
            attrs = {}
            for match in attribute.finditer(node.group(2)):
                value = match.group(2)
                attrs[match.group(1)] = (
                    dot_unescape(match.group(3)) if match.group(3) is not None else value
                )
            nodes[dot_unescape(node.group(1))] = attrs
        else:
            assert re.fullmatch(r"    (\w+=.*|node \[.*\]);", line), line
    return nodes, edges


# -- templates ---------------------------------------------------------------------------


def test_tree_of_a_template_shows_every_task_once_in_full(cli):
    result = cli("graph", "parallel_processing")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("template parallel_processing  Parallel partition processing")
    full = [re.match(r"^[\s│├└─]*(\w+)  ", line) for line in lines[1:] if "→" not in line]
    assert sorted(m.group(1) for m in full if m) == sorted(PARALLEL_TASKS)
    assert "extract  Extract sales lines" in lines[1]
    # aggregate depends on all eight others: drawn once, referred to under the other seven
    references = [line for line in lines if "→ aggregate" in line]
    assert len(references) == 7
    assert all("(shown under check_3)" in line for line in references)


def test_mermaid_of_a_template_has_every_node_and_edge(cli):
    result = cli("graph", "parallel_processing", "--format", "mermaid")
    assert result.exit_code == 0, result
    nodes, edges = parse_mermaid(result.stdout)
    assert set(nodes) == PARALLEL_TASKS
    assert edges == template_edges("parallel_processing")
    assert nodes["extract"] == ("extract<br/>Extract sales lines", None)


def test_dot_of_a_template_has_every_node_and_edge(cli):
    result = cli("graph", "sequential_pipeline", "-f", "dot")
    assert result.exit_code == 0, result
    nodes, edges = parse_dot(result.stdout)
    assert set(nodes) == {"extract", "transform", "load"}
    assert edges == template_edges("sequential_pipeline")
    assert nodes["extract"]["label"] == "extract\nExtract sales lines"
    assert "fillcolor" not in nodes["extract"]  # a template has no states to colour


def test_json_of_a_template(cli):
    view = cli("graph", "parallel_processing", "--json").json()
    assert view["kind"] == "template"
    assert view["ref"] == "parallel_processing"
    assert view["state"] is None
    assert {n["id"] for n in view["nodes"]} == PARALLEL_TASKS
    assert {(e["from"], e["to"]) for e in view["edges"]} == template_edges("parallel_processing")
    depth = {n["id"]: n["depth"] for n in view["nodes"]}
    assert depth["extract"] == 0 and depth["check_0"] == 4 and depth["aggregate"] == 5
    assert cli("graph", "parallel_processing", "--format", "json").json() == view


def test_template_with_required_parameters_is_drawn_without_them(cli, workspace):
    (workspace / "templates").mkdir()
    template = {
        "name": "needs",
        "parameters": {"target": {"type": "string", "required": True}},
        "workflow": {
            "id": "needs",
            "name": "needs a target",
            "version": "1",
            "schema_version": "2.0.0",
            "tasks": {
                "first": check("params.target"),
                "second": check(dependencies=["first"]),
            },
        },
    }
    (workspace / "templates" / "needs.json").write_text(json.dumps(template))
    view = cli("graph", "needs", "--json").json()
    assert view["edges"] == [{"from": "first", "to": "second"}]


def test_definition_file_and_its_problems(cli, workspace):
    path = write_definition(workspace, {"a": check(), "b": check(dependencies=["a"])})
    assert cli("graph", str(path), "--json").json()["edges"] == [{"from": "a", "to": "b"}]
    cycle = write_definition(
        workspace,
        {"a": check(dependencies=["b"]), "b": check(dependencies=["a"])},
        name="cycle.json",
    )
    result = cli("graph", str(cycle))
    assert result.exit_code == 2
    assert "dependency cycle" in result.stderr
    unknown = write_definition(workspace, {"a": check(dependencies=["ghost"])}, name="u.json")
    result = cli("graph", str(unknown))
    assert result.exit_code == 2
    assert "/tasks/a/dependencies: unknown task 'ghost'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_reference_exits_2_naming_it(cli):
    result = cli("graph", "no_such_thing")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: no instance or template 'no_such_thing'"
    near = cli("graph", "sequential_pipelin")
    assert near.exit_code == 2
    assert "did you mean 'sequential_pipeline'?" in near.stderr
    assert cli("graph", "missing/file.json").exit_code == 2
    assert cli("graph", "x", "--format", "png").exit_code == 2


# -- instances ---------------------------------------------------------------------------


def run_mixed(cli, workspace) -> str:
    """Run a workflow that leaves tasks completed, failed and skipped; its id."""
    tasks = {
        "start": {**check(), "name": HOSTILE},
        "good": check(dependencies=["start"]),
        "bad": fails(dependencies=["start"], critical=False),
        "after_bad": check(dependencies=["bad"]),
        "end-task": check(dependencies=["good", "start"]),
    }
    path = write_definition(workspace, tasks)
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    return str(result.json()["id"])


def test_instance_graph_carries_task_states(cli, workspace):
    instance = run_mixed(cli, workspace)
    view = cli("graph", instance, "--json").json()
    assert view["kind"] == "instance" and view["ref"] == instance
    assert view["state"] == "completed"
    states = {n["id"]: n["state"] for n in view["nodes"]}
    assert states == {
        "start": "completed",
        "good": "completed",
        "bad": "failed",
        "after_bad": "skipped",
        "end-task": "completed",
    }
    nodes, edges = parse_mermaid(cli("graph", instance, "-f", "mermaid").stdout)
    assert {task_id: cls for task_id, (_, cls) in nodes.items()} == states
    assert edges == {(e["from"], e["to"]) for e in view["edges"]}
    dot_nodes, dot_edges = parse_dot(cli("graph", instance, "-f", "dot").stdout)
    assert {task_id: attrs["class"] for task_id, attrs in dot_nodes.items()} == states
    assert dot_nodes["bad"]["fillcolor"] == "#fee2e2"
    assert dot_edges == edges


def test_tree_colours_states_like_status(cli, workspace, monkeypatch):
    instance = run_mixed(cli, workspace)
    plain = cli("graph", instance)
    assert plain.exit_code == 0
    assert "\x1b[" not in plain.stdout  # not a terminal: no colour codes
    assert "── bad  failed" in plain.stdout
    assert "── after_bad  skipped" in plain.stdout
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = cli("graph", instance).stdout
    assert "\x1b[31mfailed\x1b[0m" in coloured  # red, as in `status`
    assert "\x1b[32mcompleted\x1b[0m" in coloured  # green
    assert "\x1b[2mskipped\x1b[0m" in coloured  # dim


def test_names_are_escaped_in_every_format(cli, workspace):
    instance = run_mixed(cli, workspace)
    flat = " ".join(HOSTILE.split())
    nodes, _ = parse_mermaid(cli("graph", instance, "-f", "mermaid").stdout)
    label = nodes["start"][0]
    assert '"' not in label and "<script>" not in label and "`" not in label
    assert mermaid_entities(label) == f"start<br/>{flat}"
    dot_nodes, _ = parse_dot(cli("graph", instance, "-f", "dot").stdout)
    assert dot_nodes["start"]["label"] == f"start\n{HOSTILE}"
    names = {n["id"]: n["name"] for n in cli("graph", instance, "--json").json()["nodes"]}
    assert names["start"] == HOSTILE
    tree = cli("graph", instance).stdout
    assert f"start  {flat}" in tree  # one line, the text as it is (no markup read)


def test_exact_id_then_template_name_then_id_prefix(cli, workspace):
    created = cli("create", "sequential_pipeline", "--json").json()["id"]
    assert created.startswith("sequential_pipeline-")
    # the template's name is a prefix of the instance's id, but names the template
    assert cli("graph", "sequential_pipeline", "--json").json()["kind"] == "template"
    assert cli("graph", created, "--json").json()["kind"] == "instance"
    by_prefix = cli("graph", created[:-2], "--json").json()
    assert (by_prefix["kind"], by_prefix["ref"]) == ("instance", created)
    created_view = cli("graph", created, "--json").json()
    assert {n["state"] for n in created_view["nodes"]} == {"pending"}
    assert created_view["state"] == "created"


def test_long_chains_and_names_are_not_cut(cli, workspace):
    tasks = {f"t{i}": check(dependencies=[f"t{i - 1}"] if i else []) for i in range(120)}
    tasks["t5"]["name"] = "a rather long task name " * 6
    path = write_definition(workspace, tasks)
    result = cli("graph", str(path))
    assert result.exit_code == 0
    for i in range(120):
        assert re.search(rf"── t{i}\b", result.stdout), f"t{i} missing"
    assert ("a rather long task name " * 6).strip() in result.stdout


# -- the outline and the layers ----------------------------------------------------------


def diamond():
    definition = {
        "name": "diamond",
        "tasks": {
            "top": {},
            "left": {"dependencies": ["top"]},
            "right": {"dependencies": ["top"]},
            "deep": {"dependencies": ["right"]},
            "bottom": {"dependencies": ["left", "deep"]},
        },
    }
    return build_graph(definition, kind="template", ref="diamond", source="diamond")


def test_outline_draws_each_task_once_under_its_deepest_dependency():
    graph = diamond()
    (top,) = graph_outline(graph)
    assert top.task == "top"
    left, right = top.children
    assert (left.task, right.task) == ("left", "right")
    assert [(c.task, c.reference, c.shown_under) for c in left.children] == [
        ("bottom", True, "deep")
    ]
    (deep,) = right.children
    assert [(c.task, c.reference) for c in deep.children] == [("bottom", False)]


def test_outline_of_a_very_deep_chain_does_not_recurse():
    depth = sys.getrecursionlimit() + 100
    tasks = {f"t{i}": {"dependencies": [f"t{i - 1}"] if i else []} for i in range(depth)}
    graph = build_graph({"tasks": tasks}, kind="template", ref="deep", source="deep")
    (item,) = graph_outline(graph)
    count = 1
    while item.children:
        (item,) = item.children
        count += 1
    assert count == depth


def test_layers_follow_depth_and_keep_children_near_parents():
    graph = diamond()
    assert graph_layers(graph) == [["top"], ["left", "right"], ["deep"], ["bottom"]]
    crossing = build_graph(
        {
            "tasks": {
                "a": {},
                "b": {},
                "from_b": {"dependencies": ["b"]},
                "from_a": {"dependencies": ["a"]},
            }
        },
        kind="template",
        ref="x",
        source="x",
    )
    assert graph_layers(crossing) == [["a", "b"], ["from_a", "from_b"]]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([], "/tasks: must be an object of tasks"),
        ({"a": "x"}, "/tasks/a: must be an object"),
        ({"a": {"dependencies": "b"}}, "/tasks/a/dependencies: must be a list of task ids"),
    ],
)
def test_build_graph_refuses_what_it_cannot_draw(tasks, message):
    from workflow_cli.errors import DefinitionError

    with pytest.raises(DefinitionError) as caught:
        build_graph({"tasks": tasks}, kind="template", ref="x", source="x.json")
    assert message in caught.value.details()


def test_task_graph_finds_cycles_as_graphlib_does():
    """The quick acyclicity check agrees with graphlib on many seeded random graphs (with
    and without cycles, self-dependencies and unknown tasks), and a cycle found is the
    one graphlib names."""
    import graphlib
    import random

    from workflow_cli.definition.graph import TaskGraph, resolve_groups

    chooser = random.Random(13)
    for _ in range(300):
        size = chooser.randint(1, 12)
        names = [f"t{i}" for i in range(size)]
        written = {
            name: [chooser.choice([*names, "unknown"]) for _ in range(chooser.randint(0, 3))]
            for name in names
        }
        graph = TaskGraph.build(resolve_groups(written, {}))
        try:
            list(graphlib.TopologicalSorter(graph.dependencies).static_order())
        except graphlib.CycleError as exc:
            assert graph.cycle() == list(reversed(exc.args[1]))
        else:
            assert graph.cycle() is None
        for name, found in written.items():
            kept = [d for d in dict.fromkeys(found) if d != name and d in written]
            assert graph.dependencies[name] == tuple(kept)
