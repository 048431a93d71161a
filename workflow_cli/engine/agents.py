"""Agents: what an ``agent_task`` runs.

Declared in the workspace's ``agents.yaml``::

    agents:
      word_count:                     # a command: parameters as JSON on stdin,
        command: [python3, count.py]  # output as JSON on stdout, stderr to the task's log
        env: {LANG: C.UTF-8}          # optional extra environment
      scorer:
        callable: my_module:score     # a Python callable, called with the parameters dict

Built-in agents (``workflow_cli.engine.builtin_agents``) need no declaration; a
workspace agent of the same name takes precedence.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.errors import DefinitionError, NotFoundError, Problem
from workflow_cli.store.workspace import Workspace

# How often a running command agent checks whether its attempt was asked to stop.
_CANCEL_POLL = 0.1


@dataclass(frozen=True)
class AgentSpec:
    """How to run one agent."""

    name: str
    command: tuple[str, ...] | None = None
    callable: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


def builtin_agents() -> dict[str, Callable[[dict[str, Any], TaskCall], Any]]:
    from workflow_cli.engine.builtin_agents import BUILTIN_AGENTS

    return BUILTIN_AGENTS


def load_agents(workspace: Workspace) -> dict[str, AgentSpec]:
    """The workspace's declared agents (not the built-in ones)."""
    path = workspace.agents_file
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    # Every agent_task asks; parse the file again only when it has changed.
    return _parse_agents(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _parse_agents(path: Path, mtime_ns: int, size: int) -> dict[str, AgentSpec]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise DefinitionError(str(path), [Problem("", f"cannot be read: {exc}")]) from exc
    problems: list[Problem] = []
    agents: dict[str, AgentSpec] = {}
    entries = data.get("agents") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise DefinitionError(str(path), [Problem("/agents", "must be a mapping of agent names")])
    for name, entry in entries.items():
        where = f"/agents/{name}"
        if not isinstance(entry, dict):
            problems.append(Problem(where, "must be a mapping with 'command' or 'callable'"))
            continue
        command, target, env = entry.get("command"), entry.get("callable"), entry.get("env", {})
        if (command is None) == (target is None):
            problems.append(Problem(where, "needs exactly one of 'command' or 'callable'"))
        elif command is not None and (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) for a in command)
        ):
            problems.append(Problem(f"{where}/command", "must be a non-empty list of strings"))
        elif target is not None and (not isinstance(target, str) or ":" not in target):
            problems.append(Problem(f"{where}/callable", "must be 'module:function'"))
        elif not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            problems.append(Problem(f"{where}/env", "must map names to strings"))
        else:
            agents[str(name)] = AgentSpec(
                str(name), tuple(command) if command else None, target, dict(env)
            )
    if problems:
        raise DefinitionError(str(path), problems)
    return agents


def agent_names(workspace: Workspace) -> frozenset[str]:
    return frozenset(builtin_agents()) | frozenset(load_agents(workspace))


def run_agent(name: str, call: TaskCall) -> Any:
    """Run agent `name` for one attempt of a task; its output is the task's output."""
    spec = load_agents(call.workspace).get(name)
    if spec is None:
        builtin = builtin_agents().get(name)
        if builtin is None:
            raise NotFoundError(f"unknown agent '{name}' (declare it in agents.yaml)")
        return builtin(call.parameters, call)
    if spec.command is not None:
        return _run_command(spec, call)
    assert spec.callable is not None
    return _load_callable(spec.callable, call.workspace)(call.parameters)


def _load_callable(target: str, workspace: Workspace) -> Callable[[dict[str, Any]], Any]:
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


def _run_command(spec: AgentSpec, call: TaskCall) -> Any:
    assert spec.command is not None
    env = {
        **os.environ,
        **spec.env,
        "WORKFLOW_HOME": str(call.workspace.root),
        "WORKFLOW_INSTANCE": call.instance_id,
        "WORKFLOW_TASK": call.task_id,
        "WORKFLOW_ATTEMPT": str(call.attempt),
    }
    call.log.flush()
    try:
        process = subprocess.Popen(
            list(spec.command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=call.log.fileno(),
            cwd=call.workspace.root,
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills all of it
        )
    except OSError as exc:
        raise ActionFailed(
            f"agent '{spec.name}' could not start {spec.command[0]!r}: {exc.strerror}",
            retryable=False,
        ) from exc
    record = _record_group(call, process.pid)
    deadline = None if call.timeout is None else time.monotonic() + call.timeout
    try:
        stdout = _communicate(process, json.dumps(call.parameters).encode("utf-8"), call, deadline)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise ActionFailed(
            f"agent '{spec.name}' timed out after {call.timeout:g}s; its process group was killed",
            kind="timeout",
        ) from None
    except _Interrupted:
        _kill_group(process)
        raise ActionFailed(
            f"agent '{spec.name}' was interrupted; its process group was killed",
            kind="interrupted",
            retryable=False,
        ) from None
    except BaseException:
        _kill_group(process)
        raise
    finally:
        if record is not None:
            record.unlink(missing_ok=True)
    if process.returncode != 0:
        raise ActionFailed(
            f"agent '{spec.name}' exited with code {process.returncode} (see the task log)",
            kind="exit_code",
            details={"exit_code": process.returncode},
        )
    text = stdout.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ActionFailed(
            f"agent '{spec.name}' printed something that is not JSON: {text[:200]!r}",
            kind="bad_output",
            retryable=False,
        ) from exc


class _Interrupted(Exception):
    """The runner asked the attempt to stop (a stop after its grace, or a cancel)."""


def _communicate(
    process: subprocess.Popen[bytes], payload: bytes, call: TaskCall, deadline: float | None
) -> bytes:
    """The agent's stdout once it exits; watches the attempt's cancel flag meanwhile."""
    data: bytes | None = payload
    while True:
        wait = _CANCEL_POLL
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        try:
            stdout, _ = process.communicate(data, timeout=wait)
            return stdout
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            if call.cancel.is_set():
                raise _Interrupted() from None
        data = None  # sent with the first call; communicate() keeps what is left


def _record_group(call: TaskCall, pid: int) -> Path | None:
    """Note a running agent's process group in ``instances/ID/agents/`` so that a runner
    recovering from a crash (or a cancel) can end it; None when there is no instance."""
    import psutil

    folder = call.workspace.instances_dir / call.instance_id / "agents"
    try:
        folder.mkdir(exist_ok=True)
        started = psutil.Process(pid).create_time()
        path = folder / f"{pid}.json"
        record = {"pid": pid, "task": call.task_id, "attempt": call.attempt, "start": started}
        path.write_text(json.dumps(record))
    except (OSError, psutil.Error):
        return None  # no instance folder (an action called on its own), or already gone
    return path


def kill_orphan_agents(instance_dir: Path) -> list[str]:
    """End the process groups of agents that a dead runner left running; the tasks they
    belonged to. Only processes whose start time matches the record are touched."""
    import psutil

    ended: list[str] = []
    folder = instance_dir / "agents"
    if not folder.is_dir():
        return ended
    for path in folder.glob("*.json"):
        try:
            record = json.loads(path.read_text())
            if psutil.Process(record["pid"]).create_time() == record["start"]:
                os.killpg(record["pid"], signal.SIGKILL)
                ended.append(str(record["task"]))
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass  # gone already, or not ours any more
        path.unlink(missing_ok=True)
    return ended


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
