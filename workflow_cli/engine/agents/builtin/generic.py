"""Agents for any workflow: a JSON summary written to a file, and echo."""

from __future__ import annotations

from typing import Any

from workflow_cli.engine.actions.base import TaskCall
from workflow_cli.engine.agents.builtin.parameters import bad, string


def write_summary(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Write ``summary`` (any JSON value) to the workspace JSON file ``output``."""
    from workflow_cli.engine.agents.builtin.records import json_bytes, write_file  # not echo's

    name = string(parameters, "output")
    if "summary" not in parameters:
        raise bad("summary", "is required (the value to write)")
    return write_file(call, name, json_bytes(parameters["summary"]))


def echo(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Return the parameters unchanged (for tests and benchmarks)."""
    return dict(parameters)
