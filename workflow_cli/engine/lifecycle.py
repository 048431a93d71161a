"""What the commands do to instances: create one, run it.

These are the core operations the CLI calls; they take the workspace and clock as
arguments, return data, and never print.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from workflow_cli.definition.migrations import CURRENT_VERSION, migration_notice
from workflow_cli.definition.templates import (
    Template,
    agent_choices,
    fill_values,
    find_template,
    instantiate,
    raise_all,
    read_param_args,
    resolve_agents,
)
from workflow_cli.definition.validation import validate_definition
from workflow_cli.engine.actions import get_action
from workflow_cli.engine.agents import agent_names
from workflow_cli.engine.agents.registry import undeclared_agents
from workflow_cli.engine.hooks import workspace_hooks
from workflow_cli.errors import DefinitionError, ParameterError, Problem
from workflow_cli.readonly import mutable_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.config import config_block
from workflow_cli.store.instances import (
    create_instance,
    load_definition,
    load_state,
    open_journal,
)
from workflow_cli.store.journal import Clock
from workflow_cli.store.secrets import Masker, open_secrets, seal_params
from workflow_cli.store.state import FINAL_INSTANCE_STATES, State
from workflow_cli.store.workspace import Workspace, new_instance_id

if TYPE_CHECKING:  # the runner is imported by what runs: `create` does without it
    from workflow_cli.engine.runner import Reporter, RunOptions, RunOutcome


def definition_problems(
    workspace: Workspace,
    document: Any,
    *,
    param_names: Iterable[str] | None = None,
    plain_data: bool = False,
) -> list[Problem]:
    """Every problem with a definition, checked against this workspace's agents, its
    declared secrets and the registered actions (`plain_data`: see
    `validate_definition`)."""
    declared = config_block(workspace, "secrets")
    return validate_definition(
        document,
        actions=get_action,
        agent_names=agent_names(workspace),
        param_names=param_names,
        secret_names=declared if isinstance(declared, dict) else (),
        undeclared_agents=undeclared_agents(workspace),
        plain_data=plain_data,
    )


def check_definition(
    workspace: Workspace,
    definition: dict[str, Any],
    source: str,
    *,
    found: Iterable[Problem] = (),
) -> None:
    """Raise DefinitionError with every problem of an instance's definition (made by
    `instantiate`: plain data) and those already `found`."""
    problems = [*found, *definition_problems(workspace, definition, plain_data=True)]
    if problems:
        raise DefinitionError(source, problems)


def agent_parameter_errors(
    workspace: Workspace, template: Template, values: Mapping[str, Any]
) -> list[ParameterError]:
    """A parameter that chooses an agent (``agent_id: "{{ params.NAME }}"``) and names
    one that cannot be had: empty, neither built in nor declared in ``agents.yaml`` when
    the workspace makes undeclared agents an error, else (a mailbox agent) a name that
    cannot be a folder. One error per parameter."""
    from workflow_cli.definition.expressions import references, render_value
    from workflow_cli.engine.agents.mailbox import mailbox_name_ok
    from workflow_cli.errors import ExpressionError

    known = agent_names(workspace)
    as_mailbox = undeclared_agents(workspace) == "mailbox"
    errors: dict[str, ParameterError] = {}
    for _, owner in agent_choices(template.workflow):
        names = sorted(key for root, key in references(owner["agent_id"]) if root == "params")
        if not names or not all(name in values for name in names) or names[0] in errors:
            continue  # validation reports what is not a parameter's choice
        try:
            agent = render_value(owner["agent_id"], {"params": values})
        except ExpressionError:
            continue
        if isinstance(agent, str) and not agent.strip():
            errors[names[0]] = ParameterError(names[0], "must name an agent, not ''")
        elif isinstance(agent, str) and agent.strip() not in known:
            if not as_mailbox:
                message = (
                    f"names agent '{agent}', which is neither built in nor declared in"
                    " agents.yaml (undeclared agents are an error in this workspace)"
                )
            elif not mailbox_name_ok(agent.strip()):
                message = (
                    f"names agent '{agent}', which is not declared and cannot be a mailbox"
                    " agent's name (letters, digits, '_', '-', '.')"
                )
            else:
                continue  # a mailbox agent: create names it in a notice
            errors[names[0]] = ParameterError(names[0], message)
    return list(errors.values())


def schema_notice(
    workspace: Workspace, instance_id: str, written: Mapping[str, Any] | None = None
) -> str | None:
    """The one-line notice for an instance whose definition is on an older schema
    (`written`: its definition as written, when it was read already)."""
    if written is None:
        written = load_definition(workspace, instance_id, as_written=True)
    version = written.get("schema_version")
    if isinstance(version, str) and version != CURRENT_VERSION:
        return migration_notice(f"the definition of {instance_id}", version)
    return None


def create_from_template(
    workspace: Workspace,
    template: Template,
    values: dict[str, Any],
    clock: Clock,
    *,
    instance_id: str | None = None,
    parent: dict[str, str] | None = None,
    environ: Mapping[str, str] = os.environ,
    known_secrets: Iterable[str] = (),
    requester: str | None = None,
) -> str:
    """Validate the template filled with `values` and write a new instance; its id.
    Secret parameters (and values among `known_secrets`) are stored encrypted. Agents
    chosen by parameters are resolved into the instance's definition first."""
    secret = [name for name, spec in template.parameters.items() if spec.get("secret")]
    definition = instantiate(template, values)
    found = resolve_agents(definition)  # from the values as given, before sealing
    check_definition(workspace, definition, template.source, found=found)
    workspace_hooks(workspace)  # bad hooks in workflow_cli.yaml: said now, nothing written
    values = seal_params(values, secret, workspace, environ, known=known_secrets)
    definition["params"] = {**definition.get("params", {}), **values}
    instance_id = instance_id or new_instance_id(template.name, clock())
    created = ev.instance_created(
        instance_id,
        template=template.name,
        workflow=definition.get("id"),
        params=values,
        parent=parent,
        tasks=list(definition["tasks"]),
        requester=requester,
    )
    create_instance(workspace, instance_id, definition, created, clock)
    return instance_id


def create(
    workspace: Workspace,
    template_ref: str,
    param_args: list[str],
    clock: Clock,
    *,
    environ: Mapping[str, str] = os.environ,
    requester: str | None = None,
) -> str:
    """`workflow_cli create`: the id of a new instance of `template_ref`. Every problem
    with the parameters is reported at once (`ParameterErrors`)."""
    template = find_template(workspace.templates_dir, template_ref)
    values, errors = read_param_args(template, param_args)
    raise_all(template, errors + agent_parameter_errors(workspace, template, values))
    return create_from_template(
        workspace, template, values, clock, environ=environ, requester=requester
    )


@mutable_dataclass
class EngineServices:
    """What actions may ask of the engine (handed to them as ``call.services``)."""

    workspace: Workspace
    clock: Clock
    options: RunOptions
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    masker: Masker = field(default_factory=Masker)
    executor: str | None = None  # what the run was given with --executor

    def run_child(
        self,
        template_ref: str,
        values: dict[str, Any],
        *,
        parent_instance: str,
        parent_task: str,
        cancel: threading.Event | None = None,
    ) -> tuple[str, RunOutcome, State]:
        """Create (or, when it exists already, resume) the child instance of a task and
        run it to its end; its id, outcome and final state. When `cancel` (the parent
        attempt's flag) is raised, the child stops or is cancelled with its parent."""
        from workflow_cli.engine.executor_choice import child_executor
        from workflow_cli.engine.runner import RunOutcome

        child_id = f"{parent_instance}.{parent_task}"
        if not (self.workspace.instances_dir / child_id).is_dir():
            template = find_template(self.workspace.templates_dir, template_ref)
            create_from_template(
                self.workspace,
                template,
                fill_values(template, values),
                self.clock,
                instance_id=child_id,
                parent={"instance": parent_instance, "task": parent_task},
                environ=self.environ,
                known_secrets=self.masker.known,
            )
        journal = open_journal(self.workspace, child_id, self.clock)
        state = load_state(journal)
        if state["state"] in FINAL_INSTANCE_STATES:
            return child_id, RunOutcome(child_id, state["state"], state.get("reason")), state
        outcome = run(
            self.workspace,
            child_id,
            clock=self.clock,
            options=self.options,
            parent_cancel=cancel,
            environ=self.environ,
            executor=child_executor(self.workspace, self.executor),
        )
        return child_id, outcome, load_state(open_journal(self.workspace, child_id, self.clock))


def run(
    workspace: Workspace,
    instance_id: str,
    *,
    clock: Clock,
    reporter: Reporter | None = None,
    options: RunOptions | None = None,
    parent_cancel: threading.Event | None = None,
    environ: Mapping[str, str] = os.environ,
    executor: str | None = None,
) -> RunOutcome:
    """Run (or resume) an instance in this process until it ends or waits. Its secret
    parameters are decrypted and its declared secrets resolved here, from `environ`.
    `executor` (``threads``, ``local-dask``, ``dask://HOST:PORT``; default: the
    workspace's ``executor`` setting) is where its attempts run."""
    from workflow_cli.engine.executor import open_executor
    from workflow_cli.engine.hooks import open_hooks
    from workflow_cli.engine.runner import Runner, RunOptions

    options = options or RunOptions()
    definition = load_definition(workspace, instance_id)
    secrets = open_secrets(workspace, definition, environ)
    services = EngineServices(workspace, clock, options, environ, secrets.masker, executor)
    hooks = open_hooks(
        workspace,
        instance_id,
        definition,
        clock=clock,
        reporter=reporter,
        masker=secrets.masker,
        context={
            "params": secrets.params,
            "secrets": secrets.values,
            "instance": {"id": instance_id},
        },
        environ=environ,
    )  # before the executor: bad hooks in workflow_cli.yaml leave nothing to shut down
    pool = open_executor(workspace, executor)
    runner = Runner(
        workspace,
        instance_id,
        clock=clock,
        reporter=hooks or reporter,
        options=options,
        services=services,
        parent_cancel=parent_cancel,
        secrets=secrets,
        executor=pool,
    )
    try:
        return runner.run()
    finally:
        pool.shutdown()  # also when the run never started (its lock was held)
        if hooks is not None:  # the run is over: the deliveries still due may finish
            hooks.close()
