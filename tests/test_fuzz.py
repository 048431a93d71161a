"""Property tests through the in-process CLI: whatever document or ``--param`` a user
gives, ``validate`` and ``create`` answer 0 or 2 — never a traceback, never an internal
error — and a refused ``create`` writes nothing. Parameter values are data: ``{{`` in a
value is never evaluated."""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from conftest import value_paths
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from workflow_cli.cli.app import app

# WORKFLOW_CLI_FUZZ_SCALE=30 multiplies every example count (about 10,000 inputs in all),
# for a long campaign by hand; the suite runs the default of 1.
SCALE = int(os.environ.get("WORKFLOW_CLI_FUZZ_SCALE", "1"))

FUZZ = settings(
    max_examples=60 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID: dict[str, Any] = {
    "id": "fuzz",
    "name": "fuzzed workflow",
    "version": "1",
    "schema_version": "2.0.0",
    "description": "a valid definition that the strategies below break",
    "params": {"count": 3, "label": "x", "flag": True},
    "defaults": {"retry_count": 0, "timeout_seconds": 5},
    "tasks": {
        "first": {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"n": "{{ params.count }}", "label": "{{ params.label }}-x"},
        },
        "check": {
            "action": "condition_check",
            "parameters": {"expression": "steps.first.output.n > 1"},
            "dependencies": ["first"],
        },
        "last": {
            "action": "agent_task",
            "agent_id": "echo",
            "dependencies": ["first", "check"],
            "conditions": ["params.flag", "steps.check.output"],
            "parameters": {"v": "{{ steps.check.output }}", "all": ["{{ params.count * 2 }}"]},
            "priority": 2,
            "on_failure": "continue",
        },
    },
}
EVERY_ACTION: dict[str, Any] = {
    "id": "every-action",
    "name": "one task of each action",
    "version": "1",
    "schema_version": "2.0.0",
    "params": {"who": "alice", "dir": "out"},
    "tasks": {
        "write": {
            "action": "file_operation",
            "parameters": {
                "operation": "write",
                "path": "{{ params.dir }}/a.json",
                "content": {"x": 1},
                "encoding": "json",
                "overwrite": True,
            },
        },
        "copy": {
            "action": "file_operation",
            "parameters": {"operation": "copy", "path": "out/a.json", "destination": "out/b"},
            "dependencies": ["write"],
        },
        "ask": {
            "action": "api_call",
            "parameters": {
                "url": "http://127.0.0.1:9/{{ steps.write.output.path }}",
                "method": "POST",
                "headers": {"X-Test": "1"},
                "json": {"a": [1, 2]},
                "expected_status": [200, 201],
            },
            "dependencies": ["write"],
            "timeout_seconds": 2,
            "retry_count": 1,
        },
        "gate": {
            "action": "approval_gate",
            "parameters": {"approvers": ["{{ params.who }}", "bob"], "message": "ok?"},
            "dependencies": ["ask", "copy"],
        },
        "child": {
            "action": "workflow_trigger",
            "parameters": {"template": "sequential_pipeline", "params": {}},
            "dependencies": ["gate"],
            "critical": False,
        },
    },
}
VALID_TEMPLATE: dict[str, Any] = {
    "name": "fuzz-template",
    "description": "the same workflow as a template",
    "parameters": {
        "count": {"type": "integer", "default": 3},
        "label": {"type": "string", "default": "x"},
        "flag": {"type": "boolean", "default": True},
    },
    "workflow": {k: v for k, v in VALID.items() if k != "params"},
}
FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{{ ", " }}", "steps.", "params.", "instance.id",
    "first", "check", "output", "count", "label", " ", "(", ")", "[", "]", "'", '"', "|",
    "length", "7*7", "__class__", "__globals__", "1/0", ".", "missing", "and", "not", "==",
    "None", "\n", "\\", "{{ steps.first.output }}", "{{ params.nope }}", "{% for x in y %}",
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
expression_text = st.lists(
    st.sampled_from(FRAGMENTS) | st.text(max_size=4), min_size=0, max_size=8
).map("".join)
names = st.sampled_from(["first", "check", "last", "", "ghost", "first "]) | st.text(max_size=8)


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


# Values of the wrong type for a field: shallow, so that the checks behind the schema
# (dependencies, conditions, parameters, agents, parameter types) meet them as they are.
wrong_values = (
    json_scalars
    | st.lists(json_scalars, max_size=3)
    | st.dictionaries(st.text(max_size=4), json_scalars, max_size=3)
    | st.lists(st.lists(st.integers(), max_size=2), min_size=1, max_size=2)
)
FIELDS = {
    "task": [
        "dependencies", "conditions", "parameters", "agent_id", "action", "priority",
        "timeout_seconds", "retry_count", "on_failure", "critical", "execution_mode",
        "run_if_dependencies_skipped",
    ],
    "body": ["id", "name", "version", "schema_version", "params", "defaults", "tasks"],
    "parameter": ["type", "default", "enum", "required"],
    "top": ["name", "parameters", "workflow", "description"],
    "task_parameters": [
        "expression", "approvers", "message", "operation", "path", "destination", "content",
        "encoding", "overwrite", "pattern", "url", "method", "headers", "json",
        "expected_status", "template", "params", "n",
    ],
}  # fmt: skip


def _targets(document: Any) -> dict[str, list[dict[str, Any]]]:
    """The objects a field mutation may hit, by kind."""
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FIELDS}
    if not isinstance(document, dict):
        return found
    body = document.get("workflow", document)
    if "workflow" in document:
        found["top"].append(document)
        specs = document.get("parameters")
        if isinstance(specs, dict):
            found["parameter"] += [spec for spec in specs.values() if isinstance(spec, dict)]
    if isinstance(body, dict):
        found["body"].append(body)
        tasks = body.get("tasks")
        if isinstance(tasks, dict):
            found["task"] += [task for task in tasks.values() if isinstance(task, dict)]
            for task in found["task"]:
                if isinstance(task.get("parameters"), dict):
                    found["task_parameters"].append(task["parameters"])
    return found


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    """A valid definition or template with one to four things broken."""
    document = copy.deepcopy(draw(st.sampled_from([VALID, VALID_TEMPLATE, EVERY_ACTION])))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        operation = draw(
            st.sampled_from(["field", "field", "drop", "retype", "expression", "deps", "add"])
        )
        targets = {kind: found for kind, found in _targets(document).items() if found}
        if operation == "deps" and targets.get("task"):
            task = draw(st.sampled_from(targets["task"]))
            task["dependencies"] = draw(st.lists(names, max_size=4))
            continue
        if operation == "field" and targets:
            target = draw(st.sampled_from(targets[kind := draw(st.sampled_from(sorted(targets)))]))
            target[draw(st.sampled_from(FIELDS[kind]))] = draw(wrong_values | expression_text)
            continue
        paths = list(value_paths(document))
        if not paths:
            document = draw(json_values)
            continue
        path = draw(st.sampled_from(paths))
        parent, key = _parent(document, path), path[-1]
        if operation == "drop":
            del parent[key]
        elif operation == "expression":
            parent[key] = draw(expression_text)
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(names)] = draw(json_values)
        else:
            parent[key] = draw(json_values)
    return document


documents = st.one_of(mutated_definitions(), mutated_definitions(), json_values)


@st.composite
def document_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A file name and its bytes: a document as JSON or YAML, or broken text."""
    form = draw(st.sampled_from(["json", "json", "json", "yaml", "yaml", "text", "truncated"]))
    if form == "text":
        return "doc.json", draw(st.text(max_size=40)).encode("utf-8")
    if form == "truncated":
        text = json.dumps(draw(mutated_definitions()))
        return "doc.json", text[: draw(st.integers(0, len(text)))].encode("utf-8")
    document = draw(documents)
    if form == "yaml":
        return "doc.yaml", yaml.safe_dump(document, allow_unicode=True).encode("utf-8")
    return "doc.json", json.dumps(document, ensure_ascii=draw(st.booleans())).encode("utf-8")


@contextmanager
def scratch_workspace() -> Iterator[Path]:
    """A fresh workspace for one example (fixtures are per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        root = Path(folder) / "ws"
        root.mkdir()
        yield root


def invoke(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--home", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def instance_entries(root: Path) -> list[str]:
    folder = root / "instances"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_clean(code: int, out: str, err: str) -> None:
    assert code in (0, 2), (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "internal error" not in err, err


def test_the_seed_documents_are_valid() -> None:
    """The strategies start from valid documents, so what they break is what they test."""
    for document in (VALID, VALID_TEMPLATE, EVERY_ACTION):
        with scratch_workspace() as root:
            path = root / "seed.json"
            path.write_text(json.dumps(document))
            assert invoke(root, "validate", str(path)) == (0, f"{path}: valid\n", "")
            code, out, err = invoke(root, "create", str(path), "--json")
            assert code == 0, err
            assert instance_entries(root) == [json.loads(out)["id"]]


@FUZZ
@given(document_files())
def test_validate_and_create_answer_0_or_2_for_any_document(file: tuple[str, bytes]) -> None:
    name, data = file
    with scratch_workspace() as root:
        path = root / name
        path.write_bytes(data)

        code, out, err = invoke(root, "validate", str(path))
        assert_clean(code, out, err)
        assert instance_entries(root) == []
        json_code, json_out, json_err = invoke(root, "validate", str(path), "--json")
        assert_clean(json_code, json_out, json_err)
        report = json.loads(json_out)
        assert json_code == code
        assert report["valid"] == (code == 0)
        assert all(isinstance(p["pointer"], str) for p in report["problems"])

        code, out, err = invoke(root, "create", str(path), "--json")
        assert_clean(code, out, err)
        if code == 2:
            assert err.startswith("error: "), err
            assert instance_entries(root) == []
        else:
            created = json.loads(out)["id"]
            assert instance_entries(root) == [created]
            folder = root / "instances" / created
            json.loads((folder / "definition.json").read_text(encoding="utf-8"))
            status_code, status_out, status_err = invoke(root, "status", created, "--json")
            assert status_code == 0, status_err
            assert json.loads(status_out)["state"] == "created"


TYPED_TEMPLATE: dict[str, Any] = {
    "name": "typed",
    "description": "one parameter of each type",
    "parameters": {
        "count": {"type": "integer", "default": 1},
        "ratio": {"type": "number", "default": 0.5},
        "flag": {"type": "boolean", "default": False},
        "items": {"type": "array", "default": []},
        "label": {"type": "string", "default": "plain"},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    },
    "workflow": {
        "id": "typed",
        "name": "typed parameters",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": {
            "show": {
                "action": "agent_task",
                "agent_id": "echo",
                "parameters": {
                    "count": "{{ params.count }}",
                    "ratio": "{{ params.ratio }}",
                    "flag": "{{ params.flag }}",
                    "items": "{{ params.items }}",
                    "label": "{{ params.label }}",
                    "framed": "<{{ params.label }}>",
                    "mode": "{{ params.mode }}",
                },
            },
            "same": {
                "action": "condition_check",
                "parameters": {"expression": "params.label"},
                "dependencies": ["show"],
            },
        },
    },
}
PYTHON_TYPES: dict[str, Any] = {
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "string": str,
}
VALUE_FRAGMENTS = [
    "{{", "}}", "{{7*7}}", "=", "==", "1", "-2", "0.5", "1e400", "nan", "inf", "true", "no",
    "[1, 2]", "[", "{}", '"x"', "null", " ", "\u00e9", "\u0663", "\U0001f600", "\x00", "fast",
]  # fmt: skip
param_values = st.lists(st.sampled_from(VALUE_FRAGMENTS) | st.text(max_size=6), max_size=5).map(
    "".join
)
param_args = st.lists(
    st.tuples(
        st.sampled_from([*TYPED_TEMPLATE["parameters"], "", " count", "unknown"])
        | st.text(max_size=5),
        st.sampled_from(["=", "=", "=", "", "=="]),
        param_values,
    ).map("".join),
    max_size=4,
)


@contextmanager
def typed_workspace() -> Iterator[tuple[Path, Path]]:
    with scratch_workspace() as root:
        path = root / "typed.json"
        path.write_text(json.dumps(TYPED_TEMPLATE), encoding="utf-8")
        yield root, path


@FUZZ
@given(param_args)
def test_any_param_values_answer_0_or_2_and_are_stored_typed(args: list[str]) -> None:
    with typed_workspace() as (root, template):
        code, out, err = invoke(
            root, "create", str(template), "--json", *(f"--param={a}" for a in args)
        )
        assert_clean(code, out, err)
        if code == 2:
            assert err.startswith("error: "), err
            assert instance_entries(root) == []
            return
        created = json.loads(out)["id"]
        assert instance_entries(root) == [created]
        definition = json.loads(
            (root / "instances" / created / "definition.json").read_text(encoding="utf-8")
        )
        params = definition["params"]
        assert set(params) == set(TYPED_TEMPLATE["parameters"])
        for name, spec in TYPED_TEMPLATE["parameters"].items():
            value = params[name]
            assert isinstance(value, PYTHON_TYPES[spec["type"]]), (name, value)
            if spec["type"] in ("integer", "number"):
                assert not isinstance(value, bool)
                assert math.isfinite(value)
        assert params["mode"] in ("fast", "slow")
        given_label = [a.partition("=")[2] for a in args if a.partition("=")[0].strip() == "label"]
        if given_label:
            assert params["label"] == given_label[0]


def run_with_label(root: Path, template: Path, label: str) -> dict[str, Any]:
    code, out, err = invoke(root, "run", str(template), "--json", f"--param=label={label}")
    assert code == 0, (code, out, err)
    instance_id = json.loads(out)["id"]
    code, out, err = invoke(root, "status", instance_id, "--json")
    assert code == 0, err
    status: dict[str, Any] = json.loads(out)
    return status


def test_a_template_looking_value_is_kept_literally() -> None:
    with typed_workspace() as (root, template):
        status = run_with_label(root, template, "{{7*7}}")
        assert status["state"] == "completed"
        assert status["params"]["label"] == "{{7*7}}"
        shown = status["tasks"]["show"]["output"]
        assert shown["label"] == "{{7*7}}"
        assert shown["framed"] == "<{{7*7}}>"
        assert status["tasks"]["same"]["output"] == "{{7*7}}"
        outputs = json.dumps([task["output"] for task in status["tasks"].values()])
        assert "49" not in outputs
        stored = next((root / "instances").iterdir()) / "definition.json"
        assert json.loads(stored.read_text(encoding="utf-8"))["params"]["label"] == "{{7*7}}"


@FUZZ
@given(param_values)
def test_any_string_value_reaches_tasks_unchanged(label: str) -> None:
    with typed_workspace() as (root, template):
        status = run_with_label(root, template, label)
        assert status["state"] == "completed"
        assert status["params"]["label"] == label
        shown = status["tasks"]["show"]["output"]
        assert shown["label"] == label
        assert shown["framed"] == f"<{label}>"
        assert status["tasks"]["same"]["output"] == label
        assert shown["count"] == 1 and shown["items"] == [] and shown["flag"] is False


# -- hostile shapes: nesting, YAML tags, markup, garbled arguments, expressions ----------

SMALL = settings(
    max_examples=25 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_no_crash(code: int, out: str, err: str, allowed: tuple[int, ...]) -> None:
    assert code in allowed, (code, out, err)
    for text in (out, err):
        assert "Traceback" not in text and "internal error" not in text, text


@st.composite
def nested_documents(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid definition or template with a value nested 1 to 300 levels deep (as
    text, so depths Python's json.dumps cannot build are reachable) somewhere in it."""
    document = copy.deepcopy(draw(st.sampled_from([VALID, VALID_TEMPLATE, TYPED_TEMPLATE])))
    paths = [path for path in value_paths(document) if path]
    path = draw(st.sampled_from(paths))
    _parent(document, path)[path[-1]] = "@@HOLE@@"
    depth = draw(st.integers(1, 300))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"k": ', "}")]))
    inner = opener * depth + draw(st.sampled_from(["1", '"x"', "null"])) + closer * depth
    if opener == "[":
        inner = "[" * depth + "]" * depth if draw(st.booleans()) else inner
    text = json.dumps(document).replace('"@@HOLE@@"', inner)
    name = draw(st.sampled_from(["doc.json", "doc.yaml"]))  # JSON is YAML, in flow style
    return name, text.encode("utf-8")


@SMALL
@given(nested_documents())
def test_nesting_at_any_depth_answers_0_or_2(file: tuple[str, bytes]) -> None:
    name, data = file
    with scratch_workspace() as root:
        path = root / name
        path.write_bytes(data)
        for command in (("validate",), ("create", "--json"), ("graph",), ("templates", "show")):
            code, out, err = invoke(root, *command[:1], str(path), *command[1:])
            assert_no_crash(code, out, err, (0, 2))


YAML_VALUES = [
    "!!set {a, b}", "!!binary aGVsbG8=", "2024-01-01", "2024-01-01 10:00:00", "!!omap [{a: 1}]",
    "!!pairs [{a: 1}]", ".nan", "-.inf", "!!float .inf", "!!python/name:os.system", "!x y",
    "&a [1, *a]", "*nowhere", "0x1F", "0o17", "1_000", "9" * 5000, "~", "'[/]'", "{? [a]: 1}",
    "!!str 1", "!!int '3'", "[1, 2", "'unterminated",
]  # fmt: skip


@SMALL
@given(
    st.sampled_from([VALID, VALID_TEMPLATE, EVERY_ACTION]),
    st.data(),
    st.lists(st.sampled_from(YAML_VALUES), min_size=1, max_size=3),
)
def test_yaml_tags_answer_0_or_2(document: Any, data: st.DataObject, values: list[str]) -> None:
    """Each drawn YAML value replaces one scalar of a valid document, in YAML text."""
    lines = yaml.safe_dump(document, allow_unicode=True).splitlines()
    for value in values:
        scalars = [i for i, line in enumerate(lines) if ": " in line and not line.endswith(":")]
        index = data.draw(st.sampled_from(scalars))
        key = lines[index].split(": ")[0]
        lines[index] = f"{key}: {value}"
    with scratch_workspace() as root:
        path = root / "doc.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for command in (("validate",), ("create", "--json"), ("graph",)):
            code, out, err = invoke(root, *command[:1], str(path), *command[1:])
            assert_no_crash(code, out, err, (0, 2))


MARKUP_FRAGMENTS = ["[/]", "[bold]", "[/bold]", "[red]", "[link=x]", "\\", "[", "]", "a", " "]
markup_text = st.lists(st.sampled_from(MARKUP_FRAGMENTS), min_size=1, max_size=6).map("".join)


@SMALL
@given(markup_text, markup_text, markup_text)
def test_markup_in_user_text_never_breaks_a_command(name: str, message: str, who: str) -> None:
    document = copy.deepcopy(VALID)
    document["name"] = name
    document["description"] = message
    document["params"]["label"] = message
    document["tasks"]["first"]["name"] = name
    document["tasks"]["gate"] = {
        "action": "approval_gate",
        "parameters": {"approvers": [who], "message": message},
    }
    document["tasks"]["bad"] = {
        "action": "condition_check",
        "parameters": {"expression": json.dumps(message) + " + 1"},
        "critical": False,
    }
    with scratch_workspace() as root:
        path = root / "doc.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        code, out, err = invoke(root, "run", str(path), "--json")
        assert_no_crash(code, out, err, (3,))
        instance = json.loads(out)["id"]
        for command in (
            ("status", instance),
            ("list",),
            ("debug", instance),
            ("health", instance, "--explain"),
            ("graph", instance),
            ("monitor", instance, "--duration", "0"),
            ("checkpoint", instance, "--label", message),
            ("approve", instance, "--as", who, "--comment", message),
            ("resume", instance),
            ("status", instance),
            ("alerts",),
        ):
            code, out, err = invoke(root, *command)
            assert_no_crash(code, out, err, (0, 1, 2, 3))  # 2: e.g. a blank approver name


WEIRD = [
    "1e309", "-1e309", "nan", "inf", "-1", "0", "1e-320", "99999999999999999999", "", " ",
    "[/]", "x" * 300, "é", "²", "٣", "99999999999d", "1e308", "-", "--", "a/b", "../x",
    "/etc/passwd", "1" * 5000, "ID",
]  # fmt: skip
ARGUMENTS = [
    ["checkpoints", "cleanup", "ID", "--max-age-days", "W"],
    ["checkpoints", "cleanup", "ID", "--max-count", "W"],
    ["report", "ID", "--html", "W"],
    ["health", "ID", "--stuck-after", "W"],
    ["monitor", "ID", "--duration", "W"],
    ["monitor", "ID", "--duration", "0", "--interval", "W"],
    ["debug", "ID", "W", "--lines", "W"],
    ["alerts", "--since", "W"],
    ["alerts", "--level", "W"],
    ["status", "W"],
    ["graph", "W"],
    ["checkpoint", "ID", "--label", "W"],
    ["rollback", "ID", "--checkpoint", "W"],
    ["retry", "ID", "--task", "W"],
    ["skip", "ID", "--task", "W"],
    ["approve", "ID", "--as", "W", "--comment", "W"],
    ["list", "--state", "W"],
    ["templates", "show", "W"],
    ["checkpoints", "show", "ID", "W"],
    ["checkpoints", "diff", "ID", "W", "W"],
    ["resume", "ID", "--set", "W"],
    ["validate", "W"],
    ["events", "W"],
]


@SMALL
@given(st.lists(st.tuples(st.sampled_from(ARGUMENTS), st.data()), min_size=1, max_size=4))
def test_garbled_arguments_answer_with_an_exit_code(calls: list[tuple[list[str], Any]]) -> None:
    with scratch_workspace() as root:
        path = root / "doc.json"
        path.write_text(json.dumps(VALID), encoding="utf-8")
        code, out, err = invoke(root, "run", str(path), "--json")
        assert code == 0, err
        instance = json.loads(out)["id"]
        for template, data in calls:
            argv = []
            for part in template:
                if part == "W":
                    part = data.draw(st.sampled_from(WEIRD))
                argv.append(instance if part == "ID" else part)
            code, out, err = invoke(root, *argv)
            assert_no_crash(code, out, err, (0, 1, 2, 3))


SIZE_PAYLOADS = [
    "{{ 'a' * 10**9 }}", "{{ [1] * 10**9 }}", "{{ range(10**9) | list }}", "{{ 10 ** 100000 }}",
    "{{ '{:>999999999}'.format(1) }}", "{{ '%999999999s' % 'a' }}", "{{ 'x' | center(10**9) }}",
    "{{ [].pop }}", "{{ range }}", "{{ '%s' | format(range) }}", "{{ 'nan' | float }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{{ ['x' * 999999] * 100000 }}",
    "{{ 1 | pprint }}", "{{ lipsum }}", "{{ self }}",
]  # fmt: skip


@SMALL
@given(
    st.lists(st.sampled_from(SIZE_PAYLOADS) | expression_text, min_size=1, max_size=3),
    st.sampled_from(["parameter", "condition", "check"]),
)
def test_hostile_expressions_end_as_exit_2_or_a_failed_task(
    payloads: list[str], place: str
) -> None:
    document = copy.deepcopy(VALID)
    for index, text in enumerate(payloads):
        task: dict[str, Any] = {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"v": text},
            "critical": False,
        }
        if place == "condition":
            task["conditions"] = [text.replace("{{", "").replace("}}", "")]
        elif place == "check":
            task = {
                "action": "condition_check",
                "parameters": {"expression": text.replace("{{", "").replace("}}", "")},
                "critical": False,
            }
        document["tasks"][f"hostile{index}"] = task
    with scratch_workspace() as root:
        path = root / "doc.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        code, out, err = invoke(root, "run", str(path), "--json")
        assert_no_crash(code, out, err, (0, 1, 2))
        if code != 2:
            instance = json.loads(out)["id"]
            for command in (("status", instance), ("debug", instance)):
                code, out, err = invoke(root, *command)
                assert_no_crash(code, out, err, (0, 1))
            journal = root / "instances" / instance / "events.jsonl"
            assert journal.stat().st_size < 2_000_000
