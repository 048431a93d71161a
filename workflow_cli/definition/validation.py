"""Every problem with a workflow definition at once, each at a JSON pointer."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from workflow_cli.definition.expressions import (
    check_condition,
    check_template,
    has_template,
    references,
)
from workflow_cli.definition.graph import TaskGraph
from workflow_cli.definition.loader import duplicate_key_problems, pointer_join
from workflow_cli.definition.model import conditions_of
from workflow_cli.definition.retry_policy import retry_on_problem
from workflow_cli.errors import ExpressionError, NotFoundError, Problem

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

SCHEMA_VERSION = "2.0.0"


@dataclass(frozen=True)
class CheckContext:
    """What static checks of a task may consult."""

    task_id: str
    task: Mapping[str, Any]
    pointer: str
    agent_names: frozenset[str]
    undeclared_agents: str = "mailbox"  # or "error": what an agent not in agent_names is


class Checked(Protocol):
    """What validation needs of an action: its static checks of a task that uses it."""

    def check(self, ctx: CheckContext) -> list[Problem]: ...


# The action registry, handed in: the action called NAME, or NotFoundError naming it.
ActionLookup = Callable[[str], Checked]


@cache
def workflow_schema() -> dict[str, Any]:
    folder = resources.files("workflow_cli") / "definition" / "schema"
    path = folder / f"workflow-{SCHEMA_VERSION}.json"
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


@cache
def _validator() -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(flattened(workflow_schema()))


_PLAIN = {"type", "properties"}  # a part that only lists properties


def flattened(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema in a form that checks a large definition about four times faster:
    each reference to ``$defs`` replaced by what it names (beside other keywords, as an
    ``allOf`` member: the same meaning), then an ``allOf`` of plain property lists under
    ``unevaluatedProperties: false`` merged into one property list under
    ``additionalProperties: false`` (equal, since the merged parts only list
    properties)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: walk(value) for key, value in node.items() if key != "$defs"}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            named = walk(defs[ref.removeprefix("#/$defs/")])
            del node["$ref"]
            if not node:
                return named
            node["allOf"] = [named, *node.get("allOf", [])]
        parts = node.get("allOf")
        if (
            node.get("unevaluatedProperties") is False
            and isinstance(parts, list)
            and all(
                isinstance(part, dict) and set(part) <= {"type", "properties"} for part in parts
            )
        ):
            merged: dict[str, Any] = {}
            for part in [*parts, node]:
                merged.update(part.get("properties", {}))
            del node["allOf"], node["unevaluatedProperties"]
            node |= {"type": "object", "properties": merged, "additionalProperties": False}
        return node

    result: dict[str, Any] = walk(schema)
    return result


# Schema checks are most of the cost of validating a large definition and depend on
# the document alone: a process that creates many instances of one template (the Python
# API, the server, sub-workflows) checks each distinct document once.
_SCHEMA_CHECKED: dict[str, tuple[Problem, ...]] = {}
_SCHEMA_CHECKED_MAX = 32
_SCHEMA_LOCK = threading.Lock()


def schema_problems(document: Any) -> list[Problem]:
    try:
        digest = hashlib.sha256(
            json.dumps(document, sort_keys=True, allow_nan=False).encode("utf-8")
        ).hexdigest()
    except (TypeError, ValueError):  # not plain JSON: checked every time
        return _schema_problems(document)
    with _SCHEMA_LOCK:
        found = _SCHEMA_CHECKED.get(digest)
    if found is None:
        found = tuple(_schema_problems(document))
        with _SCHEMA_LOCK:
            if len(_SCHEMA_CHECKED) >= _SCHEMA_CHECKED_MAX:
                del _SCHEMA_CHECKED[next(iter(_SCHEMA_CHECKED))]
            _SCHEMA_CHECKED[digest] = found
    return list(found)


def _schema_problems(document: Any) -> list[Problem]:
    problems = []
    for error in sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path)):
        pointer = ""
        for part in error.absolute_path:
            pointer = pointer_join(pointer, part)
        problems.append(Problem(pointer, error.message))
    return problems


def _strings(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, pointer_join(pointer, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, pointer_join(pointer, index))


def validate_definition(
    document: Any,
    *,
    actions: ActionLookup,
    agent_names: frozenset[str],
    param_names: Iterable[str] | None = None,
    secret_names: Iterable[str] = (),
    undeclared_agents: str = "mailbox",
) -> list[Problem]:
    """All problems with `document`: schema, duplicates, dependencies, cycles, actions
    (looked up in `actions`), agents, expressions and their references. An empty list
    means it is valid."""
    problems = duplicate_key_problems(document) + schema_problems(document)
    if not isinstance(document, dict) or not isinstance(document.get("tasks"), dict):
        return problems
    tasks: dict[str, Any] = {k: v for k, v in document["tasks"].items() if isinstance(v, dict)}
    listed = {
        task_id: [d for d in task["dependencies"] if isinstance(d, str)]
        if isinstance(task.get("dependencies"), list)
        else []
        for task_id, task in tasks.items()
    }
    graph = TaskGraph.build(listed)
    params = document["params"] if isinstance(document.get("params"), dict) else {}
    declared = set(param_names) if param_names is not None else set(params)
    own_secrets = document.get("secrets")
    secrets = set(secret_names) | (set(own_secrets) if isinstance(own_secrets, dict) else set())
    names = {"params": declared, "secrets": secrets}
    for task_id, task in tasks.items():
        where = pointer_join("/tasks", task_id)
        for index, dep in enumerate(listed[task_id]):
            if dep == task_id:
                problems.append(
                    Problem(f"{where}/dependencies/{index}", "a task cannot depend on itself")
                )
            elif dep not in tasks:
                problems.append(Problem(f"{where}/dependencies/{index}", f"unknown task '{dep}'"))
        action = _lookup(actions, task.get("action"), f"{where}/action", problems)
        if action is not None and isinstance(task.get("parameters") or {}, dict):
            check = CheckContext(task_id, task, where, agent_names, undeclared_agents)
            problems.extend(action.check(check))
        problems.extend(_retry_on_problems(task, where))
        compensate = task.get("compensate")
        undo = None
        if isinstance(compensate, dict):
            undo = _lookup(
                actions, compensate.get("action"), f"{where}/compensate/action", problems
            )
            if undo is not None:
                check = CheckContext(
                    task_id, compensate, f"{where}/compensate", agent_names, undeclared_agents
                )
                problems.extend(undo.check(check))
        for pointer, text, bare in _expressions(task, where, action, undo):
            problems.extend(_expression_problems(pointer, text, bare, task_id, names, tasks, graph))
    if isinstance(document.get("defaults"), dict):
        problems.extend(_retry_on_problems(document["defaults"], "/defaults"))
    cycle = graph.cycle()
    if cycle:
        problems.append(Problem("/tasks", f"dependency cycle: {' → '.join(cycle)}"))
    return problems


def _lookup(actions: ActionLookup, name: Any, pointer: str, problems: list[Problem]) -> Any:
    """The action called `name` (None, with a problem noted, when there is none)."""
    if not isinstance(name, str):
        return None  # the schema reports it
    try:
        return actions(name)
    except NotFoundError as exc:
        problems.append(Problem(pointer, exc.message))
        return None


def _expressions(
    task: dict[str, Any], where: str, action: Any, undo: Any
) -> Iterator[tuple[str, str, bool]]:
    """Every expression in a task: (pointer, text, bare). Templated strings in its
    parameters and its compensation's, its conditions, and the parameters its action
    reads as bare expressions (``expression_parameters``, e.g. condition_check's)."""
    compensate = task.get("compensate")
    undo_spec: dict[str, Any] = compensate if isinstance(compensate, dict) else {}
    for owner, spec, base in ((action, task, where), (undo, undo_spec, f"{where}/compensate")):
        parameters = spec.get("parameters")
        if not isinstance(parameters, dict):
            continue
        bare = set(getattr(owner, "expression_parameters", ()))
        for name, value in parameters.items():
            pointer = pointer_join(f"{base}/parameters", name)
            if name in bare and isinstance(value, str) and not has_template(value):
                yield pointer, value, True
            else:
                for inner, text in _strings(value, pointer):
                    if has_template(text):
                        yield inner, text, False
    raw_conditions = task.get("conditions")
    for index, condition in enumerate(conditions_of(task)):
        pointer = f"{where}/conditions" + (f"/{index}" if isinstance(raw_conditions, list) else "")
        if isinstance(condition, str):
            yield pointer, condition, True


def _expression_problems(
    pointer: str,
    text: str,
    bare: bool,
    task_id: str,
    declared: Mapping[str, set[str]],
    tasks: Mapping[str, Any],
    graph: TaskGraph,
) -> list[Problem]:
    """An expression that does not parse, or refers to a parameter or task it may not."""
    try:
        check_condition(text) if bare else check_template(text)
    except ExpressionError as exc:
        return [Problem(pointer, exc.message)]
    problems = []
    for root, key in sorted(references(text, bare=bare)):
        if root == "params" and key not in declared["params"]:
            problems.append(Problem(pointer, f"refers to unknown parameter '{key}'"))
        if root == "secrets" and key not in declared["secrets"]:
            problems.append(
                Problem(
                    pointer,
                    f"refers to secret '{key}', which is not declared (secrets: in the"
                    " definition or in workflow_cli.yaml)",
                )
            )
        if root != "steps":
            continue
        if key not in tasks:
            problems.append(Problem(pointer, f"refers to unknown task '{key}'"))
        elif not graph.depends_on(task_id, key) and not (
            key == task_id and "/compensate/" in pointer
        ):
            message = f"refers to task '{key}', which '{task_id}' does not depend on"
            problems.append(Problem(pointer, message))
    return problems


def _retry_on_problems(settings: Mapping[str, Any], where: str) -> list[Problem]:
    entries = settings.get("retry_on")
    if not isinstance(entries, list):
        return []  # absent, or the schema reports it
    return [
        Problem(f"{where}/retry_on/{index}", problem)
        for index, entry in enumerate(entries)
        if isinstance(entry, str) and (problem := retry_on_problem(entry))
    ]
