"""Runs started in the background: a detached ``workflow_cli start ID`` process.

The process is the same foreground runner a person starts, in a session of its own (so
a terminal's Ctrl-C or the caller's exit does not reach it), with its output in
``instances/ID/runner.log``. It takes the instance's run lock itself; the caller only
starts it and does not wait.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping

from workflow_cli.store.files import open_regular
from workflow_cli.store.workspace import Workspace

RUNNER_LOG = "runner.log"


def spawn(
    workspace: Workspace, instance_id: str, args: list[str], environ: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``workflow_cli --home WORKSPACE ARGS...`` in a new session, its output appended to
    the instance's runner log (readable by its owner only)."""
    log = open_regular(
        workspace.instance_dir(instance_id) / RUNNER_LOG,
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        doing="write",
    )
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "workflow_cli", "--home", str(workspace.root), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=workspace.root,
            env=dict(environ),
            start_new_session=True,
        )
    finally:
        os.close(log)


def start_detached(
    workspace: Workspace, instance_id: str, environ: Mapping[str, str] = os.environ
) -> int:
    """Start a runner for `instance_id` in a process of its own; its pid."""
    process = spawn(workspace, instance_id, ["start", instance_id, "--json"], environ)
    # A long-lived caller (a server) must not collect zombies: reap it when it ends.
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    return process.pid
