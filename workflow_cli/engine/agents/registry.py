"""Which agents a workspace has, and running one by name.

A declared agent has a *kind*: how it runs. Each kind is a module of this package with
two functions, ``parse(entry, where)`` (its settings from the agent's ``agents.yaml``
entry, or the `Problem` with them) and ``run(spec, call)`` (one attempt), and one line
in `KINDS` naming the ``agents.yaml`` key that declares it. Nothing else changes when a
kind is added.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from workflow_cli.engine.actions.base import TaskCall
from workflow_cli.engine.agents import mailbox
from workflow_cli.errors import (
    DefinitionError,
    NotFoundError,
    Problem,
    WorkflowCliError,
    WorkspaceError,
)
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.config import config_block
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.engine.agents.builtin import Agent

Settings = TypeVar("Settings")


@readonly_dataclass
class AgentSpec(Generic[Settings]):
    """How to run one agent declared in ``agents.yaml``."""

    name: str
    kind: str  # a key of KINDS: "command", "python", "http" or "mailbox"
    settings: Settings  # what the kind's parse() made of the entry: a command line, ...
    env: Mapping[str, str] = field(default_factory=dict)


@readonly_dataclass
class AgentKind:
    """One kind of declared agent: the ``agents.yaml`` key that declares it, and the
    module of this package with its ``parse`` and ``run`` (imported when first used: a
    workspace without ``url`` agents does without the HTTP client)."""

    key: str
    module: str

    def parse(self, entry: Mapping[str, Any], where: str) -> Any:
        return self._module().parse(entry, where)

    def run(self, spec: AgentSpec[Any], call: TaskCall) -> Any:
        return self._module().run(spec, call)

    def _module(self) -> Any:
        return import_module(f"workflow_cli.engine.agents.{self.module}")


KINDS: dict[str, AgentKind] = {
    "command": AgentKind("command", "command"),
    "python": AgentKind("callable", "python"),
    "http": AgentKind("url", "http_endpoint"),
    "mailbox": AgentKind("mailbox", "mailbox"),
}
UNDECLARED_SETTINGS = ("mailbox", "error")


def builtin_agents() -> Mapping[str, Agent]:
    """The built-in agents by name (imported on first use)."""
    from workflow_cli.engine.agents.builtin import BUILTIN_AGENTS

    return BUILTIN_AGENTS


def load_agents(workspace: Workspace) -> dict[str, AgentSpec[Any]]:
    """The workspace's declared agents (not the built-in ones)."""
    path = _agents_file(workspace)
    if not os.access(path, os.F_OK):  # the usual case, asked without raising an exception
        return {}
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return {}
    # Every agent_task asks; parse the file again only when it has changed.
    return _parse_agents(Path(path), stat.st_mtime_ns, stat.st_size)


def agents_as_read(workspace: Workspace) -> dict[str, AgentSpec[Any]] | None:
    """`load_agents`, or None when agents.yaml cannot be read (each attempt that needs
    it then reads it, and reports the problem as its failure)."""
    try:
        return load_agents(workspace)
    except WorkflowCliError:
        return None


@functools.lru_cache(maxsize=8)
def _agents_file(workspace: Workspace) -> str:
    """Where `workspace` declares its agents (asked twice per attempt: a path built
    once, where building it each time cost more than the stat)."""
    return str(workspace.agents_file)


def _alternatives(words: list[str]) -> str:
    """``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    *rest, last = [f"'{word}'" for word in words]
    return f"{', '.join(rest)} or {last}" if rest else last


@functools.lru_cache(maxsize=8)
def _parse_agents(path: Path, mtime_ns: int, size: int) -> dict[str, AgentSpec[Any]]:
    # The one reader of a settings file: a regular file of bounded size in UTF-8, a key
    # written twice refused (read as plain data, the last would silently win).
    from workflow_cli.definition.loader import load_plain

    data = load_plain(path) or {}
    entries = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise DefinitionError(str(path), [Problem("/agents", "must be a mapping of agent names")])
    keys = _alternatives([kind.key for kind in KINDS.values()])
    problems: list[Problem] = []
    agents: dict[str, AgentSpec[Any]] = {}
    for name, entry in entries.items():
        where = f"/agents/{name}"
        if not isinstance(entry, dict):
            problems.append(Problem(where, f"must be a mapping with {keys}"))
            continue
        declared = [kind for kind, spec in KINDS.items() if entry.get(spec.key) is not None]
        if len(declared) != 1:
            problems.append(Problem(where, f"needs exactly one of {keys}"))
            continue
        settings = KINDS[declared[0]].parse(entry, where)
        env = entry.get("env", {})
        if isinstance(settings, Problem):
            problems.append(settings)
        elif not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            problems.append(Problem(f"{where}/env", "must map names to strings"))
        else:
            agents[str(name)] = AgentSpec(str(name), declared[0], settings, dict(env))
    if problems:
        raise DefinitionError(str(path), problems)
    return agents


def agent_names(workspace: Workspace) -> frozenset[str]:
    """Every agent declared or built in (an ``agent_task`` may name others: they are
    mailbox agents, unless `undeclared_agents` says ``error``)."""
    return frozenset(builtin_agents()) | frozenset(load_agents(workspace))


def undeclared_agents(workspace: Workspace) -> str:
    """What an agent named but neither declared nor built in is: ``mailbox`` (the
    default) or ``error`` (``undeclared_agents:`` in ``workflow_cli.yaml``)."""
    setting = config_block(workspace, "undeclared_agents")
    if setting is None:
        return "mailbox"
    if setting not in UNDECLARED_SETTINGS:
        raise WorkspaceError(
            f"workflow_cli.yaml: undeclared_agents must be 'mailbox' or 'error', not {setting!r}"
        )
    return str(setting)


def agent_kind(
    workspace: Workspace, name: str, agents: Mapping[str, AgentSpec[Any]] | None = None
) -> str | None:
    """How agent `name` runs: ``builtin``, a key of `KINDS`, or None for an unknown
    agent when undeclared agents are an error. A workspace agent (of `agents`, else as
    read now) takes precedence."""
    spec = (load_agents(workspace) if agents is None else agents).get(name)
    if spec is not None:
        return spec.kind
    if name in builtin_agents():
        return "builtin"
    return "mailbox" if undeclared_agents(workspace) == "mailbox" else None


def run_agent(name: str, call: TaskCall) -> Any:
    """Run agent `name` for one attempt of a task; its output is the task's output."""
    spec = (load_agents(call.workspace) if call.agents is None else call.agents).get(name)
    if spec is None:
        builtin = builtin_agents().get(name)
        if builtin is not None:
            return builtin(call.parameters, call)
        if undeclared_agents(call.workspace) == "error":
            raise NotFoundError(f"unknown agent '{name}' (declare it in agents.yaml)")
        return mailbox.run_mailbox(name, call)
    return KINDS[spec.kind].run(spec, call)


def undeclared_in(workspace: Workspace, definition: Mapping[str, Any]) -> list[str]:
    """The agents that `definition`'s agent tasks (and compensations) name as written,
    neither declared nor built in: mailbox agents, or errors (`undeclared_agents`)."""
    known = agent_names(workspace)
    tasks = definition.get("tasks")
    listed = tasks.values() if isinstance(tasks, dict) else tasks if isinstance(tasks, list) else []
    found: list[str] = []
    for task in listed:
        if not isinstance(task, dict):
            continue
        for owner in (task, task.get("compensate")):
            if not isinstance(owner, dict) or owner.get("action") != "agent_task":
                continue
            agent = owner.get("agent_id")
            if isinstance(agent, str) and "{{" not in agent and agent not in known:
                found.append(agent)
    return list(dict.fromkeys(found))
