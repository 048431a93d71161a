"""Reading definition and template files: whatever the file holds, the answer is the
data or exit 2 naming the file (and the place), never a RecursionError, a value JSON
cannot hold, a wait on a pipe, or minutes spent expanding aliases."""

from __future__ import annotations

import copy
import json
import math
import os
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.definition import loader
from workflow_cli.definition.loader import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING,
    MAX_VALUES,
    _Foreign,
    _plain_walk,
    parse_document,
    plain_problems,
)
from workflow_cli.errors import DefinitionError

TASKS: dict[str, Any] = {
    "a": {"action": "condition_check", "parameters": {"expression": "1"}},
}
TEMPLATE: dict[str, Any] = {
    "name": "tpl",
    "description": "a template",
    "parameters": {"items": {"type": "array", "default": []}},
    "workflow": {
        "id": "tpl",
        "name": "tpl",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": copy.deepcopy(TASKS),
    },
}
COMMANDS = [("validate",), ("create",), ("run",), ("graph",), ("templates", "show")]


def nested(depth: int) -> Any:
    value: Any = 1
    for index in range(depth):
        value = [value] if index % 2 else {"k": value}
    return value


def assert_refused(cli, path: Path, fragment: str) -> None:
    """Every command that reads the file answers exit 2, naming the file and the
    problem, with nothing written."""
    for command in COMMANDS:
        result = cli(*command, str(path))
        assert result.exit_code == 2, (command, result.stderr)
        assert str(path.name) in result.stderr, (command, result.stderr)
        assert fragment in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    instances = path.parent / "instances"
    assert not instances.exists() or not any(instances.iterdir())


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 2_000, 200_000])
def test_deeply_nested_json_is_refused(cli, workspace: Path, depth: int) -> None:
    path = workspace / "deep.json"
    if depth > 500:  # too deep for json.dumps: written as text
        text = json.dumps({"id": "x", "tasks": TASKS, "params": {"p": "HOLE"}})
        path.write_text(text.replace('"HOLE"', "[" * depth + "]" * depth))
    else:
        write_definition(workspace, TASKS, name="deep.json", params={"p": nested(depth)})
    assert_refused(cli, path, "levels deep (the limit)")


def test_deeply_nested_yaml_is_refused(cli, cli_process, workspace: Path) -> None:
    path = workspace / "deep.yaml"
    path.write_text("id: x\ntasks: {}\nparams:\n  p: " + "[" * 50_000 + "]" * 50_000 + "\n")
    result = cli_process("validate", str(path), timeout=60)
    assert result.returncode == 2
    assert f"nested more than {MAX_NESTING} levels deep" in result.stderr
    path.write_text("id: x\ntasks: {}\nparams:\n  p: " + "[" * 500 + "]" * 500 + "\n")
    assert_refused(cli, path, f"nested more than {MAX_NESTING} levels deep")
    block = "".join("  " * level + f"k{level}:\n" for level in range(MAX_NESTING + 5))
    path.write_text("id: x\ntasks: {}\nparams:\n" + block.replace("\n", "\n  ", 1))
    assert_refused(cli, path, "levels deep")


def test_nesting_up_to_the_limit_is_read() -> None:
    document = parse_document(
        json.dumps({"p": nested(MAX_NESTING - 1)}), "ok.json", yaml_syntax=False
    )
    assert document["p"] == nested(MAX_NESTING - 1)


def test_a_yaml_billion_laughs_is_refused_at_once(cli, cli_process, workspace: Path) -> None:
    lines = ['lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    path = workspace / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert len(path.read_bytes()) < 500
    fragment = f"more than {MAX_VALUES:,} values once its aliases"
    result = cli_process("validate", str(path), timeout=60)
    assert (result.returncode, fragment in result.stderr) == (2, True), result.stderr
    assert_refused(cli, path, fragment)


def test_a_few_aliases_are_fine(cli, workspace: Path) -> None:
    path = workspace / "aliases.yaml"
    path.write_text(
        "id: x\nname: x\nversion: '1'\nschema_version: 2.0.0\n"
        "params: {a: &shared [1, 2], b: *shared}\n"
        "tasks:\n  t: {action: condition_check, parameters: {expression: params.b}}\n"
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    status = cli("status", result.json()["id"], "--json").json()
    assert status["tasks"]["t"]["output"] == [1, 2]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2024-01-01", "is a YAML date or time (line 5)"),
        ("2024-01-01T10:00:00Z", "is a YAML date or time"),
        ("!!set {a, b}", "is a YAML set (!!set)"),
        ("!!binary aGVsbG8=", "is a YAML binary value (!!binary)"),
        ("!!omap [{a: 1}]", "is a YAML ordered map (!!omap)"),
        ("!!pairs [{a: 1}]", "is a YAML list of pairs (!!pairs)"),
        (".nan", "nan is not a finite number"),
        ("-.inf", "-inf is not a finite number"),
        ("1" * 5000, "a number has more than 4,300 digits"),
        ("!!python/object:os.system x", "could not determine a constructor"),
    ],
)
def test_yaml_values_that_are_not_json_are_refused(
    cli, workspace: Path, value: str, fragment: str
) -> None:
    path = workspace / "tags.yaml"
    path.write_text(
        "id: x\nname: x\nversion: '1'\nschema_version: 2.0.0\n"
        f"params:\n  when: {value}\n"
        "tasks:\n  t: {action: condition_check, parameters: {expression: '1'}}\n"
        if "line 5" not in fragment
        else "id: x\nname: x\nversion: '1'\nschema_version: 2.0.0\n"
        f"created: {value}\n"
        "tasks:\n  t: {action: condition_check, parameters: {expression: '1'}}\n"
    )
    assert_refused(cli, path, fragment)
    if "YAML" in fragment:
        result = cli("validate", str(path))
        pointer = "/created" if "line 5" in fragment else "/params/when"
        assert f"{pointer}: " in result.stderr
        assert "put it in quotes to keep it as text" in result.stderr


def test_a_quoted_date_stays_text(cli, workspace: Path) -> None:
    path = workspace / "quoted.yaml"
    path.write_text(
        "id: x\nname: x\nversion: '1'\nschema_version: 2.0.0\nparams: {when: '2024-01-01'}\n"
        "tasks:\n  t: {action: condition_check, parameters: {expression: params.when}}\n"
    )
    result = cli("run", str(path), "--json")
    assert result.exit_code == 0, result
    assert cli("status", result.json()["id"], "--json").json()["tasks"]["t"]["output"] == (
        "2024-01-01"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"a": NaN}', "NaN is not a JSON number"),
        ('{"a": -Infinity}', "-Infinity is not a JSON number"),
        ('{"a": 1e400}', "inf is not a finite number"),
        ('{"a": ' + "9" * 5000 + "}", "a number has more than 4,300 digits"),
    ],
)
def test_json_numbers_json_cannot_hold_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_document(text, "doc.json", yaml_syntax=False)
    assert fragment in "\n".join(caught.value.details())


def test_a_pipe_or_a_device_is_refused_not_waited_on(cli_process, workspace: Path) -> None:
    os.mkfifo(workspace / "pipe.json")
    for path, kind in ((workspace / "pipe.json", "a named pipe"), (Path("/dev/zero"), "a device")):
        result = cli_process("validate", str(path), timeout=60)
        assert result.returncode == 2
        assert f"is {kind}, not a file" in result.stderr


def test_a_folder_is_named_as_one(cli, workspace: Path) -> None:
    (workspace / "wf.json").mkdir()
    for command in ("validate", "create", "run"):
        result = cli(command, str(workspace / "wf.json"))
        assert result.exit_code == 2, (command, result)
        assert "wf.json: 1 problem" in result.stderr and "is a folder, not a file" in result.stderr
        assert "Errno" not in result.stderr


def test_a_huge_file_is_refused(cli, workspace: Path) -> None:
    path = workspace / "huge.json"
    path.write_text('{"id": "x", "pad": "' + "x" * MAX_DOCUMENT_BYTES + '"}')
    result = cli("validate", str(path))
    assert result.exit_code == 2
    assert f"is larger than {MAX_DOCUMENT_BYTES:,} bytes" in result.stderr


def test_too_many_values_are_refused() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_document(json.dumps({"p": [0] * (MAX_VALUES + 1)}), "many.json", yaml_syntax=False)
    assert f"holds more than {MAX_VALUES:,} values" in "\n".join(caught.value.details())


# -- template shapes and --param ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda t: t["workflow"]["tasks"]["a"].update(dependencies=[["b"]]), "dependencies/0"),
        (lambda t: t["workflow"]["tasks"]["a"].update(dependencies="a"), "a/dependencies"),
        (lambda t: t["workflow"]["tasks"].update(b=5), "/workflow/tasks/b"),
        (lambda t: t["workflow"]["tasks"].update(b=[{"x": 1}]), "/workflow/tasks/b"),
        (lambda t: t["workflow"].update(tasks=[1, 2]), "/workflow/tasks"),
        (lambda t: t["workflow"]["tasks"]["a"].update(action=["x"]), "/a/action"),
        (lambda t: t["workflow"]["tasks"]["a"].update(name={"x": 1}), "/a/name"),
        (lambda t: t.update(name=["x"]), "/name"),
        (lambda t: t.update(description=5), "/description"),
        (lambda t: t["parameters"]["items"].update(description=[]), "items/description"),
        (lambda t: t["parameters"]["items"].update(required="no"), "items/required"),
    ],
)
def test_templates_of_the_wrong_shape_are_refused(cli, workspace: Path, change, pointer) -> None:
    document = copy.deepcopy(TEMPLATE)
    change(document)
    path = workspace / "bad.json"
    path.write_text(json.dumps(document))
    for command in (("templates", "show"), ("create",), ("graph",), ("validate",)):
        result = cli(*command, str(path))
        assert result.exit_code == 2, (command, result)
        assert pointer in result.stderr, (command, result.stderr)
    (workspace / "templates").mkdir()
    (workspace / "templates" / "bad.json").write_text(json.dumps(document))
    assert cli("templates").exit_code == 2


def test_a_definition_of_the_wrong_shape_is_refused_by_templates_show(cli, workspace) -> None:
    path = write_definition(workspace, {"a": {**TASKS["a"], "dependencies": [["b"]]}, "b": 5})
    result = cli("templates", "show", str(path))
    assert result.exit_code == 2
    assert "/tasks/a/dependencies/0: must be a task id (text)" in result.stderr
    assert "/tasks/b: must be an object (a task)" in result.stderr


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "expects JSON (array)"),
        (json.dumps(nested(MAX_NESTING + 2)), "levels deep (the limit)"),
        ("[1e400]", "inf is not a finite number"),
        ("[" + "1" * 5000 + "]", "expects JSON (array)"),
    ],
)
def test_param_values_json_cannot_hold_are_refused(cli, workspace, value, fragment) -> None:
    path = workspace / "tpl.json"
    path.write_text(json.dumps(TEMPLATE))
    result = cli("create", str(path), f"--param=items={value}")
    assert result.exit_code == 2, result
    assert fragment in result.stderr
    assert len(result.stderr) < 1000


# -- the quick check of plain data agrees with the walk that says where -------------------


class _Text(str):
    pass


class _Number(int):
    pass


class _Real(float):
    pass


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


EDGE_VALUES: list[Any] = [
    None, True, 0, -1, 2**80, 1.5, "x", "", [], {}, math.nan, math.inf, -math.inf,
    _Text("t"), _Number(3), _Real(0.5), _Real(math.nan), (1, 2), {1, 2}, b"x", object(),
    _Foreign("date or time", 3, "2026-01-01"), _nested(MAX_NESTING), _nested(MAX_NESTING + 1),
    _nested(MAX_NESTING - 1, math.inf), _nested(MAX_NESTING, {}), [[], {}, [[{}]]],
]  # fmt: skip


def test_the_quick_check_of_plain_data_agrees_with_the_walk(monkeypatch) -> None:
    """`plain_problems` answers the usual case without a path per value; whatever it
    answers is what the walk that names each place answers."""
    from test_schema_check import corpus, mutate

    rng = random.Random(20261203)
    documents = corpus()
    documents += [mutate(rng.choice(documents), rng) for _ in range(300)]
    for value in EDGE_VALUES:
        documents += [value, {"a": value}, [1, value], {"a": [{"b": value}]}]
    for document in documents:
        assert plain_problems(document) == _plain_walk(document), document
    monkeypatch.setattr(loader, "MAX_VALUES", 5)  # the count, at its limit and beyond
    for document in ([1, 2, 3, 4], [1, 2, 3, 4, 5], {"a": [1, {"b": 2}]}, {"a": [1, [2, 3]]}):
        assert plain_problems(document) == _plain_walk(document), document
    assert plain_problems([1, 2, 3, 4]) == [] and plain_problems([1, 2, 3, 4, 5]) != []
