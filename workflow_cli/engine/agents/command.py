"""Command agents: a program run for each attempt.

The task's parameters go to its stdin as JSON, its stdout is read as JSON (the output),
its stderr goes to the task's log. It runs in the workspace folder, in a process group
of its own so that a timeout or a cancel ends all of it, and that group is recorded in
``instances/ID/agents/`` while it runs so that a runner recovering from a crash can end
what a dead runner left behind (`kill_orphan_agents`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.errors import Problem
from workflow_cli.store.files import read_text

if TYPE_CHECKING:
    from workflow_cli.engine.agents.registry import AgentSpec

# How often a running command agent checks whether its attempt was asked to stop.
_CANCEL_POLL = 0.1


# How long the end of an agent waits for its stderr to be copied into the log.
_PUMP_WAIT = 5.0


def parse(entry: Mapping[str, Any], where: str) -> tuple[str, ...] | Problem:
    """The command line of an ``agents.yaml`` entry with ``command``."""
    command = entry["command"]
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        return Problem(f"{where}/command", "must be a non-empty list of strings")
    return tuple(command)


def run(spec: AgentSpec[tuple[str, ...]], call: TaskCall) -> Any:
    """Run the command for one attempt; its JSON output, or None when it printed nothing."""
    command = spec.settings
    env = {
        **os.environ,
        **spec.env,
        "WORKFLOW_HOME": str(call.workspace.root),
        "WORKFLOW_INSTANCE": call.instance_id,
        "WORKFLOW_TASK": call.task_id,
        "WORKFLOW_ATTEMPT": str(call.attempt),
    }
    call.log.flush()
    masking = getattr(call.log, "masker", None) is not None  # secrets to keep out of the log
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if masking else call.log.fileno(),
            cwd=call.workspace.root,
            env=env,
            start_new_session=True,  # its own process group, so a timeout kills all of it
        )
    except OSError as exc:
        raise ActionFailed(
            f"agent '{spec.name}' could not start {command[0]!r}: {exc.strerror}",
            retryable=False,
        ) from exc
    pump = _pump_stderr(process, call) if masking else None
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
        if pump is not None:
            pump.join(_PUMP_WAIT)
        if record is not None:
            record.unlink(missing_ok=True)
    if process.returncode != 0:
        raise ActionFailed(
            f"agent '{spec.name}' exited with code {process.returncode} "
            f"(see: workflow_cli logs {call.instance_id} {call.task_id})",
            kind="exit_code",
            details={"exit_code": process.returncode},
        )
    return json_answer(spec.name, stdout, "printed")


def json_answer(agent: str, data: bytes, said: str) -> Any:
    """What an agent answered, read as JSON (None for nothing); `said` is how it answered
    ("printed", "answered"), for the message when it is not JSON."""
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ActionFailed(
            f"agent '{agent}' {said} something that is not JSON: {text[:200]!r}",
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


def _pump_stderr(process: subprocess.Popen[bytes], call: TaskCall) -> threading.Thread:
    """Copy the agent's stderr into the task's log line by line, through the log's
    masking (the pipe is taken away from `communicate`, which then reads stdout only)."""
    stream, process.stderr = process.stderr, None
    assert stream is not None

    def copy() -> None:
        with stream:
            for line in iter(stream.readline, b""):
                with contextlib.suppress(OSError, ValueError):
                    call.log.write(line.decode("utf-8", errors="replace"))
                    call.log.flush()

    thread = threading.Thread(target=copy, name=f"stderr-{call.task_id}", daemon=True)
    thread.start()
    return thread


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _record_group(call: TaskCall, pid: int) -> Path | None:
    """Note a running agent's process group in ``instances/ID/agents/`` so that a runner
    recovering from a crash (or a cancel) can end it; None when there is no instance."""
    import psutil

    folder = call.workspace.instances_dir / call.instance_id / "agents"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        started = psutil.Process(pid).create_time()
        path = folder / f"{pid}.json"
        record = {"pid": pid, "task": call.task_id, "attempt": call.attempt, "start": started}
        path.write_text(json.dumps(record))
    except (OSError, psutil.Error):
        return None  # no instance folder (an action called on its own), or already gone
    return path


def kill_orphan_agents(
    instance_dir: Path, *, task: str | None = None, attempt: int | None = None
) -> list[str]:
    """End the process groups of agents that a dead runner (or a dead Dask worker on this
    machine) left running — all of them, or those of one attempt of `task`; the tasks they
    belonged to. Only processes whose start time matches the record are touched."""
    ended: list[str] = []
    folder = instance_dir / "agents"
    if not folder.is_dir():
        return ended
    import psutil  # only now: an instance that never ran a command agent does without

    for path in folder.glob("*.json"):
        try:
            record = json.loads(read_text(path))
            if task is not None and (record["task"], record["attempt"]) != (task, attempt):
                continue
            if psutil.Process(record["pid"]).create_time() == record["start"]:
                os.killpg(record["pid"], signal.SIGKILL)
                ended.append(str(record["task"]))
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass  # gone already, or not ours any more
        path.unlink(missing_ok=True)
    return ended
