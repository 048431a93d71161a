"""Event hooks: on events of a run, run a command or POST a webhook, off the run's path.

`HookDispatcher` sits between the recorder and the run's `Reporter`: it sees every
event as it is written (after it is on disk), maps it to hook events (`hook_events`),
and hands a delivery for each hook that wants one to its own thread. The run never
waits for a delivery and a delivery cannot fail it: a hook that is down is tried again
with a growing delay, and the outcome is journaled (``hook_delivered`` or
``hook_failed``, which ``workflow_cli hooks ID`` shows). When the run is over, `close`
lets the deliveries still due finish for a bounded time; what is left is recorded as
failed.

The body is JSON: the hook event, the instance, the task (for task and approval
events), the instance's state, the event's details, and links (commands and paths) to
look further — with every known secret value of the run masked. ``{{ secrets.X }}`` and
``{{ params.X }}`` in a hook's command, URL and headers are rendered at delivery and
never stored.

The parts: `events` (which hook events a journal event makes, and the body) and
`dispatcher` (the delivery thread).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workflow_cli.engine.hooks.events import hook_body, hook_events
from workflow_cli.errors import WorkflowCliError, WorkspaceError
from workflow_cli.store.instances import open_journal
from workflow_cli.store.journal import Clock, Event
from workflow_cli.store.secrets import Masker
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:  # `workspace_hooks` (which `create` calls) needs none of these
    from workflow_cli.definition.model import HookSpec
    from workflow_cli.engine.hooks.dispatcher import HookDispatcher
    from workflow_cli.engine.recorder import Reporter

__all__ = [
    "deliver_hooks",
    "hook_body",
    "hook_events",
    "open_hooks",
    "read_deliveries",
    "workspace_hooks",
]


def workspace_hooks(workspace: Workspace) -> tuple[HookSpec, ...]:
    """The hooks of workflow_cli.yaml (for every instance); a bad block is an error."""
    from workflow_cli.definition.validation import workspace_hook_problems
    from workflow_cli.store.config import config_block

    block = config_block(workspace, "hooks")
    if block is None:
        return ()  # the usual case: the model (for parse_hooks) is not even imported
    declared = config_block(workspace, "secrets")
    problems = workspace_hook_problems(block, declared if isinstance(declared, dict) else ())
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise WorkspaceError(f"workflow_cli.yaml: hooks: {details}")
    from workflow_cli.definition.model import parse_hooks

    return parse_hooks(block, "workspace")


def open_hooks(
    workspace: Workspace,
    instance_id: str,
    definition: Mapping[str, Any],
    *,
    clock: Clock,
    reporter: Reporter | None,
    masker: Masker,
    context: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
) -> HookDispatcher | None:
    """The dispatcher for a run's hooks (the definition's, then the workspace's); None
    when it has none."""
    from workflow_cli.definition.model import parse_hooks

    hooks = parse_hooks(definition.get("hooks"), "definition") + workspace_hooks(workspace)
    if not hooks:
        return None
    from workflow_cli.engine.hooks.dispatcher import HookDispatcher  # only runs with hooks

    return HookDispatcher(
        workspace,
        instance_id,
        hooks,
        clock=clock,
        inner=reporter,
        masker=masker,
        context=context,
        environ=environ,
    )


def read_deliveries(workspace: Workspace, instance_id: str, clock: Clock) -> list[Event]:
    """The instance's ``hook_delivered`` and ``hook_failed`` events, oldest first."""
    journal = open_journal(workspace, instance_id, clock)
    try:
        return [e for e in journal.read_new() if e["type"] in ("hook_delivered", "hook_failed")]
    finally:
        journal.close()


def deliver_hooks(
    workspace: Workspace,
    instance_id: str,
    events: list[Event],
    *,
    clock: Clock,
    environ: Mapping[str, str] = os.environ,
    drain: float | None = None,
) -> None:
    """The hooks for events written with no runner alive (a cancel, a timer a tick
    fired), delivered from this process before it returns (at most `drain` seconds;
    default: the dispatcher's `DRAIN_SECONDS`).
    Nothing here fails the caller: what cannot be delivered is recorded as failed."""
    from workflow_cli.store.instances import load_definition, load_state
    from workflow_cli.store.secrets import open_secrets

    definition = load_definition(workspace, instance_id)
    try:
        secrets = open_secrets(workspace, definition, environ)
        params, values, masker = secrets.params, secrets.values, secrets.masker
    except WorkflowCliError:  # a secret this process cannot see: hooks naming it fail
        params, values, masker = {}, {}, Masker()
    dispatcher = open_hooks(
        workspace,
        instance_id,
        definition,
        clock=clock,
        reporter=None,
        masker=masker,
        context={"params": params, "secrets": values, "instance": {"id": instance_id}},
        environ=environ,
    )
    if dispatcher is None:
        return
    journal = open_journal(workspace, instance_id, clock)
    try:
        state = load_state(journal)
    finally:
        journal.close()
    dispatcher.on_events(events, state)
    if drain is None:
        dispatcher.close()
    else:
        dispatcher.close(drain)
