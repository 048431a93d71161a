"""One exception tree for everything a user can get wrong, each kind with one exit code.

::

    WorkflowCliError                      exit 2 (bad input) unless noted
    ├── UsageError                        a command line that does not make sense
    ├── DefinitionError                   a definition or template with problems (all of them)
    ├── ParameterError                    a --param that is unknown, missing or of the wrong type
    │   └── ParameterErrors               several of them, reported together
    ├── NotFoundError                     an unknown template, instance, agent or action
    ├── WorkspaceError                    a path outside the workspace, an unusable workspace
    ├── StateError                        an operation the instance's state does not allow
    ├── ExpressionError                   an expression that does not parse or fails to evaluate
    ├── ExecutorError                     Dask not installed, not reachable, not starting
    ├── LockHeldError                     exit 4: another process holds the instance
    ├── JournalCorruptError               exit 5: a damaged journal, refused as it is
    │   └── CheckpointCorruptError        exit 5: a damaged checkpoint, never loaded
    └── DiskFullError                     exit 6: no space left to write a file

A task failing is not an exception that escapes the runner: it is a recorded result,
and the instance's state maps to an exit code by `exit_code_for`.
"""

from __future__ import annotations

import errno
import stat
from enum import IntEnum

from workflow_cli.readonly import readonly_dataclass


class ExitCode(IntEnum):
    """Exit codes of every command; scripts may rely on them."""

    OK = 0
    WORKFLOW_FAILED = 1
    BAD_INPUT = 2
    WAITING = 3
    BUSY = 4
    CORRUPT = 5
    DISK_FULL = 6
    INTERNAL = 70
    INTERRUPTED = 130


def exit_code_for(state: str, *, needs_person: bool = False) -> ExitCode:
    """The exit code of a command that ran or watched an instance now in `state`:
    0 completed (or still running, for a watcher), 1 failed, cancelled, or paused on a
    failure that waits for a person, 3 waiting, 130 paused by a stop."""
    if state == "paused":
        return ExitCode.WORKFLOW_FAILED if needs_person else ExitCode.INTERRUPTED
    return {
        "failed": ExitCode.WORKFLOW_FAILED,
        "cancelled": ExitCode.WORKFLOW_FAILED,
        "waiting": ExitCode.WAITING,
    }.get(state, ExitCode.OK)


@readonly_dataclass
class Problem:
    """One thing wrong with a definition, at a JSON pointer inside it."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class WorkflowCliError(Exception):
    """Root of every error the tool reports to a user."""

    exit_code: ExitCode = ExitCode.BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> list[str]:
        """Extra lines shown under the message."""
        return []


class UsageError(WorkflowCliError):
    """A command line that does not make sense."""


class OutputRejectedError(UsageError):
    """A delivered output that is not JSON data, is too large, or does not match the
    task's ``output_schema``."""


class DefinitionError(WorkflowCliError):
    """A workflow definition or template with one or more problems."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        count = len(problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''}")
        self.source = source
        self.problems = problems

    def details(self) -> list[str]:
        return [str(p) for p in self.problems]


class ParameterError(WorkflowCliError):
    """A template parameter that is unknown, missing or of the wrong type."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter '{name}': {message}")
        self.name = name


class ParameterErrors(ParameterError):
    """Several parameter problems, reported together."""

    def __init__(self, template: str, errors: list[ParameterError]) -> None:
        WorkflowCliError.__init__(self, f"template '{template}': {len(errors)} parameter problems")
        self.name = errors[0].name
        self.errors = errors

    def details(self) -> list[str]:
        return [error.message for error in self.errors]


class NotFoundError(WorkflowCliError):
    """An unknown template, instance, agent or action."""


class ExecutorError(WorkflowCliError):
    """The executor asked for cannot be used: Dask is not installed, its scheduler
    cannot be reached, or a local cluster does not start."""


class WorkspaceError(WorkflowCliError):
    """A path that leaves the workspace, or a workspace that cannot be used."""


class StateError(WorkflowCliError):
    """An operation that the instance's current state does not allow."""


class ExpressionError(WorkflowCliError):
    """An expression that does not parse, or that fails when it is evaluated."""


class LockHeldError(WorkflowCliError):
    """Another process holds the instance (a runner, or a long journal write)."""

    exit_code = ExitCode.BUSY


class JournalCorruptError(WorkflowCliError):
    """A journal damaged somewhere other than a torn last line."""

    exit_code = ExitCode.CORRUPT


class CheckpointCorruptError(JournalCorruptError):
    """A checkpoint file that is unreadable, incomplete or does not match its checksum."""


class DiskFullError(WorkflowCliError):
    """The disk (or the user's quota) has no room for a write; nothing was half-written."""

    exit_code = ExitCode.DISK_FULL

    def __init__(self, path: str, needed: int, doing: str = "write") -> None:
        super().__init__(
            f"no space left to {doing} {path} (about {needed:,} bytes more were needed); "
            "free some space and try again"
        )
        self.path = path
        self.needed = needed


def is_disk_full(exc: OSError) -> bool:
    """Whether an OSError means the disk or the quota is full."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def what_it_is(mode: int) -> str:
    """What a file of `mode` (``st_mode``) that is not a regular file is, for a message."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    return "a socket" if stat.S_ISSOCK(mode) else "a device"
