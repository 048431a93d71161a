"""Python agents: a function ``module:function``, imported from the workspace folder
(which goes on ``sys.path``) and called with the task's parameters dict; what it
returns is the output."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.errors import Problem
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.engine.agents.registry import AgentSpec


def parse(entry: Mapping[str, Any], where: str) -> str | Problem:
    """The ``module:function`` of an ``agents.yaml`` entry with ``callable``."""
    target = entry["callable"]
    if not isinstance(target, str) or ":" not in target:
        return Problem(f"{where}/callable", "must be 'module:function'")
    return target


def run(spec: AgentSpec[str], call: TaskCall) -> Any:
    """Call the function with the task's parameters."""
    return load_callable(spec.settings, call.workspace)(call.parameters)


def load_callable(target: str, workspace: Workspace) -> Callable[[dict[str, Any]], Any]:
    """The function `target` names; a non-retryable failure when it cannot be had."""
    module_name, _, function = target.partition(":")
    root = str(workspace.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        fn = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise ActionFailed(f"cannot load agent callable {target}: {exc}", retryable=False) from exc
    if not callable(fn):
        raise ActionFailed(f"{target} is not callable", retryable=False)
    result: Callable[[dict[str, Any]], Any] = fn
    return result
