"""Shared fixtures: every test runs in its own temporary workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from workflow_cli.cli.app import app


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace folder, which is also the current folder and WORKFLOW_HOME."""
    home = tmp_path / "ws"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("WORKFLOW_HOME", str(home))
    monkeypatch.delenv("WORKFLOW_CLI_TRACEBACK", raising=False)
    return home


class Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"Result({self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def cli(workspace: Path) -> Callable[..., Result]:
    """Run the real CLI in-process (Typer's CliRunner) in the workspace."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        result = runner.invoke(app, ["--home", str(workspace), *args], catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def cli_process(workspace: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real CLI as a subprocess (python -m workflow_cli) in the workspace."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
        return subprocess.run(
            [sys.executable, "-m", "workflow_cli", *args],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def start_runner(workspace: Path, definition: Path) -> tuple[str, subprocess.Popen[str]]:
    """Create an instance of `definition` and start its runner in the background, both as
    real processes; the instance id and the runner process."""
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    cli = [sys.executable, "-m", "workflow_cli"]
    created = subprocess.run(
        [*cli, "create", str(definition)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    instance = created.stdout.strip()
    runner = subprocess.Popen(
        [*cli, "start", instance],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return instance, runner


def make_call(root: Path, log: Any, log_path: Path, **fields: Any) -> Any:
    """A TaskCall for one attempt of a task in workspace `root`, writing to `log`."""
    from workflow_cli.engine.actions.base import TaskCall
    from workflow_cli.store.workspace import Workspace

    defaults: dict[str, Any] = {
        "instance_id": "inst-1",
        "task_id": "task",
        "attempt": 1,
        "agent_id": None,
        "parameters": {},
        "timeout": None,
    }
    return TaskCall(workspace=Workspace(root), log=log, log_path=log_path, **{**defaults, **fields})


def write_definition(
    folder: Path, tasks: dict[str, Any], name: str = "wf.json", **extra: Any
) -> Path:
    """Write a workflow definition with `tasks` to folder/name and return its path."""
    document = {
        "id": "wf",
        "name": "test workflow",
        "version": "1",
        "schema_version": "2.0.0",
        **extra,
        "tasks": tasks,
    }
    path = folder / name
    path.write_text(json.dumps(document, indent=2))
    return path


def journal_events(workspace: Path, instance: str, kind: str | None = None) -> list[dict[str, Any]]:
    """The events of an instance's journal (of type `kind`, if given), as the engine reads
    them."""
    from datetime import UTC, datetime

    from workflow_cli.store.journal import Journal

    path = workspace / "instances" / instance / "events.jsonl"
    found = Journal(path, lambda: datetime.now(UTC)).read_new()
    return [e for e in found if kind is None or e["type"] == kind]


def value_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `value` (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from value_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from value_paths(item, (*prefix, index))


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # where a pinned clock starts


class PinnedClock:
    """The commands' clock, kept in a file that WORKFLOW_CLI_NOW points to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(0)

    def set(self, seconds: float) -> datetime:
        """Move the clock to `seconds` after T0; the time it shows."""
        when = T0 + timedelta(seconds=seconds)
        self.path.write_text(when.isoformat())
        return when


@pytest.fixture
def clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    """The commands' clock, pinned at T0 until the test moves it."""
    pinned = PinnedClock(tmp_path / "now.txt")
    monkeypatch.setenv("WORKFLOW_CLI_NOW", f"@{pinned.path}")
    return pinned
