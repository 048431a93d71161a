"""The compiled schema check (definition/schema_check.py) against jsonschema itself: on
every schema version, the shipped templates, the definitions of the other tests and many
seeded mutations of them, a document the check calls valid is one jsonschema finds no
error in (and one it calls invalid, one jsonschema finds an error in); the keywords
whose meaning is easy to get wrong, one by one; and a valid one-task ``run`` that never
imports jsonschema, while an invalid one still gets jsonschema's own messages."""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys
from collections import OrderedDict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import value_paths
from jsonschema import Draft202012Validator
from test_definitions_docs import MULTI_AGENT, SIMPLE_ANALYSIS
from test_fuzz import EVERY_ACTION, VALID

from workflow_cli.definition import validation
from workflow_cli.definition.migrations import VERSIONS, normalize
from workflow_cli.definition.schema_check import compile_schema
from workflow_cli.definition.templates import builtin_dir, read_template
from workflow_cli.errors import Problem

MIGRATIONS = Path(__file__).parent / "migrations"

# A definition that uses every part of the 2.0.0 schema.
EVERY_PART: dict[str, Any] = {
    "id": "every-part",
    "name": "every part of the schema",
    "version": "3",
    "schema_version": "2.0.0",
    "description": "d",
    "params": {"n": 2, "list": [1, 2]},
    "secrets": {"token": {"env": "TOKEN"}, "key": {"file": "key.txt"}},
    "defaults": {"retry_count": 2, "retry_delay": 0.5, "retry_backoff": 2, "priority": 0,
                 "retry_on": ["timeout", "http:5xx"], "execution_mode": "parallel"},
    "on_failure": "compensate",
    "timeout_seconds": 60,
    "checkpoint_interval": 10,
    "expected_duration": 5.5,
    "groups": {"loop": {"tasks": ["a", "b"],
                        "repeat": {"until": "output.b", "max_iterations": 3, "delay_seconds": 0}}},
    "monitoring": {"sample_interval": 0.5,
                   "thresholds": {"cpu": {"warning": 0.5, "critical": 0.9},
                                  "memory": {"warning": 0.7}, "disk": {"critical": 1}}},
    "hooks": [
        {"name": "h", "events": "workflow.failed", "command": "notify me",
         "timeout_seconds": 3, "retry_count": 1, "retry_delay": 0},
        {"events": ["task.failed", "workflow.completed"], "url": "https://example.invalid/x",
         "headers": {"X-A": "b"}},
        {"events": ["approval.required"], "command": ["notify", "--all"]},
    ],
    "tasks": {
        "a": {"action": "agent_task", "agent_id": "echo", "parameters": {"x": 1},
              "name": "A", "description": "first", "cache": True, "milestone": False,
              "output_schema": {"type": "object"}, "critical": True, "on_failure": "continue",
              "max_retry_delay": 10, "timeout_seconds": 1.5},
        "b": {"action": "agent_task", "agent_id": "echo", "dependencies": ["a"],
              "conditions": "steps.a.output", "for_each": [1, 2, 3], "max_parallel": 2,
              "cache": {"key": "k", "ttl_seconds": 60, "files": ["in.csv"]},
              "run_if_dependencies_skipped": True, "parallel_group": "g_1"},
        "c": {"action": "wait_for_event", "dependencies": ["b"],
              "parameters": {"event": "go", "filter": "event.data.ok",
                             "timeout_seconds": "{{ params.n }}", "on_timeout": "continue"}},
        "d": {"action": "wait_for_event", "parameters": {"event": "go", "timeout_seconds": 2}},
        "e": {"action": "agent_task", "agent_id": "echo", "for_each": "{{ params.list }}",
              "repeat": {"until": "output", "max_iterations": 2},
              "conditions": ["params.n > 1", "true"], "expected_duration": 1,
              "compensate": {"action": "agent_task", "agent_id": "undo", "parameters": {},
                             "timeout_seconds": 1, "retry_count": 0, "retry_delay": 1}},
    },
}  # fmt: skip


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def current() -> list[Any]:
    """The definitions of schema 2.0.0 the tests and the templates hold."""
    documents = [VALID, EVERY_ACTION, EVERY_PART]
    documents += [normalize(copy.deepcopy(d))[0] for d in (SIMPLE_ANALYSIS, MULTI_AGENT)]
    documents += [read_template(path).workflow for path in sorted(builtin_dir().glob("*.json"))]
    return [copy.deepcopy(d) for d in documents]


def corpus() -> list[Any]:
    """Those, and the migration tests' definitions of every version."""
    return current() + [_load(path) for path in sorted(MIGRATIONS.iterdir())]


def _schema_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from value
            yield from _schema_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schema_names(item)


NAMES = [*sorted(set(_schema_names(validation.workflow_schema()))), "x-extra", "", "9bad"]
SUBSTITUTES: list[Any] = [
    1.0, 2.0, 0.0, True, False, None, "x", "", [], {}, 0, -1, 1, 2, 0.5, -0.5, 1e-9, 2**70,
    1e308, -1e308, math.nan, math.inf, "a" * 101, ["x"], ["x", "x"], [1, True], [1, 1.0],
    [True, True], [[1], [1]], [{"a": 1}, {"a": True}], {"env": "E"}, {"file": "f"},
    {"env": "E", "file": "f"}, {"env": ""}, {"until": "x"}, {"until": ""}, "workflow.failed",
    ["workflow.failed"], ["nope"], "wait_for_event", {"event": "go"}, {"event": ""},
    {"key": "k"}, {"tasks": ["a"], "repeat": {"until": "x"}}, "2.0.0", "1.0.0", "1.2.0",
    "https://x", "ftp://x", "a\n", "\u00e9", "e\u0301",
]  # fmt: skip


# What a scalar becomes: each JSON type, and the values type checks are easy to get wrong on.
RETYPED: list[Any] = [True, False, 1, 1.0, 1.5, 0, None, "x", "", [], {}]


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def mutate(document: Any, rng: random.Random) -> Any:
    """`document` with one to three things changed."""
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 3)):
        paths = list(value_paths(document))
        containers = [()] + [p for p in paths if isinstance(_at(document, p), (dict, list))]
        operation = rng.choice(
            ["drop", "substitute", "retype", "retype", "add", "duplicate", "number", "string",
             "wait", "rename", "version"]
        )  # fmt: skip
        if not paths:
            return rng.choice(SUBSTITUTES)
        path = rng.choice(paths)
        parent, key, value = _at(document, path[:-1]), path[-1], _at(document, path)
        if operation == "drop":
            del parent[key]
        elif operation == "substitute":
            parent[key] = copy.deepcopy(rng.choice(SUBSTITUTES))
        elif operation == "retype" and not isinstance(value, (dict, list)):
            parent[key] = copy.deepcopy(rng.choice(RETYPED))
        elif operation == "add":
            target = _at(document, rng.choice(containers))
            extra = copy.deepcopy(rng.choice([*SUBSTITUTES, _at(document, rng.choice(paths))]))
            if isinstance(target, dict):
                target[rng.choice(NAMES)] = extra
            else:
                target.append(extra)
        elif operation == "duplicate":
            lists = [_at(document, p) for p in containers if isinstance(_at(document, p), list)]
            lists = [each for each in lists if each]
            if lists:
                chosen = rng.choice(lists)
                chosen.append(copy.deepcopy(rng.choice(chosen)))
        elif operation == "number" and type(value) in (int, float):
            parent[key] = rng.choice(
                [value - 1, value + 1, -value, value * 1000, value + 0.5, 0, float(value)]
            )
        elif operation == "string" and isinstance(value, str):
            parent[key] = rng.choice(["", value * 30, value + "\n", "9" + value, " " + value])
        elif operation == "wait" and isinstance(document, dict):
            tasks = document.get("tasks")
            if isinstance(tasks, dict) and tasks:
                task = tasks[rng.choice(sorted(tasks, key=str))]
                if isinstance(task, dict):
                    task["action"] = "wait_for_event"
        elif operation == "rename" and isinstance(parent, dict):
            parent[rng.choice(["9bad", "", "a" * 101, "ok_name", *NAMES[:5]])] = parent.pop(key)
        elif operation == "version" and isinstance(document, dict):
            document["schema_version"] = rng.choice(VERSIONS)
    return document


def _expected_problems(document: Any, version: str) -> list[Problem]:
    """What jsonschema alone reports, as schema_problems words it."""
    return validation._problems(validation._found(validation._validator(version), document))


def test_the_check_never_calls_valid_what_jsonschema_finds_an_error_in():
    rng = random.Random(20261203)
    counts = {True: 0, False: 0, None: 0}
    for version in VERSIONS:
        check = compile_schema(validation.flattened(validation.workflow_schema(version)))
        raw = Draft202012Validator(validation.workflow_schema(version))
        for base in corpus():
            if isinstance(base, dict):
                base["schema_version"] = version
            for document in [base] + [mutate(base, rng) for _ in range(40)]:
                verdict = check(document)
                errors = _expected_problems(document, version)
                counts[verdict] += 1
                if verdict is True:
                    assert errors == [], (version, document)
                    assert not list(raw.iter_errors(document)), (version, document)
                elif verdict is False:
                    assert errors, (version, document)
                assert validation.schema_problems(document, version) == errors
    # both answers are given often, and "not sure" stays rare
    assert counts[True] >= 300 and counts[False] >= 300, counts
    assert counts[None] <= sum(counts.values()) // 5, counts


def test_every_shipped_template_and_test_definition_is_found_valid_without_jsonschema():
    check = compile_schema(validation.flattened(validation.workflow_schema()))
    for document in current():
        assert check(document) is True, document


def test_hook_blocks_of_the_workspace_get_jsonschemas_problems():
    rng = random.Random(7)
    validator = Draft202012Validator(validation._hooks_schema())
    kinds = set()
    for block in [EVERY_PART["hooks"]] + [mutate(EVERY_PART["hooks"], rng) for _ in range(150)]:
        errors = sorted(validator.iter_errors(block), key=lambda e: list(e.path))
        expected = validation._problems([(tuple(e.absolute_path), e.message) for e in errors])
        expected = [Problem("/hooks" + p.pointer, p.message) for p in expected]
        checks = validation.hook_checks(block, "/hooks", {"secrets": set()})
        assert validation.workspace_hook_problems(block) == expected + checks
        kinds.add(bool(errors))
    assert kinds == {True, False}


# (schema, instance, the check's answer); True and False are also jsonschema's.
CASES: list[tuple[Any, Any, bool | None]] = [
    ({"type": "integer"}, 1, True),
    ({"type": "integer"}, 1.0, True),
    ({"type": "integer"}, 2**70, True),
    ({"type": "integer"}, 1.5, False),
    ({"type": "integer"}, True, False),
    ({"type": "integer"}, math.inf, False),
    ({"type": "integer"}, math.nan, False),
    ({"type": "integer"}, "1", False),
    ({"type": "number"}, True, False),
    ({"type": "number"}, 0.5, True),
    ({"type": "number"}, None, False),
    ({"type": "number"}, Decimal("1"), None),
    ({"type": "boolean"}, 0, False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": "object"}, OrderedDict(), None),
    ({"minimum": 0}, -1, False),
    ({"minimum": 0}, True, True),  # a bool is not a number: the bound does not apply
    ({"minimum": 0}, "x", True),
    ({"minimum": 0}, math.nan, True),
    ({"maximum": 1}, 1.0, True),
    ({"maximum": 1}, 1.0000001, False),
    ({"exclusiveMinimum": 0}, 0, False),
    ({"exclusiveMinimum": 0}, 0.0, False),
    ({"exclusiveMinimum": 0}, 1e-300, True),
    ({"const": 1}, True, False),
    ({"const": 1}, 1.0, True),
    ({"const": False}, 0, False),
    ({"const": None}, None, True),
    ({"const": [1, {"a": True}]}, [1.0, {"a": True}], True),
    ({"const": [1, {"a": True}]}, [1, {"a": 1}], False),
    ({"const": [1, {"a": True}]}, [True, {"a": True}], False),
    ({"const": [1, {"a": True}]}, [1, {"a": True, "b": 1}], False),
    ({"const": {"a": [1]}}, {"a": (1,)}, None),
    ({"enum": ["a", 1]}, True, False),
    ({"enum": ["a", 1]}, 1.0, True),
    ({"enum": ["a", [True]]}, [1], False),
    ({"enum": ["a", [True]]}, [True], True),
    ({"uniqueItems": True}, [1, True], True),
    ({"uniqueItems": True}, [0, False, None, ""], True),
    ({"uniqueItems": True}, ["a", "a"], False),
    ({"uniqueItems": True}, [1, 1.0], None),
    ({"uniqueItems": True}, [[1], [1]], None),
    ({"uniqueItems": True}, [None, None], None),
    ({"uniqueItems": False}, ["a", "a"], True),
    ({"pattern": "^a$"}, "a\n", True),  # re.search, as jsonschema: $ matches before \n
    ({"pattern": "b"}, "abc", True),  # search, not match
    ({"pattern": "^b"}, "abc", False),
    ({"pattern": "^b"}, 5, True),
    ({"minLength": 2}, "\u00e9", False),  # one code point
    ({"minLength": 2}, "e\u0301", True),  # two code points
    ({"minLength": 2}, "\U0001f600", False),  # one code point, two UTF-16 units
    ({"maxLength": 1}, "\U0001f600", True),
    ({"minItems": 1}, [], False),
    ({"minProperties": 1}, {}, False),
    ({"minProperties": 1}, [], True),
    ({"items": {"type": "string"}}, ["a", 1], False),
    ({"items": False}, [], True),
    ({"items": False}, [1], False),
    ({"required": ["a"]}, {"a": None}, True),
    ({"required": ["a"]}, ["a"], True),
    ({"required": ["a"]}, {"b": 1}, False),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"ab": 1}, True),
    ({"propertyNames": {"pattern": "^[a-z]+$"}}, {"a1": 1}, False),
    ({"propertyNames": {"maxLength": 1}}, {"ab": 1}, False),
    # additionalProperties sees the names properties does not list
    ({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}}, {"a": "x", "b": 1},
     True),
    ({"properties": {"a": {}}, "additionalProperties": {"type": "integer"}}, {"b": "x"}, False),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1}, True),
    ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2}, False),
    ({"additionalProperties": False}, [1], True),
    ({"patternProperties": {"^x": {}}, "additionalProperties": False}, {"x": 1}, None),
    # oneOf: exactly one
    ({"oneOf": [{"type": "string"}, {"minLength": 1}]}, "x", False),
    ({"oneOf": [{"type": "string"}, {"minLength": 1}]}, "", True),
    ({"oneOf": [{"type": "string"}, {"minLength": 1}]}, 5, True),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, None, False),
    ({"oneOf": [{"type": "string"}, {"format": "email"}]}, "x", None),
    ({"oneOf": [{"required": ["env"]}, {"required": ["file"]}]}, {"env": 1, "file": 2}, False),
    ({"allOf": [{"type": "string"}, {"minLength": 2}]}, "a", False),
    ({"allOf": [{"type": "string"}, {"minLength": 2}]}, "ab", True),
    # if/then: then applies only where if holds
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"a": 1}, False),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {"a": 1, "b": 1}, True),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {}, True),
    ({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, 5, True),
    ({"if": {"type": "string"}, "then": False, "else": {"minimum": 3}}, 2, False),
    ({"if": {"type": "string"}, "then": False, "else": {"minimum": 3}}, "s", False),
    ({"if": {"type": "string"}, "then": False, "else": {"minimum": 3}}, 3, True),
    ({"if": {"format": "x"}, "then": {"minLength": 1}}, "s", True),  # then holds anyway
    ({"if": {"format": "x"}, "then": {"minLength": 1}}, "", None),
    ({"then": False}, 1, True),  # then without if: nothing
    # unevaluatedProperties: the names of properties and of allOf members count
    ({"allOf": [{"properties": {"x": {}}}], "properties": {"y": {}},
      "unevaluatedProperties": False}, {"x": 1, "y": 2}, True),
    ({"allOf": [{"properties": {"x": {}}}], "properties": {"y": {}},
      "unevaluatedProperties": False}, {"z": 1}, None),
    ({"allOf": [{"properties": {"x": {"type": "string"}}}], "unevaluatedProperties": False},
     {"x": 1}, False),
    # a name evaluated only by if/then: valid, and never answered False
    ({"allOf": [{"if": {"required": ["k"]}, "then": {"properties": {"k": {}}}}],
      "unevaluatedProperties": False}, {"k": 1}, None),
    ({"additionalProperties": True, "unevaluatedProperties": False}, {"k": 1}, True),
    ({"unevaluatedProperties": {"type": "string"}}, {"k": 1}, None),
    ({"unevaluatedProperties": True}, {"k": 1}, True),
    # keywords the check does not know make it unsure
    ({"$ref": "#/$defs/x", "$defs": {"x": {}}}, 1, None),
    ({"multipleOf": 2}, 3, None),
    ({"type": "string", "description": "only words"}, "w", True),
    (True, 1, True),
    (False, 1, False),
    # a node with one type: the type tested once for all its keywords
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}},
      "additionalProperties": False}, {"a": "x"}, True),
    ({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}},
      "additionalProperties": False}, {"a": "x", "b": 1}, False),
    ({"type": "object", "required": ["a"]}, {"b": 1}, False),
    ({"type": "object", "required": ["a"]}, ["a"], False),
    ({"type": "object", "required": ["a"]}, (1,), None),  # not plain JSON
    ({"type": "object", "properties": {"a": {"multipleOf": 2}}}, {"a": 3}, None),
    ({"type": "object", "properties": {"a": {"multipleOf": 2}}, "required": ["b"]}, {"a": 3},
     False),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": 1, "b": 2.5}, False),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"a": 1, "b": 2.0}, True),
    ({"type": "object", "minProperties": 2, "properties": {}}, {"a": 1}, False),
    ({"type": "object", "format": "x"}, {}, None),
    ({"type": "string", "minLength": 1, "maxLength": 2, "pattern": "^a"}, "ab", True),
    ({"type": "string", "minLength": 1, "maxLength": 2, "pattern": "^a"}, "abc", False),
    ({"type": "string", "minLength": 1, "maxLength": 2, "pattern": "^a"}, "", False),
    ({"type": "string", "minLength": 1, "maxLength": 2, "pattern": "^a"}, "b", False),
    ({"type": "string", "minLength": 1}, 1, False),
    ({"type": "string", "enum": ["a", "b"]}, "c", False),
    ({"type": "string", "enum": ["a", "b"]}, "b", True),
    ({"type": "number"}, True, False),
    ({"type": "number"}, 1.5, True),
    ({"type": "array"}, (), None),
    ({"type": "boolean"}, 0, False),
    # allOf members that only list properties are checked with the node's own
    ({"type": "object", "allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}],
      "properties": {"a": {"minLength": 2}}, "unevaluatedProperties": False}, {"a": "x"}, False),
    ({"type": "object", "allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}],
      "properties": {"a": {"minLength": 2}}, "unevaluatedProperties": False}, {"a": 22}, False),
    ({"type": "object", "allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}],
      "properties": {"a": {"minLength": 2}}, "unevaluatedProperties": False}, {"a": "xy"}, True),
    ({"type": "object", "allOf": [{"properties": {"a": {}}}, {"required": ["b"]}],
      "properties": {"b": {}}, "unevaluatedProperties": False}, {"a": 1}, False),
    ({"type": "object", "allOf": [{"properties": {"a": {}}}, {"required": ["b"]}],
      "properties": {"b": {}}, "unevaluatedProperties": False}, {"a": 1, "b": 2}, True),
    ({"type": "object", "allOf": [{"properties": {"a": {}}}], "unevaluatedProperties": False},
     {"c": 1}, None),
    ({"type": "object", "allOf": [{"type": "string"}]}, {}, False),
    ({"allOf": [{"type": "string"}], "required": ["a"]}, "s", True),
    ({"allOf": [{"type": "string"}], "required": ["a"]}, 5, False),
    ({"properties": {"action": {"const": "go"}}, "required": ["action"]}, {"action": "go"}, True),
    ({"properties": {"action": {"const": "go"}}, "required": ["action"]}, {"action": 1}, False),
    ({"properties": {"action": {"const": "go"}}, "required": ["action"]}, 5, True),
    ({"const": "go"}, ["go"], False),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, ["a", "b"], True),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, ["a", "a"], False),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, ["a", 1], False),
    ({"type": "array", "items": {"type": "string"}, "minItems": 1}, [], False),
    ({"type": "array", "items": {"type": "string"}}, {"a": 1}, False),
    ({"type": "array", "items": {"format": "x"}}, [1], None),
    ({"type": "array", "items": {"format": "x"}}, [], True),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "instance", "verdict"), CASES)
def test_each_keyword_means_what_it_means_to_jsonschema(schema, instance, verdict):
    assert compile_schema(schema)(instance) is verdict
    if verdict is not None:
        errors = list(Draft202012Validator(schema).iter_errors(instance))
        assert (not errors) is verdict, errors


def test_a_task_only_the_if_branch_accepts_is_left_to_jsonschema():
    task_schema = validation.flattened(validation.workflow_schema())["properties"]["tasks"]
    check = compile_schema(task_schema["additionalProperties"])
    waits = {"action": "wait_for_event", "parameters": {"event": "go"}}
    assert check(waits) is True
    assert check({**waits, "parameters": {"event": "go", "nope": 1}}) is False
    assert check({**waits, "parameters": {"filter": "x"}}) is False
    other = {"action": "agent_task", "parameters": {"filter": "x"}}  # then does not apply
    assert check(other) is True
    assert check({**other, "retry_count": -1}) is False
    assert check({**other, "bogus": 1}) is None  # unevaluated: jsonschema words it


def _run(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "workflow_cli", "--home", str(workspace),
         *args],
        cwd=workspace, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _imported(stderr: str) -> set[str]:
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


ONE_TASK: dict[str, Any] = {
    "id": "one", "name": "one", "version": "1.0.0", "schema_version": "2.0.0",
    "tasks": {"only": {"action": "agent_task", "agent_id": "echo",
                       "parameters": {"hello": "world"}, "dependencies": []}},
}  # fmt: skip


def test_a_valid_one_task_run_never_imports_jsonschema(workspace):
    (workspace / "one.json").write_text(json.dumps(ONE_TASK), encoding="utf-8")
    done = _run(workspace, "run", "one.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "completed" in done.stdout
    imported = _imported(done.stderr)
    assert "workflow_cli.definition.schema_check" in imported
    assert not {name for name in imported if name.split(".")[0] == "jsonschema"}


def test_an_invalid_one_still_gets_jsonschemas_own_messages(workspace):
    bad = copy.deepcopy(ONE_TASK)
    bad["tasks"]["only"] |= {"retry_count": -1, "bogus": 1, "dependencies": ["x", "x"]}
    (workspace / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    done = _run(workspace, "run", "bad.json")
    assert done.returncode == 2
    assert "jsonschema" in _imported(done.stderr)
    assert "/tasks/only/retry_count: -1 is less than the minimum of 0" in done.stderr
    assert "/tasks/only/dependencies: ['x', 'x'] has non-unique elements" in done.stderr
    assert (
        "/tasks/only: Unevaluated properties are not allowed ('bogus', 'retry_count' were"
        " unexpected)" in done.stderr
    )
