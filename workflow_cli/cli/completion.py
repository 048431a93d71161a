"""Shell completion of the values commands take (instance ids, template names, task
ids, checkpoint ids), and the placeholders their help shows (``ID``, ``KEY=VALUE``,
``SECONDS``), both set in one place for every command by `decorate_params`.

A completion reads the workspace the command line names (``--home``, else
``WORKFLOW_HOME``, else the current folder) and never fails: on any problem it offers
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workflow_cli.errors import WorkflowCliError
from workflow_cli.store.workspace import Workspace

Completer = Callable[[Any, Any, str], list[str]]

# Placeholders by parameter name (an option's or an argument's).
PLACEHOLDERS = {
    "home": "FOLDER",
    "executor": "EXECUTOR",
    "host": "HOST",
    "role": "ROLE",
    "target": "TARGET",
    "instance": "ID",
    "instances": "ID...",
    "template": "TEMPLATE",
    "name": "TEMPLATE",
    "task": "TASK",
    "checkpoint": "CHECKPOINT",
    "first": "CHECKPOINT",
    "second": "CHECKPOINT",
    "file": "FILE",
    "param": "KEY=VALUE",
    "assignments": "TASK.NAME=VALUE",
    "by": "NAME",
    "requester": "NAME",
    "agent": "AGENT",
    "output": "JSON|@FILE",
    "data": "JSON|@FILE",
    "event": "EVENT",
    "error": "MESSAGE",
    "to": "NAME",
    "for_name": "NAME",
    "form": "KEY=VALUE",
    "form_json": "JSON",
    "rewind_to": "TASK",
    "comment": "NOTE",
    "label": "NOTE",
    "grace": "SECONDS",
    "wait": "SECONDS",
    "duration": "SECONDS",
    "interval": "SECONDS",
    "tick_interval": "SECONDS",
    "stuck_after": "SECONDS",
    "max_workers": "N",
    "checkpoint_interval": "N",
    "log_lines": "N",
    "max_count": "N",
    "max_age_days": "DAYS",
    "level": "LEVEL",
    "since": "AGE|TIME",
}


def _workspace(ctx: Any) -> Workspace | None:
    root = ctx.find_root()
    home = root.params.get("home") or os.environ.get("WORKFLOW_HOME") or os.getcwd()
    try:
        return Workspace.at(Path(home))
    except (WorkflowCliError, OSError):
        return None


def _matching(values: list[str], incomplete: str) -> list[str]:
    return [value for value in values if value.startswith(incomplete)]


def complete_instances(ctx: Any, param: Any, incomplete: str) -> list[str]:
    workspace = _workspace(ctx)
    if workspace is None:
        return []
    try:
        return _matching(workspace.instance_ids(), incomplete)
    except (WorkflowCliError, OSError):
        return []


def complete_templates(ctx: Any, param: Any, incomplete: str) -> list[str]:
    workspace = _workspace(ctx)
    if workspace is None:
        return []
    from workflow_cli.definition.templates import list_templates

    try:
        names = [t.name for t in list_templates(workspace.templates_dir)]
    except (WorkflowCliError, OSError):
        return []
    return _matching(names, incomplete)


def _instance_of(ctx: Any) -> tuple[Workspace, str] | None:
    """The instance the command line names. Click leaves the parsed arguments out when
    an option's value is being completed, so the words the shell passed are looked at
    too (bash's COMP_WORDS; Typer's _TYPER_COMPLETE_ARGS for zsh, fish and PowerShell)."""
    workspace = _workspace(ctx)
    if workspace is None:
        return None
    words = (os.environ.get("COMP_WORDS") or os.environ.get("_TYPER_COMPLETE_ARGS") or "").split()
    given = [ctx.params.get("instance"), *(w for w in words[1:] if not w.startswith("-"))]
    for word in given:
        if isinstance(word, str) and word:
            try:
                return workspace, workspace.resolve_instance_id(word)
            except (WorkflowCliError, OSError):
                continue
    return None


def complete_tasks(ctx: Any, param: Any, incomplete: str) -> list[str]:
    found = _instance_of(ctx)
    if found is None:
        return []
    from workflow_cli.store.instances import load_definition

    try:
        tasks = list(load_definition(*found).get("tasks") or {})
    except (WorkflowCliError, OSError):
        return []
    return _matching(tasks, incomplete)


def complete_checkpoints(ctx: Any, param: Any, incomplete: str) -> list[str]:
    found = _instance_of(ctx)
    if found is None:
        return []
    from workflow_cli.store.checkpoints import list_checkpoints

    try:
        ids = [info.id for info in list_checkpoints(*found)]
    except (WorkflowCliError, OSError):
        return []
    return _matching(ids, incomplete)


def complete_instances_and_templates(ctx: Any, param: Any, incomplete: str) -> list[str]:
    return complete_instances(ctx, param, incomplete) + complete_templates(ctx, param, incomplete)


COMPLETERS: dict[str, Completer] = {
    "ref": complete_instances_and_templates,
    "instance": complete_instances,
    "instances": complete_instances,
    "template": complete_templates,
    "name": complete_templates,
    "task": complete_tasks,
    "rewind_to": complete_tasks,
    "checkpoint": complete_checkpoints,
    "first": complete_checkpoints,
    "second": complete_checkpoints,
}


def summary_of(help_text: str) -> str:
    """A command's summary for the root help, whole (Click would cut it mid-word to fit):
    its help up to the end of the first sentence or the first colon."""
    first = " ".join(help_text.strip().split("\n\n")[0].split())
    cuts = [at for at in (first.find(". "), first.find(": ")) if at >= 0]
    return first[: min(cuts)] + "." if cuts else first


def _no_type(ctx: Any) -> None:
    return None


def decorate_params(command: Any) -> None:
    """Give every parameter of `command` and its subcommands its placeholder (unless it
    has one) and its completion, by the parameter's name."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) or param.name is None:
            continue
        placeholder = PLACEHOLDERS.get(param.name)
        if placeholder and param.metavar is None:
            param.metavar = placeholder
        if param.param_type_name == "argument" and param.metavar is not None:
            # The placeholder says what to give; Typer would add the Python type ("<str>").
            param.display_type_rich = _no_type
        completer = COMPLETERS.get(param.name)
        if completer is not None and hasattr(param, "_custom_shell_complete"):
            param._custom_shell_complete = completer
    if command.help and not getattr(command, "short_help", None):
        command.short_help = summary_of(command.help)
    if command.help and "\nExamples:\n" in command.help:
        # Click rewraps paragraphs; one that starts with \\b is printed as written.
        command.help = command.help.replace("\nExamples:\n", "\n\b\nExamples:\n")
    for sub in getattr(command, "commands", {}).values():
        decorate_params(sub)
