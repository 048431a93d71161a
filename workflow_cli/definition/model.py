"""The typed model of a workflow definition, read once and handed around.

`parse_workflow` turns a definition that passed validation into a `WorkflowSpec`: its
tasks as `TaskSpec` records with the workflow's ``defaults`` and the built-in defaults
filled in (every default lives in `TASK_DEFAULTS`, nowhere else), and its one
`TaskGraph`. The runner, the scheduler, compensation, control and monitoring read tasks
only through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from functools import cached_property, lru_cache
from typing import Any

from workflow_cli.definition.graph import TaskGraph, resolve_groups
from workflow_cli.readonly import readonly_dataclass

# The built-in value of every task setting that ``defaults`` or a task may set.
TASK_DEFAULTS: dict[str, Any] = {
    "timeout_seconds": None,
    "retry_count": 0,
    "retry_delay": 1.0,
    "retry_backoff": 2.0,
    "max_retry_delay": 300.0,
    "execution_mode": "parallel",
    "critical": True,
    "on_failure": "fail",
    "priority": 0,
    "retry_on": None,
}


@readonly_dataclass
class RetryPolicy:
    """How often a failed attempt is tried again and how long to wait first: the delay
    before the attempt after attempt *n* is ``delay * backoff^(n-1)``, capped by
    ``max_delay``, with ±10 % jitter. ``retry_on`` limits retries to kinds of error."""

    count: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    retry_on: tuple[str, ...] | None = None


@readonly_dataclass
class CompensationSpec:
    """How to undo a completed task (``compensate``)."""

    action: str
    agent_id: str | None
    parameters: Mapping[str, Any]
    timeout: float | None
    retry: RetryPolicy


@readonly_dataclass
class CacheSpec:
    """``cache``: reuse the output of an earlier completed run of the same task.

    The key is `key` rendered (an expression over the task's parameters), or by default
    the action, agent and rendered parameters; either way with the digests of the
    workspace `files` the task names. An entry older than `ttl` seconds is not used."""

    key: str | None = None
    ttl: float | None = None
    files: tuple[str, ...] = ()


# The events a hook may be for (``hooks: [{events: ...}]``).
HOOK_EVENTS = (
    "workflow.started",
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
    "task.failed",
    "task.retrying",
    "approval.required",
    "approval.overdue",
    "agent.assigned",
)
# A hook's delivery settings when it does not set them.
HOOK_DEFAULTS: dict[str, Any] = {"timeout_seconds": 10.0, "retry_count": 3, "retry_delay": 1.0}


@readonly_dataclass
class HookSpec:
    """``hooks``: on some events of a run, run a command or POST a webhook. Strings in
    `command`, `url` and `headers` may use ``{{ params.X }}`` and ``{{ secrets.X }}``
    (rendered when the hook is delivered, never stored). A failed delivery is tried
    again `retry_count` times, `retry_delay` seconds after the first failure and twice
    as long after each next one."""

    name: str
    events: frozenset[str]
    command: tuple[str, ...] | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = HOOK_DEFAULTS["timeout_seconds"]
    retry_count: int = HOOK_DEFAULTS["retry_count"]
    retry_delay: float = HOOK_DEFAULTS["retry_delay"]

    @property
    def target(self) -> str:
        """What the hook calls, for records: the URL, or the command's program."""
        return self.url if self.url is not None else (self.command or ("?",))[0]


def parse_hooks(block: Any, source: str) -> tuple[HookSpec, ...]:
    """The hooks of a ``hooks`` list that passed validation; unnamed ones are called
    ``SOURCE[INDEX]``."""
    if not isinstance(block, list):
        return ()
    import shlex  # a run with no hooks does not load it

    hooks = []
    for index, hook in enumerate(block):
        events = hook["events"]
        command = hook.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        settings = {**HOOK_DEFAULTS, **hook}
        hooks.append(
            HookSpec(
                name=hook.get("name") or f"{source}[{index}]",
                events=frozenset([events] if isinstance(events, str) else events),
                command=tuple(command) if command is not None else None,
                url=hook.get("url"),
                headers=dict(hook.get("headers") or {}),
                timeout=float(settings["timeout_seconds"]),
                retry_count=int(settings["retry_count"]),
                retry_delay=float(settings["retry_delay"]),
            )
        )
    return tuple(hooks)


@readonly_dataclass
class RepeatSpec:
    """``repeat``: run the task again until `until` (a bare expression that sees the last
    output as ``output`` and the iteration, from 1, as ``iteration``) holds; after
    `max_iterations` iterations without it, the task fails. `delay` seconds between."""

    until: str
    max_iterations: int = 10
    delay: float = 0.0


@readonly_dataclass
class GroupSpec:
    """A named group of tasks that runs again, all of it, until ``repeat.until`` (which
    sees ``output``: each of its tasks' output by id, and ``iteration``) holds."""

    name: str
    tasks: tuple[str, ...]
    repeat: RepeatSpec


@readonly_dataclass
class TaskSpec:
    """One task of a workflow, every setting filled in."""

    id: str
    order: int  # its place in the definition, the tie-breaker after priority
    action: str
    name: str | None = None
    description: str | None = None
    agent_id: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    timeout: float | None = None
    retry: RetryPolicy = RetryPolicy()
    execution_mode: str = "parallel"
    critical: bool = True
    on_failure: str = "fail"
    priority: int = 0
    run_if_dependencies_skipped: bool = False
    milestone: bool = False
    expected_duration: float | None = None
    compensate: CompensationSpec | None = None
    cache: CacheSpec | None = None
    for_each: str | list[Any] | None = None  # the items: an expression, or the list itself
    max_parallel: int | None = None  # items of a for_each task at once (None: no own limit)
    repeat: RepeatSpec | None = None
    parallel_group: str | None = None

    @property
    def label(self) -> str:
        """The name shown for the task: its name, else its id."""
        return self.name if self.name and self.name.strip() else self.id

    @property
    def stops_run_on_failure(self) -> bool:
        """Whether failing for good ends (or pauses) the whole run."""
        return self.on_failure == "fail" and self.critical


@readonly_dataclass
class WorkflowSpec:
    """A workflow definition as the engine reads it."""

    id: str | None
    name: str | None
    description: str | None
    params: Mapping[str, Any]
    tasks: Mapping[str, TaskSpec]
    on_failure: str = "fail"
    checkpoint_interval: int | None = None
    expected_duration: float | None = None
    monitoring: Mapping[str, Any] = field(default_factory=dict)
    groups: Mapping[str, GroupSpec] = field(default_factory=dict)
    hooks: tuple[HookSpec, ...] = ()
    timeout: float | None = None  # seconds one run of the whole workflow may take

    @cached_property
    def group_of(self) -> dict[str, str]:
        """The group each grouped task belongs to."""
        return {task: name for name, group in self.groups.items() for task in group.tasks}

    @cached_property
    def graph(self) -> TaskGraph:
        return TaskGraph.build({t: spec.dependencies for t, spec in self.tasks.items()})


def conditions_of(task: Mapping[str, Any]) -> list[str]:
    """A task's ``conditions``: one expression or a list, as a list."""
    conditions = task.get("conditions") or []
    conditions = [conditions] if isinstance(conditions, str) else conditions
    return list(conditions) if isinstance(conditions, list) else []  # else the schema says


def parse_workflow(definition: Mapping[str, Any]) -> WorkflowSpec:
    """The model of a definition that passed validation."""
    defaults = {**TASK_DEFAULTS, **(definition.get("defaults") or {})}
    written = definition["tasks"]
    groups = {t: task["parallel_group"] for t, task in written.items() if "parallel_group" in task}
    if groups:  # dependencies on a group are dependencies on its tasks
        resolved = resolve_groups(
            {task_id: task.get("dependencies") or [] for task_id, task in written.items()}, groups
        )
        written = {t: {**task, "dependencies": resolved[t]} for t, task in written.items()}
    shared = _shared_settings(defaults)
    tasks = {
        task_id: _parse_task(task_id, order, task, defaults, shared)
        for order, (task_id, task) in enumerate(written.items())
    }
    return WorkflowSpec(
        id=definition.get("id"),
        name=definition.get("name"),
        description=definition.get("description"),
        params=definition.get("params") or {},
        tasks=tasks,
        on_failure=definition.get("on_failure", "fail"),
        checkpoint_interval=definition.get("checkpoint_interval"),
        expected_duration=definition.get("expected_duration"),
        monitoring=definition.get("monitoring") or {},
        groups={
            name: GroupSpec(name, tuple(group["tasks"]), _repeat(group["repeat"]) or RepeatSpec(""))
            for name, group in (definition.get("groups") or {}).items()
        },
        hooks=parse_hooks(definition.get("hooks"), "definition"),
        timeout=definition.get("timeout_seconds"),
    )


def parse_task(
    task_id: str, order: int, task: Mapping[str, Any], defaults: Mapping[str, Any]
) -> TaskSpec:
    """The model of one task of a definition that passed validation, with `defaults`
    (the built-in ones and the workflow's) filled in."""
    return _parse_task(task_id, order, task, defaults, _shared_settings(defaults))


# The keys of a task that need no more than reading (most tasks have only these): a task
# with no others takes every other field from `defaults` or the field's own default.
_PLAIN_TASK_KEYS = frozenset(
    {"action", "name", "description", "agent_id", "parameters", "dependencies"}
)

# What a task with none of its own settings has (`_shared_settings`).
_Shared = tuple[float | None, RetryPolicy, str, bool, str, int]


def _shared_settings(defaults: Mapping[str, Any]) -> _Shared:
    """The settings of a task that sets none of `TASK_DEFAULTS` itself, as `TaskSpec`
    holds them: timeout, retry policy, execution mode, critical, on_failure, priority."""
    retry_on = defaults["retry_on"]
    return (
        defaults["timeout_seconds"],
        _retry_policy(
            defaults["retry_count"],
            defaults["retry_delay"],
            defaults["retry_backoff"],
            defaults["max_retry_delay"],
            tuple(retry_on) if retry_on is not None else None,
        ),
        defaults["execution_mode"],
        defaults["critical"],
        defaults["on_failure"],
        defaults["priority"],
    )


def _parse_task(
    task_id: str,
    order: int,
    task: Mapping[str, Any],
    defaults: Mapping[str, Any],
    shared: _Shared,
) -> TaskSpec:
    plain = task.keys() <= _PLAIN_TASK_KEYS  # the usual task: read, nothing to work out
    own = () if plain else task.keys() & TASK_DEFAULTS.keys()
    timeout, retry, mode, critical, on_failure, priority = (
        _shared_settings({**defaults, **{k: task[k] for k in own}}) if own else shared
    )
    dependencies = task.get("dependencies") or ()
    return TaskSpec(
        id=task_id,
        order=order,
        action=task["action"],
        name=task.get("name"),
        description=task.get("description"),
        agent_id=task.get("agent_id"),
        parameters=task.get("parameters") or {},
        dependencies=(
            tuple(dict.fromkeys(dependencies)) if len(dependencies) > 1 else tuple(dependencies)
        ),
        timeout=timeout,
        retry=retry,
        execution_mode=mode,
        critical=critical,
        on_failure=on_failure,
        priority=priority,
        **({} if plain else _own_fields(task)),
    )


def _own_fields(task: Mapping[str, Any]) -> dict[str, Any]:
    """The `TaskSpec` fields only a task with keys beyond the plain ones can set."""
    return {
        "conditions": tuple(conditions_of(task)),
        "run_if_dependencies_skipped": bool(task.get("run_if_dependencies_skipped", False)),
        "milestone": bool(task.get("milestone", False)),
        "expected_duration": task.get("expected_duration"),
        "compensate": _compensation(task.get("compensate")),
        "cache": _cache(task.get("cache")),
        "for_each": task.get("for_each"),
        "max_parallel": task.get("max_parallel"),
        "repeat": _repeat(task.get("repeat")),
        "parallel_group": task.get("parallel_group"),
    }


def _repeat(spec: Any) -> RepeatSpec | None:
    if not isinstance(spec, Mapping):
        return None
    return RepeatSpec(
        spec["until"], int(spec.get("max_iterations", 10)), float(spec.get("delay_seconds", 0))
    )


@lru_cache(maxsize=256)
def _retry_policy(
    count: int, delay: float, backoff: float, max_delay: float, retry_on: tuple[str, ...] | None
) -> RetryPolicy:
    """One policy object for the many tasks that share their settings."""
    return RetryPolicy(count, delay, backoff, max_delay, retry_on)


def _cache(spec: Any) -> CacheSpec | None:
    if spec is True:
        return CacheSpec()
    if not isinstance(spec, Mapping):
        return None
    return CacheSpec(spec.get("key"), spec.get("ttl_seconds"), tuple(spec.get("files") or ()))


def _compensation(spec: Any) -> CompensationSpec | None:
    if not isinstance(spec, Mapping):
        return None
    return CompensationSpec(
        action=spec["action"],
        agent_id=spec.get("agent_id"),
        parameters=spec.get("parameters") or {},
        timeout=spec.get("timeout_seconds"),
        retry=RetryPolicy(
            count=int(spec.get("retry_count", 0)),
            delay=float(spec.get("retry_delay", 1.0)),
            backoff=2.0,
            max_delay=TASK_DEFAULTS["max_retry_delay"],
        ),
    )
