"""Runners in processes of their own: ``workflow_cli start`` (or ``resume``) started
detached, in a new session, its output going to ``instances/ID/runner.log``.

The process is the same runner as a foreground ``start``: it takes the instance's run
lock, writes the journal and ends when the run ends or waits. Whoever started it keeps
the `subprocess.Popen` to learn its exit code; it does not depend on them otherwise and
goes on if they exit.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from workflow_cli.engine.background import RUNNER_LOG, spawn
from workflow_cli.errors import (
    ExitCode,
    JournalCorruptError,
    LockHeldError,
    StateError,
    WorkflowCliError,
    WorkspaceError,
)
from workflow_cli.store.files import open_binary
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock
from workflow_cli.store.workspace import Workspace

# How often `wait_started` looks whether the runner has begun.
_POLL = 0.02
# Exit codes of a runner that ran (to an end, a wait or a stop), as opposed to one refused.
RAN_EXIT_CODES = frozenset(
    {ExitCode.OK, ExitCode.WORKFLOW_FAILED, ExitCode.WAITING, ExitCode.INTERRUPTED}
)
_ERROR_LINE = re.compile(r"^error: (.*)$", re.MULTILINE)


def spawn_runner(
    workspace: Workspace,
    instance_id: str,
    *,
    resume: bool,
    max_workers: int,
    environ: Mapping[str, str],
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``workflow_cli start ID`` (or ``resume ID``) in a new session; the process and
    the log file its output is appended to (readable by its owner only)."""
    command = ["resume" if resume else "start", instance_id, "--max-workers", str(max_workers)]
    process = spawn(workspace, instance_id, command, environ)
    return process, workspace.instance_dir(instance_id) / RUNNER_LOG


def wait_started(
    workspace: Workspace,
    instance_id: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    clock: Clock,
    timeout: float,
) -> int | None:
    """Wait until the runner `process` has begun the run (its ``run_started`` is in the
    journal) or has ended; its exit code when it ended (a short run), else None. A runner
    that was refused (busy, damaged journal, bad state) raises that error here."""
    deadline = time.monotonic() + timeout
    log_start = log.stat().st_size if log.exists() else 0
    while True:
        code = process.poll()
        if code is not None:
            break
        state = load_state(open_journal(workspace, instance_id, clock))
        if (state.get("runner") or {}).get("pid") == process.pid:
            return None
        if time.monotonic() >= deadline:
            return None  # slow to begin (a loaded machine): it goes on regardless
        time.sleep(_POLL)
    if code in RAN_EXIT_CODES:
        return code
    raise _refusal(code, _last_error(log, log_start) or f"the runner exited with code {code}")


def _last_error(log: Path, start: int) -> str | None:
    try:
        with open_binary(log) as handle:
            handle.seek(start)
            text = handle.read(64 * 1024).decode("utf-8", "replace")
    except (OSError, WorkspaceError):
        return None
    found = _ERROR_LINE.findall(text)
    return found[-1] if found else None


def _refusal(code: int, message: str) -> WorkflowCliError:
    if code == ExitCode.BUSY:
        return LockHeldError(message)
    if code == ExitCode.CORRUPT:
        return JournalCorruptError(message)
    return StateError(message)
