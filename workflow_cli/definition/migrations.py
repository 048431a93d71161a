"""Schema versions of workflow definitions, and the steps from each one to the next.

=========  =================================================================
version    what it added
=========  =================================================================
1.0.0      basic tasks: action, agent, parameters, dependencies, timeout;
           a task runs alongside others unless ``parallel: false``
1.1.0      execution modes (``execution_mode``: sequential, parallel) and
           ``priority``, in place of ``parallel``
1.2.0      conditions (``conditions``, ``execution_mode: conditional``,
           ``run_if_dependencies_skipped``)
2.0.0      checkpoints and retries (``retry_*``, ``milestone``,
           ``checkpoint_interval``, ``compensate``, ``on_failure``, ``defaults``,
           ``cache``, ``secrets``, ``monitoring``, ``parallel_group``,
           workflow ``timeout_seconds``) — the current version
=========  =================================================================

Each version has its JSON Schema in ``schema/workflow-VERSION.json``. Each step is a
small pure function from a definition of one version to one of the next (`STEPS`);
`migrate` chains them. `normalize` reads a definition the way the design documents
write it — ``id`` left out (derived from ``name``), ``schema_version`` left out (then
``version`` is the schema version when it is a known one, else the current one),
``tasks`` as a list of task objects with ``id``, ``timeout`` for ``timeout_seconds``
(seconds, or a duration such as ``"30m"``) — and returns the one shape the rest reads.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from workflow_cli.definition.loader import pointer_join
from workflow_cli.errors import Problem

CURRENT_VERSION = "2.0.0"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "2.0.0")

Definition = dict[str, Any]
Step = Callable[[Definition], Definition]


def _tasks(definition: Definition) -> dict[str, Any]:
    tasks = definition.get("tasks")
    return tasks if isinstance(tasks, dict) else {}


def _task_objects(definition: Definition) -> list[Any]:
    """The task objects, whether ``tasks`` is a mapping or a list (as written)."""
    tasks = definition.get("tasks")
    if isinstance(tasks, dict):
        return list(tasks.values())
    return tasks if isinstance(tasks, list) else []


def _on_version(definition: Definition, version: str) -> Definition:
    """`definition` saying it is on `version`: ``schema_version`` where it was, else
    right after ``version`` (or first)."""
    if "schema_version" in definition:
        return {**definition, "schema_version": version}
    result: Definition = {} if "version" in definition else {"schema_version": version}
    for key, value in definition.items():
        result[key] = value
        if key == "version":
            result["schema_version"] = version
    return result


def to_1_1_0(definition: Definition) -> Definition:
    """1.0.0 → 1.1.0: ``parallel: true|false`` becomes ``execution_mode``."""
    result = copy.deepcopy(definition)
    for task in _task_objects(result):
        if isinstance(task, dict) and "parallel" in task:
            parallel = task.pop("parallel")
            task.setdefault("execution_mode", "sequential" if parallel is False else "parallel")
    return _on_version(result, "1.1.0")


def to_1_2_0(definition: Definition) -> Definition:
    """1.1.0 → 1.2.0: conditions are new; nothing of 1.1.0 changes meaning."""
    return _on_version(copy.deepcopy(definition), "1.2.0")


def to_2_0_0(definition: Definition) -> Definition:
    """1.2.0 → 2.0.0: checkpoints and retries are new; 1.2.0 tasks ran once, which
    2.0.0 says with ``retry_count: 0`` (its default), so nothing else changes."""
    return _on_version(copy.deepcopy(definition), "2.0.0")


# version -> (the next version, the step there)
STEPS: dict[str, tuple[str, Step]] = {
    "1.0.0": ("1.1.0", to_1_1_0),
    "1.1.0": ("1.2.0", to_1_2_0),
    "1.2.0": ("2.0.0", to_2_0_0),
}


def schema_version_of(definition: Mapping[str, Any]) -> str:
    """The schema version a definition is written in: ``schema_version``; when that is
    absent, ``version`` if it is a known schema version; else the current one."""
    declared = definition.get("schema_version")
    if isinstance(declared, str):
        return declared
    version = definition.get("version")
    return version if isinstance(version, str) and version in VERSIONS else CURRENT_VERSION


def migrate(definition: Definition, target: str = CURRENT_VERSION) -> tuple[Definition, list[str]]:
    """`definition` (of a known version; ``tasks`` a mapping or a list) carried step by
    step to `target`, and the versions it passed through (none when it was there)."""
    version = schema_version_of(definition)
    if version not in VERSIONS or target not in VERSIONS:
        raise ValueError(f"unknown schema version {version if version not in VERSIONS else target}")
    if VERSIONS.index(version) > VERSIONS.index(target):
        raise ValueError(f"cannot migrate schema {version} back to {target}")
    passed: list[str] = []
    result = definition
    while version != target:
        version, step = STEPS[version][0], STEPS[version][1]
        result = step(result)
        passed.append(version)
    return result, passed


def migration_notice(source: str, version: str) -> str:
    """The one line said when a definition of an older version is read."""
    return (
        f"notice: {source} is on schema {version}; migrated in memory to {CURRENT_VERSION}"
        f" (workflow_cli migrate rewrites it)"
    )


# Patterns are compiled when first used (and kept in re's cache), not on import.
_DURATION = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a duration text (``90``, ``"30s"``, ``"30m"``,
    ``"24h"``, ``"2d"``, ``"500ms"``); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if isinstance(value, str) and (found := re.match(_DURATION, value)):
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
        return seconds if seconds > 0 else None
    return None


def derive_id(name: str) -> str:
    """An id from a workflow's name: ``"Simple Analysis"`` → ``simple-analysis``."""
    slug = re.sub(r"[^A-Za-z0-9_.]+", "-", name.strip().lower()).strip("-._")
    return slug[:100] or "workflow"


def normalize(document: Any) -> tuple[Any, list[Problem]]:
    """The definition in the one shape the engine reads, and what stood in the way.
    `document` itself is never changed: one in that shape already is returned as it is
    (no copy of a large definition), any other as a changed copy. Anything that is not
    an object is returned as it is (the schema reports it)."""
    if not isinstance(document, dict) or _in_shape(document):
        return document, []
    result: Definition = copy.deepcopy(document)
    problems: list[Problem] = []
    if "id" not in result and isinstance(result.get("name"), str) and result["name"].strip():
        result["id"] = derive_id(result["name"])
    if "schema_version" not in result:
        result = _on_version(result, schema_version_of(result))
    _alias(result, "", problems)
    tasks = result.get("tasks")
    if isinstance(tasks, list):
        result["tasks"], listed = _tasks_from_list(tasks)
        problems += listed
    for task_id, task in _tasks(result).items():
        if isinstance(task, dict):
            _alias(task, pointer_join("/tasks", task_id), problems)
    return result, problems


def _alias(owner: dict[str, Any], where: str, problems: list[Problem]) -> None:
    """``timeout`` (seconds or a duration) as ``timeout_seconds``."""
    if "timeout" not in owner:
        return
    if "timeout_seconds" in owner:
        problems.append(Problem(f"{where}/timeout", "give timeout or timeout_seconds, not both"))
        return
    seconds = parse_duration(owner["timeout"])
    if seconds is None:
        message = f"must be seconds above 0 or a duration such as '30m', not {owner['timeout']!r}"
        problems.append(Problem(f"{where}/timeout", message))
        return
    del owner["timeout"]
    owner["timeout_seconds"] = int(seconds) if seconds.is_integer() else seconds


def _tasks_from_list(tasks: list[Any]) -> tuple[dict[str, Any], list[Problem]]:
    """``tasks`` written as a list of task objects, each with its ``id``."""
    mapping: dict[str, Any] = {}
    problems: list[Problem] = []
    for index, task in enumerate(tasks):
        where = f"/tasks/{index}"
        if not isinstance(task, dict):
            problems.append(Problem(where, "must be a task object with an 'id'"))
            continue
        task_id = task.get("id")
        if not isinstance(task_id, str) or not task_id:
            problems.append(Problem(f"{where}/id", "a task in a list needs an 'id' (text)"))
        elif task_id in mapping:
            problems.append(Problem(f"{where}/id", f"duplicate task id '{task_id}'"))
        else:
            mapping[task_id] = {k: v for k, v in task.items() if k != "id"}
    return mapping, problems


def upgrade(document: Definition) -> Definition:
    """A stored definition (valid when it was stored) as the engine reads it now:
    normalized, and migrated to the current version when it is on an older one."""
    if _is_current_shape(document):
        return document  # what create stores today: no copy of a large definition
    normalized: Definition = normalize(document)[0]
    if schema_version_of(normalized) in VERSIONS:
        return migrate(normalized)[0]
    return normalized


def _in_shape(document: Definition) -> bool:
    """Whether `normalize` would change nothing."""
    tasks = document.get("tasks")
    return (
        "schema_version" in document
        and ("id" in document or not isinstance(document.get("name"), str))
        and "timeout" not in document
        and not isinstance(tasks, list)
        and not (
            isinstance(tasks, dict)
            and any(isinstance(task, dict) and "timeout" in task for task in tasks.values())
        )
    )


def _is_current_shape(document: Definition) -> bool:
    return document.get("schema_version") == CURRENT_VERSION and _in_shape(document)
