"""What one attempt of a task (or of its compensation) is given: the values its
expressions see, and its log file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workflow_cli.store.state import DONE_TASK_STATES, State


def step_of(task: dict[str, Any]) -> dict[str, Any]:
    """What expressions see of a finished task as ``steps.ID``."""
    step = {"state": task["state"], "output": task.get("output")}
    if task.get("error"):
        step["error"] = task["error"]
    return step


def build_context(definition: dict[str, Any], state: State) -> dict[str, Any]:
    """The values expressions see: ``params``, ``steps`` (finished tasks) and ``instance``."""
    return {
        "params": definition.get("params") or {},
        "steps": {
            task_id: step_of(task)
            for task_id, task in state["tasks"].items()
            if task["state"] in DONE_TASK_STATES
        },
        "instance": {"id": state["id"]},
    }


class TaskLog:
    """A task's log file, opened only when something is written to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def _open(self) -> Any:
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        return self._handle

    def write(self, text: str, /) -> int:
        return int(self._open().write(text))

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()

    def fileno(self) -> int:
        return int(self._open().fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
