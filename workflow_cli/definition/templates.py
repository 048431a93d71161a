"""Templates: a parameters block plus a workflow body, built in or from the workspace.

A template file (JSON or YAML)::

    {"name": "...", "description": "...",
     "parameters": {"input": {"type": "string", "default": "...", "description": "...",
                              "enum": [...], "required": false}},
     "workflow": {<a workflow definition, schema 2.0.0>}}

Built-in templates ship in the package; files in the workspace's ``templates/`` folder
add to them or override them by name. `instantiate` gives the instance's definition:
the workflow body with ``params`` holding the coerced values. Nothing is rendered at
creation: expressions are evaluated when tasks run, and parameter values stay data.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from pathlib import Path
from typing import Any

from workflow_cli.definition.loader import (
    load_plain,
    loads_json,
    plain,
    plain_problems,
    pointer_join,
)
from workflow_cli.definition.migrations import normalize
from workflow_cli.errors import (
    DefinitionError,
    ExpressionError,
    NotFoundError,
    ParameterError,
    ParameterErrors,
    Problem,
)
from workflow_cli.readonly import readonly_dataclass

PARAMETER_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
}
TEMPLATE_SUFFIXES = (".json", ".yaml", ".yml")


@readonly_dataclass
class Template:
    name: str
    description: str
    parameters: dict[str, dict[str, Any]]
    workflow: dict[str, Any]
    source: str

    def parameters_schema(self) -> dict[str, Any]:
        """The parameters as a JSON Schema object."""
        properties = {}
        for name, spec in self.parameters.items():
            prop = {k: spec[k] for k in ("type", "description", "default", "enum") if k in spec}
            properties[name] = prop
        return {
            "type": "object",
            "properties": properties,
            "required": [n for n, s in self.parameters.items() if is_required(s)],
            "additionalProperties": False,
        }


def is_required(spec: dict[str, Any]) -> bool:
    return bool(spec.get("required", "default" not in spec))


def builtin_dir() -> Path:
    return Path(__file__).parent.parent / "templates"  # the package's own folder


def _template_files(templates_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in (builtin_dir(), templates_dir):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in TEMPLATE_SUFFIXES and not path.name.startswith("."):
                    found[path.stem] = path  # the workspace's come second and win
    return found


def template_files(templates_dir: Path) -> dict[str, Path]:
    """Each template's name and the file it is read from (a workspace's wins)."""
    return dict(sorted(_template_files(templates_dir).items()))


def template_names(templates_dir: Path) -> list[str]:
    """The names of the built-in templates and those in `templates_dir` (a workspace's
    ``templates/`` folder)."""
    return sorted(_template_files(templates_dir))


def list_templates(templates_dir: Path) -> list[Template]:
    return [read_template(path) for _, path in sorted(_template_files(templates_dir).items())]


def find_template(templates_dir: Path, ref: str) -> Template:
    """The template named `ref` (built in, or in `templates_dir`, which wins), or the
    template or definition file at path `ref`."""
    files = _template_files(templates_dir)
    if ref in files:
        return read_template(files[ref])
    path = Path(ref)
    if path.suffix.lower() in TEMPLATE_SUFFIXES and (path.is_file() or "/" in ref):
        return read_template(path)
    close = difflib.get_close_matches(ref, list(files), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(sorted(files))})"
    raise NotFoundError(f"unknown template '{ref}'{hint}")


def read_template(path: Path) -> Template:
    """A template file, or a plain workflow definition used as one (its ``params`` are its
    parameters, typed by their values). Structural problems raise DefinitionError."""
    document = load_plain(path)
    if not isinstance(document, dict):
        raise DefinitionError(str(path), [Problem("", "must be an object")])
    if "workflow" not in document:
        document, problems = normalize(document)
        problems += _workflow_shape_problems(document, "")
        if problems:
            raise DefinitionError(str(path), problems)
        params = document.get("params") or {}
        parameters = {
            name: {"type": _type_of(value), "default": value}
            for name, value in (params.items() if isinstance(params, dict) else [])
        }
        return Template(
            str(document.get("id") or path.stem),
            str(document.get("description", "")),
            parameters,
            document,
            str(path),
        )
    document["workflow"], problems = normalize(document["workflow"])
    problems = [Problem("/workflow" + p.pointer, p.message) for p in problems]
    problems += _template_problems(document)
    if problems:
        raise DefinitionError(str(path), problems)
    return Template(
        str(document.get("name") or path.stem),
        str(document.get("description", "")),
        document.get("parameters") or {},
        document["workflow"],
        str(path),
    )


def _type_of(value: Any) -> str:
    for name, kind in PARAMETER_TYPES.items():
        if isinstance(value, kind) and not (
            name in ("integer", "number") and isinstance(value, bool)
        ):
            return name
    return "string"


def _workflow_shape_problems(workflow: dict[str, Any], where: str) -> list[Problem]:
    """The shapes a Template hands out (and `templates show` reads) before anything
    uses them: ``tasks`` an object of task objects, each task's ``dependencies`` a list
    of task ids, ``action`` and ``name`` text. The rest is for validation to report."""
    problems: list[Problem] = []
    for key in ("id", "name", "description"):
        if key in workflow and not isinstance(workflow[key], str):
            problems.append(Problem(f"{where}/{key}", "must be a string"))
    tasks = workflow.get("tasks", {})
    if not isinstance(tasks, dict):
        return [*problems, Problem(f"{where}/tasks", "must be an object of tasks")]
    for task_id, task in tasks.items():
        if isinstance(task, dict) and _task_in_shape(task):
            continue  # the usual task: no pointer made for it
        at = pointer_join(f"{where}/tasks", task_id)
        if not isinstance(task, dict):
            problems.append(Problem(at, "must be an object (a task)"))
            continue
        for key in ("action", "name"):
            if key in task and not isinstance(task[key], str):
                problems.append(Problem(f"{at}/{key}", "must be a string"))
        dependencies = task.get("dependencies", [])
        if not isinstance(dependencies, list):
            problems.append(Problem(f"{at}/dependencies", "must be a list of task ids"))
            continue
        for index, dependency in enumerate(dependencies):
            if not isinstance(dependency, str):
                problems.append(Problem(f"{at}/dependencies/{index}", "must be a task id (text)"))
    return problems


def _task_in_shape(task: dict[str, Any]) -> bool:
    """Whether a task has none of the problems `_workflow_shape_problems` reports."""
    action, name = task.get("action", ""), task.get("name", "")
    dependencies = task.get("dependencies", [])
    return (
        isinstance(action, str)
        and isinstance(name, str)
        and isinstance(dependencies, list)
        and all(isinstance(dependency, str) for dependency in dependencies)
    )


def _template_problems(document: dict[str, Any]) -> list[Problem]:
    problems = []
    for key in ("name", "description"):
        if key in document and not isinstance(document[key], str):
            problems.append(Problem(f"/{key}", "must be a string"))
    if not isinstance(document.get("workflow"), dict):
        problems.append(Problem("/workflow", "must be a workflow definition object"))
    else:
        problems += _workflow_shape_problems(document["workflow"], "/workflow")
    parameters = document.get("parameters", {})
    if not isinstance(parameters, dict):
        return [*problems, Problem("/parameters", "must be an object")]
    for name, spec in parameters.items():
        where = f"/parameters/{name}"
        if not isinstance(spec, dict):
            problems.append(Problem(where, "must be an object with a 'type'"))
            continue
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in PARAMETER_TYPES:
            problems.append(
                Problem(f"{where}/type", f"must be one of {', '.join(PARAMETER_TYPES)}")
            )
            continue
        if "default" in spec:
            try:
                check_value(name, spec, spec["default"])
            except ParameterError as exc:
                problems.append(Problem(f"{where}/default", exc.message))
        if "enum" in spec and not isinstance(spec["enum"], list):
            problems.append(Problem(f"{where}/enum", "must be a list"))
        for key in ("description",):
            if key in spec and not isinstance(spec[key], str):
                problems.append(Problem(f"{where}/{key}", "must be a string"))
        if "required" in spec and not isinstance(spec["required"], bool):
            problems.append(Problem(f"{where}/required", "must be true or false"))
    return problems


def coerce_value(name: str, spec: dict[str, Any], text: str) -> Any:
    """The typed value of `--param name=text`."""
    kind = spec.get("type", "string")
    value: Any
    if kind == "string":
        value = text
    elif kind == "integer":
        value = _whole(text)
        if value is None:
            raise ParameterError(name, f"expects an integer, got {_short(text)}")
    elif kind == "number":
        value = _whole(text)  # whole numbers stay exact, however large
        if value is None:
            written = text.strip()
            try:  # digits as JSON writes them: not "1_000", nor other scripts' digits
                if not written.isascii() or "_" in written:
                    raise ValueError(written)
                value = float(written)
            except ValueError:
                raise ParameterError(name, f"expects a number, got {_short(text)}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(name, f"expects a finite number, got {_short(text)}")
    elif kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            value = True
        elif lowered in ("false", "no", "off", "0"):
            value = False
        else:
            raise ParameterError(name, f"expects true or false, got {_short(text)}")
    else:
        try:
            value = loads_json(text)
        except (ValueError, RecursionError) as exc:
            why = f": {exc}" if str(exc).startswith("duplicate key") else ""
            raise ParameterError(name, f"expects JSON ({kind}), got {_short(text)}{why}") from None
        shape = plain_problems(value)
        if shape:
            where = f" at {shape[0].pointer}" if shape[0].pointer else ""
            problem = f"the value{where} {shape[0].message}"
            raise ParameterError(name, f"expects JSON ({kind}): {problem}")
    check_value(name, spec, value)
    return value


def _whole(text: str) -> int | None:
    """The integer `text` writes in ASCII digits with an optional sign (spaces around it
    allowed), else None: Python's `int` would also take ``1_000`` and other scripts'
    digits."""
    written = text.strip()
    digits = written[1:] if written[:1] in ("+", "-") else written
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return int(written)
    except ValueError:  # more digits than Python converts
        return None


def _short(text: str, limit: int = 80) -> str:
    return repr(text) if len(text) <= limit else repr(text[: limit - 1] + "…")


def check_value(name: str, spec: dict[str, Any], value: Any) -> None:
    kind = spec.get("type", "string")
    expected = PARAMETER_TYPES.get(kind, str)
    if not isinstance(value, expected) or (
        kind in ("integer", "number") and isinstance(value, bool)
    ):
        raise ParameterError(name, f"expects {kind}, got {json.dumps(value)}")
    enum = spec.get("enum")
    if isinstance(enum, list) and value not in enum:
        raise ParameterError(
            name,
            f"must be one of {', '.join(json.dumps(v) for v in enum)}, got {json.dumps(value)}",
        )


def parse_param_args(template: Template, args: list[str]) -> dict[str, Any]:
    """Typed values from ``key=value`` arguments, with defaults for the rest; every
    problem at once (`ParameterErrors`, or the one `ParameterError`)."""
    values, errors = read_param_args(template, args)
    raise_all(template, errors)
    return values


def read_param_args(
    template: Template, args: list[str]
) -> tuple[dict[str, Any], list[ParameterError]]:
    """The values of the ``key=value`` arguments that are right (with defaults for the
    rest), and a ParameterError for each one that is not."""
    given: dict[str, Any] = {}
    errors: list[ParameterError] = []
    seen: set[str] = set()
    for arg in args:
        name, sep, text = arg.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ParameterError(arg, "expected key=value")
            if name in seen:
                raise ParameterError(name, "given more than once")
            seen.add(name)
            given[name] = coerce_value(name, _spec(template, name), text)
        except ParameterError as exc:
            errors.append(exc)
    values, missing = _filled(template, given, skip=seen)
    return values, errors + missing


def raise_all(template: Template, errors: list[ParameterError]) -> None:
    """Raise the one error, or all of them together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ParameterErrors(template.name, errors)


def fill_values(template: Template, given: dict[str, Any]) -> dict[str, Any]:
    """`given` (already typed) checked against the parameters, with defaults for the rest."""
    errors = []
    for name, value in given.items():
        try:
            check_value(name, _spec(template, name), value)
        except ParameterError as exc:
            errors.append(exc)
    values, missing = _filled(template, given, skip=set())
    raise_all(template, errors + missing)
    return values


def _filled(
    template: Template, given: dict[str, Any], *, skip: set[str]
) -> tuple[dict[str, Any], list[ParameterError]]:
    """`given` with defaults for the rest, and an error for each required one missing
    (not for those in `skip`: given, but wrong)."""
    values = {}
    missing = []
    for name, spec in template.parameters.items():
        if name in given:
            values[name] = given[name]
        elif "default" in spec:
            values[name] = copy.deepcopy(spec["default"])
        elif is_required(spec) and name not in skip:
            message = f"is required by template '{template.name}' (--param {name}=…)"
            missing.append(ParameterError(name, message))
    return values, missing


def _spec(template: Template, name: str) -> dict[str, Any]:
    spec = template.parameters.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(template.parameters), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        known = ", ".join(sorted(template.parameters)) or "none"
        raise ParameterError(name, f"unknown for template '{template.name}'{hint} (known: {known})")
    return spec


def instantiate(template: Template, values: dict[str, Any]) -> dict[str, Any]:
    """The instance definition: the workflow body with ``params`` set to `values`. Its
    mapping and its ``tasks`` mapping are new, and so is each task that `resolve_agents`
    changes (one whose agent, or whose compensation's, a parameter chooses: copied
    whole); the rest is the template's own, shared (creating an instance reads it and
    changes none of it), not copied value by value for every instance."""
    definition: dict[str, Any] = dict(template.workflow)
    if isinstance(definition.get("params") or {}, dict):  # else validation reports it
        definition["params"] = {**(definition.get("params") or {}), **values}
    tasks = definition.get("tasks")
    if isinstance(tasks, dict):
        chosen = {id(owner) for _, owner in agent_choices(definition)}
        definition["tasks"] = {
            task_id: plain(task) if _holds_any(task, chosen) else task
            for task_id, task in tasks.items()
        }
    return definition


def _holds_any(task: Any, owners: set[int]) -> bool:
    """Whether `task` or its compensation is one of `owners` (by identity)."""
    if not owners or not isinstance(task, dict):
        return False
    return id(task) in owners or id(task.get("compensate")) in owners


def agent_choices(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Where a parameter chooses an agent: (JSON pointer of the ``agent_id``, the task or
    compensation that holds it) for each ``agent_id`` with ``{{ … }}`` in it."""
    from workflow_cli.definition.expressions import has_template

    found = []
    tasks = workflow.get("tasks")
    for task_id, task in tasks.items() if isinstance(tasks, dict) else []:
        if not isinstance(task, dict):
            continue
        compensate = task.get("compensate")
        owners = (task, compensate) if isinstance(compensate, dict) else (task,)
        for owner in owners:
            agent = owner.get("agent_id")
            if isinstance(agent, str) and has_template(agent):
                where = pointer_join("/tasks", task_id)  # only for the few found
                base = where if owner is task else f"{where}/compensate"
                found.append((f"{base}/agent_id", owner))
    return found


def resolve_agents(definition: dict[str, Any]) -> list[Problem]:
    """Put the agent each parameter chooses in its place (in `definition`, an instance's):
    ``agent_id: "{{ params.worker }}"`` becomes the name the parameter holds, as data
    (never rendered again). What cannot be resolved to a name is a problem."""
    from workflow_cli.definition.expressions import references, render_value

    params = definition.get("params") if isinstance(definition.get("params"), dict) else {}
    problems = []
    for pointer, owner in agent_choices(definition):
        text = owner["agent_id"]
        try:
            agent = render_value(text, {"params": params})
        except ExpressionError as exc:
            problems.append(Problem(pointer, exc.message))
            continue
        if not isinstance(agent, str) or not agent.strip():
            names = sorted(key for root, key in references(text) if root == "params")
            chosen = f" (parameter {', '.join(names)})" if names else ""
            problems.append(Problem(pointer, f"must name an agent{chosen}, not {agent!r}"))
            continue
        owner["agent_id"] = agent.strip()
    return problems
