"""The CLI's errors as HTTP answers: one status per kind, the CLI's message in the body.

Body: ``{"error": message, "kind": class name, "details": [lines], "exit_code": n}`` —
the same message and details the CLI prints, and the exit code it would exit with.
"""

from __future__ import annotations

from typing import Any

from workflow_cli.errors import (
    DiskFullError,
    JournalCorruptError,
    LockHeldError,
    NotFoundError,
    OutputRejectedError,
    StateError,
    WorkflowCliError,
)

# Most specific first: the first class an error is an instance of decides.
_STATUS: tuple[tuple[type[WorkflowCliError], int], ...] = (
    (NotFoundError, 404),
    (OutputRejectedError, 422),
    (StateError, 409),
    (LockHeldError, 409),
    (JournalCorruptError, 500),
    (DiskFullError, 507),
    (WorkflowCliError, 400),
)


def http_status(exc: WorkflowCliError) -> int:
    """The HTTP status of an error: 404 unknown, 409 the state (or a runner) does not
    allow it, 422 a delivered output the task does not accept, 500 damaged files, 507 a
    full disk, 400 any other bad input."""
    return next(status for kind, status in _STATUS if isinstance(exc, kind))


def error_body(exc: WorkflowCliError) -> dict[str, Any]:
    return {
        "error": exc.message,
        "kind": type(exc).__name__,
        "details": exc.details(),
        "exit_code": int(exc.exit_code),
    }


def plain_error(message: str, kind: str) -> dict[str, Any]:
    """An error of the server's own (authentication, a malformed request)."""
    return {"error": message, "kind": kind, "details": [], "exit_code": None}
