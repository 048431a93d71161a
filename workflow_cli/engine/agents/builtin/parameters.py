"""What every built-in agent uses: checking its parameters, and writing to its log.

A bad parameter is a non-retryable `ActionFailed` of kind ``parameters`` that names it;
bad data in a file is one of kind ``data``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from workflow_cli.engine.actions.base import ActionFailed, TaskCall

Agent = Callable[[dict[str, Any], TaskCall], Any]
Record = dict[str, Any]


def bad(name: str, message: str) -> ActionFailed:
    """Parameter `name` is wrong: `message` says how."""
    return ActionFailed(f"parameter '{name}' {message}", kind="parameters", retryable=False)


def bad_data(message: str) -> ActionFailed:
    """What an agent was given to read is wrong (no retry will fix it)."""
    return ActionFailed(message, kind="data", retryable=False)


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def records_of(parameters: dict[str, Any], name: str = "records") -> list[Record]:
    """Parameter `name` as a list of records (objects)."""
    value = parameters.get(name)
    if not isinstance(value, list):
        raise bad(name, f"must be a list of records (objects), not {type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad(name, f"must hold objects; item {index} is {type_name(item)}")
    return value


def string(parameters: dict[str, Any], name: str, default: str | None = None) -> str:
    value = parameters.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise bad(name, f"must be a non-empty string, not {value!r}")
    return value


def optional_string(parameters: dict[str, Any], name: str) -> str | None:
    if parameters.get(name) is None:
        return None
    return string(parameters, name)


def names(
    parameters: dict[str, Any], name: str, default: list[str], *, label: str | None = None
) -> list[str]:
    """Parameter `name` as a list of field names; `label` names it in a message."""
    value = parameters.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad(label or name, f"must be a list of field names, not {value!r}")
    return value


def integer(value: Any, name: str, *, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise bad(name, f"must be an integer from {minimum} to {maximum}, not {value!r}")
    return value


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_missing(value: Any) -> bool:
    """Absent, null and empty text are all missing."""
    return value is None or (isinstance(value, str) and not value.strip())


def tidy(value: float) -> float:
    """Round away binary noise (0.1 + 0.2) without hiding real precision."""
    return round(value, 6)


def log(call: TaskCall, message: str) -> None:
    call.log.write(message.rstrip("\n") + "\n")
