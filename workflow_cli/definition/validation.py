"""Every problem with a workflow definition at once, each at a JSON pointer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workflow_cli.definition.expressions import (
    check_condition,
    check_template,
    has_template,
    loop_names,
    reads_event,
    references,
)
from workflow_cli.definition.graph import TaskGraph, resolve_groups
from workflow_cli.definition.loader import duplicate_key_problems, pointer_join
from workflow_cli.definition.migrations import (
    CURRENT_VERSION,
    VERSIONS,
    migrate,
    normalize,
    schema_version_of,
)
from workflow_cli.definition.retry_policy import retry_on_problem
from workflow_cli.definition.schema_check import Check, compile_schema
from workflow_cli.errors import ExpressionError, NotFoundError, Problem
from workflow_cli.readonly import readonly_dataclass

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

SCHEMA_VERSION = CURRENT_VERSION


@readonly_dataclass
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
def workflow_schema(version: str = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema of definitions of schema `version` (one of `VERSIONS`)."""
    # The package's folder, not importlib.resources: finding it that way cost a run ~12 M
    # instructions (zipfile and the resource readers imported), and the package is
    # installed as files (its templates are read as files too).
    folder = Path(__file__).parent / "schema"
    path = folder / f"workflow-{version}.json"
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


@cache
def _validator(version: str) -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(flattened(workflow_schema(version)))


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


@cache
def _checks(version: str) -> tuple[Check, Check]:
    """The compiled checks of `version`: the whole document, and one task."""
    whole = flattened(workflow_schema(version))
    tasks = whole.get("properties", {}).get("tasks")
    task = tasks.get("additionalProperties") if isinstance(tasks, dict) else None
    return compile_schema(whole), compile_schema(task if isinstance(task, dict) else None)


@cache
def _split_validators(version: str) -> tuple[Validator, Validator] | None:
    """The schema of `version` in two parts: the document with its tasks left unchecked,
    and one task (checked against the same root, so references still resolve); None
    when the schema does not describe tasks that way."""
    from jsonschema import Draft202012Validator

    whole = flattened(workflow_schema(version))
    tasks = whole.get("properties", {}).get("tasks")
    if not isinstance(tasks, dict) or not isinstance(tasks.get("additionalProperties"), dict):
        return None
    outer = {
        **whole,
        "properties": {**whole["properties"], "tasks": {**tasks, "additionalProperties": True}},
    }
    task = Draft202012Validator(whole).evolve(schema=tasks["additionalProperties"])
    return Draft202012Validator(outer), task


def schema_problems(document: Any, version: str = SCHEMA_VERSION) -> list[Problem]:
    """Where `document` breaks the JSON Schema of `version`. The compiled check
    (`schema_check`) answers for a valid document; jsonschema finds and words the
    problems of any other, skipping the tasks the compiled check finds valid."""
    whole, task_check = _checks(version)
    if whole(document) is True:
        return []
    split = _split_validators(version)
    tasks = document.get("tasks") if isinstance(document, dict) else None
    if split is None or not isinstance(tasks, dict):
        return _problems(_found(_validator(version), document))
    outer, task_validator = split
    found = _found(outer, document)
    for task_id, task in tasks.items():
        if task_check(task) is not True:
            found.extend((("tasks", task_id, *path), message)
                         for path, message in _found(task_validator, task))  # fmt: skip
    return _problems(found)


def _found(validator: Validator, instance: Any) -> list[tuple[tuple[Any, ...], str]]:
    return [
        (tuple(error.absolute_path), error.message) for error in validator.iter_errors(instance)
    ]


def _problems(found: list[tuple[tuple[Any, ...], str]]) -> list[Problem]:
    problems = []
    for path, message in sorted(found, key=lambda e: list(e[0])):
        pointer = ""
        for part in path:
            pointer = pointer_join(pointer, part)
        problems.append(Problem(pointer, message))
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
    plain_data: bool = False,
) -> list[Problem]:
    """All problems with `document`: schema, duplicates, dependencies, cycles, actions
    (looked up in `actions`), agents, expressions and their references. An empty list
    means it is valid. A definition written as the design documents write it, or of an
    older schema version, is read as `migrations.normalize` and `migrations.migrate` read
    it; an older one is first checked against its own version's schema. With
    `plain_data` the document is known to be plain dicts and lists (`loader.plain`
    made it), which note no duplicate keys: they are not looked for."""
    problems = [] if plain_data else duplicate_key_problems(document)
    document, shape = normalize(document)
    problems += shape
    version = schema_version_of(document) if isinstance(document, dict) else SCHEMA_VERSION
    if version in VERSIONS and version != SCHEMA_VERSION:
        old = schema_problems(document, version)
        if old:
            return problems + [Problem(p.pointer, f"{p.message} (schema {version})") for p in old]
        document = migrate(document)[0]
    if version not in VERSIONS:
        known = ", ".join(VERSIONS)
        message = f"unknown schema version '{version}' (known: {known}; see workflow_cli migrate)"
        problems.append(Problem("/schema_version", message))
        document = {**document, "schema_version": SCHEMA_VERSION}  # check the rest as 2.0.0
    problems += schema_problems(document)
    if not isinstance(document, dict) or not isinstance(document.get("tasks"), dict):
        return problems
    tasks: dict[str, Any] = {k: v for k, v in document["tasks"].items() if isinstance(v, dict)}
    written = {
        task_id: [d for d in task["dependencies"] if isinstance(d, str)]
        if isinstance(task.get("dependencies"), list)
        else []
        for task_id, task in tasks.items()
    }
    groups = {
        task_id: task.get("parallel_group")
        for task_id, task in tasks.items()
        if isinstance(task.get("parallel_group"), str)
    }
    problems += _parallel_group_problems(tasks, groups, written)
    listed = resolve_groups(written, groups)
    graph = TaskGraph.build(listed)
    reach = _Reach(graph)
    params = document["params"] if isinstance(document.get("params"), dict) else {}
    declared = set(param_names) if param_names is not None else set(params)
    own_secrets = document.get("secrets")
    secrets = set(secret_names) | (set(own_secrets) if isinstance(own_secrets, dict) else set())
    names = {"params": declared, "secrets": secrets}
    targets = tasks.keys() | set(groups.values())
    for task_id, task in tasks.items():
        where = pointer_join("/tasks", task_id)
        found = written[task_id]
        if found and (task_id in found or not targets.issuperset(found)):
            problems.extend(_dependency_problems(task_id, found, where, targets))
        action = _lookup(actions, task.get("action"), f"{where}/action", problems)
        if action is not None and isinstance(task.get("parameters") or {}, dict):
            check = CheckContext(task_id, task, where, agent_names, undeclared_agents)
            problems.extend(action.check(check))
        if "retry_on" in task:
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
            problems.extend(_expression_problems(pointer, text, bare, task_id, names, tasks, reach))
            problems.extend(_loop_name_problems(pointer, text, bare, task))
        if "for_each" in task or "repeat" in task or "max_parallel" in task:
            for pointer, text, bare in _loop_expressions(task, where):
                problems.extend(
                    _expression_problems(pointer, text, bare, task_id, names, tasks, reach)
                )
            problems.extend(_loop_problems(task, where))
        agent = task.get("agent_id")
        if "compensate" in task or (isinstance(agent, str) and has_template(agent)):
            problems.extend(_agent_choice_problems(task, where, names["params"]))
    if isinstance(document.get("defaults"), dict):
        problems.extend(_retry_on_problems(document["defaults"], "/defaults"))
    problems.extend(hook_checks(document.get("hooks"), "/hooks", names))
    cycle = graph.cycle()
    if isinstance(document.get("groups"), dict) and not cycle:
        problems.extend(_group_problems(document["groups"], tasks, graph))
    if cycle:
        problems.append(Problem("/tasks", f"dependency cycle: {' → '.join(cycle)}"))
    return problems


def _dependency_problems(
    task_id: str, found: list[str], where: str, known: Set[str]
) -> list[Problem]:
    """A task that depends on itself, or on what is neither a task nor a group."""
    problems = []
    for index, dep in enumerate(found):
        if dep == task_id:
            problems.append(
                Problem(f"{where}/dependencies/{index}", "a task cannot depend on itself")
            )
        elif dep not in known:
            problems.append(Problem(f"{where}/dependencies/{index}", f"unknown task '{dep}'"))
    return problems


def _hooks_schema() -> dict[str, Any]:
    schema = workflow_schema()
    return {"$defs": schema["$defs"], **schema["properties"]["hooks"]}


@cache
def _hooks_check() -> Check:
    return compile_schema(flattened(_hooks_schema()))


@cache
def _hooks_validator() -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_hooks_schema())


def workspace_hook_problems(block: Any, secret_names: Iterable[str] = ()) -> list[Problem]:
    """Every problem with the ``hooks`` of workflow_cli.yaml (pointers from ``/hooks``):
    the definition schema's, and those of `hook_checks` (any parameter may be named:
    each instance has its own)."""
    problems = []
    errors = [] if _hooks_check()(block) is True else _hooks_validator().iter_errors(block)
    for error in sorted(errors, key=lambda e: list(e.path)):
        pointer = "/hooks"
        for part in error.absolute_path:
            pointer = pointer_join(pointer, part)
        problems.append(Problem(pointer, error.message))
    names = {"secrets": set(secret_names)}
    return problems + hook_checks(block, "/hooks", names)


def hook_checks(block: Any, where: str, names: Mapping[str, set[str]]) -> list[Problem]:
    """What the schema cannot say of hooks: each runs a command or posts to a URL (one
    of them), and its expressions parse and name only declared parameters (when `names`
    has ``params``) and secrets."""
    if not isinstance(block, list):
        return []
    problems = []
    for index, hook in enumerate(block):
        if not isinstance(hook, dict):
            continue
        pointer = pointer_join(where, index)
        if "True" in hook or True in hook:
            problems.append(
                Problem(pointer, "YAML reads 'on:' as true: list the events in events:")
            )
        if ("command" in hook) == ("url" in hook):
            problems.append(Problem(pointer, "a hook has either a command or a url (one of them)"))
        for key in ("command", "url", "headers"):
            for inner, text in _strings(hook.get(key), pointer_join(pointer, key)):
                if has_template(text):
                    problems.extend(_hook_expression_problems(inner, text, names))
    return problems


def _hook_expression_problems(
    pointer: str, text: str, names: Mapping[str, set[str]]
) -> list[Problem]:
    try:
        check_template(text)
    except ExpressionError as exc:
        return [Problem(pointer, exc.message)]
    problems = []
    for root, key in sorted(references(text)):
        if root == "params" and "params" in names and key not in names["params"]:
            problems.append(Problem(pointer, f"refers to unknown parameter '{key}'"))
        elif root == "secrets" and key not in names["secrets"]:
            problems.append(Problem(pointer, f"refers to secret '{key}', which is not declared"))
        elif root not in ("params", "secrets", "instance"):
            problems.append(Problem(pointer, f"hooks see params, secrets and instance, not {root}"))
    return problems


def _agent_choice_problems(
    task: Mapping[str, Any], where: str, declared: set[str]
) -> list[Problem]:
    """An ``agent_id`` chosen by a parameter (``{{ params.NAME }}``, in the task or its
    compensation) may read only declared parameters: it is resolved when an instance is
    created (`templates.resolve_agents`), before anything runs."""
    problems = []
    compensate = task.get("compensate")
    owners: list[tuple[Mapping[str, Any], str]] = [(task, where)]
    if isinstance(compensate, dict):
        owners.append((compensate, f"{where}/compensate"))
    for owner, base in owners:
        agent = owner.get("agent_id")
        if not isinstance(agent, str) or not has_template(agent):
            continue
        pointer = f"{base}/agent_id"
        try:
            check_template(agent)
        except ExpressionError as exc:
            problems.append(Problem(pointer, exc.message))
            continue
        for root, key in sorted(references(agent)):
            if root != "params":
                message = f"an agent may be chosen by parameters only, not by '{root}'"
                problems.append(Problem(pointer, message))
            elif key not in declared:
                problems.append(Problem(pointer, f"refers to unknown parameter '{key}'"))
    return problems


def _parallel_group_problems(
    tasks: Mapping[str, Any], groups: Mapping[str, str], written: Mapping[str, list[str]]
) -> list[Problem]:
    """A group named like a task, or a task that depends on its own group."""
    problems = []
    for task_id, group in groups.items():
        where = pointer_join("/tasks", task_id)
        if group in tasks:
            message = f"group '{group}' has the name of a task; give the group its own name"
            problems.append(Problem(f"{where}/parallel_group", message))
        elif group in written[task_id]:
            index = written[task_id].index(group)
            message = f"a task cannot depend on its own group '{group}'"
            problems.append(Problem(f"{where}/dependencies/{index}", message))
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
    owners: list[tuple[Any, Mapping[str, Any], str]] = [(action, task, where)]
    compensate = task.get("compensate")
    if isinstance(compensate, dict):
        owners.append((undo, compensate, f"{where}/compensate"))
    for owner, spec, base in owners:
        parameters = spec.get("parameters")
        if not isinstance(parameters, dict):
            continue
        bare = getattr(owner, "expression_parameters", ())
        if not isinstance(bare, (tuple, list, set, frozenset)):
            bare = set(bare)
        for name, value in parameters.items():
            # a pointer only for a value that holds text (most hold a number or a name)
            if isinstance(value, str):
                if name in bare and not has_template(value):
                    yield pointer_join(f"{base}/parameters", name), value, True
                elif has_template(value):
                    yield pointer_join(f"{base}/parameters", name), value, False
            elif isinstance(value, (dict, list)):
                for inner, text in _strings(value, pointer_join(f"{base}/parameters", name)):
                    if has_template(text):
                        yield inner, text, False
    if "conditions" not in task:
        return
    from workflow_cli.definition.model import conditions_of  # the model is not needed else

    raw_conditions = task.get("conditions")
    for index, condition in enumerate(conditions_of(task)):
        pointer = f"{where}/conditions" + (f"/{index}" if isinstance(raw_conditions, list) else "")
        if isinstance(condition, str):
            yield pointer, condition, True


def _loop_expressions(task: dict[str, Any], where: str) -> Iterator[tuple[str, str, bool]]:
    """A task's ``for_each`` expression (or the templated strings of its literal list)
    and its ``repeat.until``."""
    for_each = task.get("for_each")
    if isinstance(for_each, str):
        yield f"{where}/for_each", for_each, False
    elif isinstance(for_each, list):
        for pointer, text in _strings(for_each, f"{where}/for_each"):
            if has_template(text):
                yield pointer, text, False
    repeat = task.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("until"), str):
        yield f"{where}/repeat/until", repeat["until"], True


def _loop_problems(task: dict[str, Any], where: str) -> list[Problem]:
    """for_each, max_parallel and repeat used together as they can be."""
    problems = []
    for_each, repeat = task.get("for_each"), task.get("repeat")
    if for_each is not None and repeat is not None:
        problems.append(Problem(f"{where}/repeat", "a for_each task cannot also repeat"))
    if "max_parallel" in task and for_each is None:
        problems.append(Problem(f"{where}/max_parallel", "applies only to a for_each task"))
    if isinstance(for_each, str):
        text = for_each.strip()
        if not (text.startswith("{{") and text.endswith("}}") and has_template(text)):
            message = 'must be one expression giving a list, e.g. "{{ steps.split.output }}"'
            problems.append(Problem(f"{where}/for_each", message))
        elif loop_names(for_each):
            message = "the list cannot read item, index, iteration or output"
            problems.append(Problem(f"{where}/for_each", message))
    if isinstance(repeat, dict) and isinstance(repeat.get("until"), str):
        bad = loop_names(repeat["until"], bare=True) - {"output", "iteration"}
        if bad:
            message = f"reads {', '.join(sorted(bad))}; 'until' sees output and iteration"
            problems.append(Problem(f"{where}/repeat/until", message))
    return problems


def _group_problems(
    groups: dict[str, Any], tasks: Mapping[str, Any], graph: TaskGraph
) -> list[Problem]:
    """Each group names known tasks, none of them in another group or repeating on its
    own; no task outside it runs between two of its tasks; its 'until' reads only what
    it may."""
    problems: list[Problem] = []
    owner: dict[str, str] = {}
    for name, group in groups.items():
        where = pointer_join("/groups", name)
        members = group.get("tasks") if isinstance(group, dict) else None
        if not isinstance(members, list):
            continue  # the schema reports it
        known = [t for t in members if isinstance(t, str) and t in tasks]
        for index, task_id in enumerate(members):
            pointer = f"{where}/tasks/{index}"
            if task_id not in tasks:
                problems.append(Problem(pointer, f"unknown task '{task_id}'"))
            elif task_id in owner:
                problems.append(Problem(pointer, f"'{task_id}' is in group '{owner[task_id]}' too"))
            elif tasks[task_id].get("repeat") is not None:
                problems.append(Problem(pointer, f"'{task_id}' repeats on its own"))
            owner.setdefault(task_id, name)
        for outside in graph:
            if outside in known:
                continue
            if any(graph.depends_on(outside, t) for t in known) and any(
                graph.depends_on(t, outside) for t in known
            ):
                message = f"task '{outside}' is outside the group but runs between its tasks"
                problems.append(Problem(f"{where}/tasks", message))
        repeat = group.get("repeat")
        until = repeat.get("until") if isinstance(repeat, dict) else None
        if isinstance(until, str):
            problems.extend(_until_problems(until, f"{where}/repeat/until", known, tasks, graph))
    return problems


def _until_problems(
    until: str, pointer: str, members: list[str], tasks: Mapping[str, Any], graph: TaskGraph
) -> list[Problem]:
    """A group's 'until': it parses, reads output and iteration but no item or index, and
    only the steps of its tasks and of what they depend on."""
    try:
        check_condition(until)
    except ExpressionError as exc:
        return [Problem(pointer, exc.message)]
    problems = []
    bad = loop_names(until, bare=True) - {"output", "iteration"}
    if bad:
        message = f"reads {', '.join(sorted(bad))}; 'until' sees output and iteration"
        problems.append(Problem(pointer, message))
    for root, key in sorted(references(until, bare=True)):
        if root != "steps":
            continue
        if key not in tasks:
            problems.append(Problem(pointer, f"refers to unknown task '{key}'"))
        elif key not in members and not any(graph.depends_on(t, key) for t in members):
            message = f"refers to task '{key}', which the group neither holds nor depends on"
            problems.append(Problem(pointer, message))
    return problems


def _loop_name_problems(
    pointer: str, text: str, bare: bool, task: Mapping[str, Any]
) -> list[Problem]:
    """item and index belong to a for_each task, iteration to a repeating one, output
    to a repeat's 'until' only."""
    problems = []
    event_filter = task.get("action") == "wait_for_event" and pointer.endswith("/parameters/filter")
    if reads_event(text, bare=bare) and not (event_filter and "/compensate/" not in pointer):
        problems.append(Problem(pointer, "reads 'event', which only a wait_for_event filter sees"))
    used = loop_names(text, bare=bare)
    if not used:
        return problems
    allowed: set[str] = set()
    if "/compensate/" not in pointer:
        if task.get("for_each") is not None:
            allowed |= {"item", "index"}
        if task.get("repeat") is not None:
            allowed.add("iteration")
    for name in sorted(used - allowed):
        if name in ("item", "index"):
            message = f"reads '{name}', which only a for_each task's parameters and conditions see"
        elif name == "iteration":
            message = "reads 'iteration', which only a repeating task's parameters see"
        else:
            message = "reads 'output', which only a repeat's 'until' sees"
        problems.append(Problem(pointer, message))
    return problems


def _expression_problems(
    pointer: str,
    text: str,
    bare: bool,
    task_id: str,
    declared: Mapping[str, set[str]],
    tasks: Mapping[str, Any],
    reach: _Reach,
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
        elif not reach.depends_on(task_id, key) and not (
            key == task_id and "/compensate/" in pointer
        ):
            message = f"refers to task '{key}', which '{task_id}' does not depend on"
            problems.append(Problem(pointer, message))
    return problems


class _Reach:
    """Whether a task depends on another, asked for every task an expression refers to.
    A direct dependency is answered at once; the tasks below a task asked about a second
    time are found once and kept (up to a few times as many as the graph has tasks in
    all), so that many tasks referring to one early task cost one walk, not one each
    (a chain of N such tasks: N walks of up to N steps)."""

    def __init__(self, graph: TaskGraph) -> None:
        self.graph = graph
        self.below: dict[str, set[str]] = {}
        self.asked: set[str] = set()
        self.room = 4 * len(graph) + 1000  # how many more kept tasks are allowed

    def depends_on(self, task: str, other: str) -> bool:
        if other in self.graph.dependencies.get(task, ()):
            return True
        below = self.below.get(other)
        if below is not None:
            return task in below
        if other not in self.asked or self.room <= 0:
            self.asked.add(other)
            return self.graph.depends_on(task, other)
        below = self.below[other] = set(self.graph.downstream([other]))
        self.room -= len(below) + 1
        return task in below


def _retry_on_problems(settings: Mapping[str, Any], where: str) -> list[Problem]:
    entries = settings.get("retry_on")
    if not isinstance(entries, list):
        return []  # absent, or the schema reports it
    return [
        Problem(f"{where}/retry_on/{index}", problem)
        for index, entry in enumerate(entries)
        if isinstance(entry, str) and (problem := retry_on_problem(entry))
    ]
