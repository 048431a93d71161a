"""The registry of actions: built-in ones by name, others from the entry-point group
``workflow_cli.actions`` (each entry point names an object following `base.Action`),
loaded on first use. A plugin that fails to load is reported, not fatal."""

from __future__ import annotations

import importlib
from functools import cache

from workflow_cli.engine.actions.base import Action
from workflow_cli.errors import NotFoundError

ENTRY_POINT_GROUP = "workflow_cli.actions"

BUILTIN_ACTIONS = {
    "agent_task": "workflow_cli.engine.actions.agent_task",
    "file_operation": "workflow_cli.engine.actions.file_operation",
    "api_call": "workflow_cli.engine.actions.api_call",
    "workflow_trigger": "workflow_cli.engine.actions.workflow_trigger",
    "approval_gate": "workflow_cli.engine.actions.approval_gate",
    "condition_check": "workflow_cli.engine.actions.condition_check",
    "wait_for_event": "workflow_cli.engine.actions.wait_for_event",
}

plugin_warnings: list[str] = []


@cache
def _plugins() -> dict[str, Action]:
    from importlib.metadata import entry_points

    found: dict[str, Action] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[entry.name] = entry.load()
        except Exception as exc:  # a broken plugin must not break the tool
            plugin_warnings.append(f"action plugin '{entry.name}' failed to load: {exc}")
    return found


def action_names() -> list[str]:
    return sorted({*BUILTIN_ACTIONS, *_plugins()})


@cache
def get_action(name: str) -> Action:
    """The action called `name`, or NotFoundError naming the known ones."""
    module = BUILTIN_ACTIONS.get(name)
    if module is not None:
        action: Action = importlib.import_module(module).ACTION
        return action
    plugin = _plugins().get(name)
    if plugin is None:
        raise NotFoundError(f"unknown action '{name}' (known: {', '.join(action_names())})")
    return plugin
