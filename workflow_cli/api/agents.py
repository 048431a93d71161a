"""Agents in the Python API: every agent with its runs (``agents``), one mailbox agent's
inbox (``inbox``), and a mailbox agent's result delivered (``deliver``).

`AgentOperations` holds these methods and their ``_async`` twins; `workflow_cli.api.Workspace`
has them. The ``agents``, ``inbox`` and ``deliver`` commands and the server's
``/api/agents`` routes are layers over them.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from workflow_cli.errors import NotFoundError, UsageError
from workflow_cli.readonly import readonly_dataclass

if TYPE_CHECKING:
    from workflow_cli.store.journal import Clock
    from workflow_cli.store.workspace import Workspace as StoreWorkspace

T = TypeVar("T")

# What `deliver` takes for "no output given" (None is an output: JSON's null).
NO_OUTPUT: Any = object()


@readonly_dataclass
class DeliveryResult:
    """A delivery recorded: for which attempt of which task, from which agent, by whom,
    what (``output`` or ``error``), and whether a live runner will take it at once
    (otherwise the instance goes on when it is resumed)."""

    id: str
    task: str
    attempt: int
    agent: str
    by: str
    delivered: str
    runner: bool
    state: str


class AgentOperations:
    """The agent methods of `workflow_cli.api.Workspace`."""

    store: StoreWorkspace
    clock: Clock

    def agents(self) -> builtins.list[dict[str, Any]]:
        """Every agent (what ``agents --json`` prints): declared in agents.yaml, built
        in, or a mailbox agent named by a workflow; each with its kind, where it comes
        from, the assignments waiting for it and its last runs and failure rate."""
        from workflow_cli.engine.agents.overview import agents_overview

        return agents_overview(self.store, self.clock(), self.clock)

    def inbox(self, agent: str) -> builtins.list[dict[str, Any]]:
        """A mailbox agent's assignments, oldest first (what ``inbox AGENT --json``
        prints): instance, task, attempt, parameters, assigned_at, age_seconds, deadline,
        output_schema, and the task's state now (``task_state``). An agent that is
        neither declared, built in, nor ever assigned anything is NotFoundError."""
        from workflow_cli.engine.agents.overview import list_assignments

        self.check_agent(agent)
        return list_assignments(self.store, agent, self.clock(), self.clock)

    def deliver(
        self,
        instance: str,
        task: str,
        *,
        agent: str,
        output: Any = NO_OUTPUT,
        error: str | None = None,
        by: str | None = None,
        via: str = "command",
    ) -> DeliveryResult:
        """Deliver mailbox agent `agent`'s result for the attempt of `task` that waits for
        it: `output` (checked against the task's output_schema: OutputRejectedError when
        it does not match, and nothing is recorded) or `error` (the attempt fails and is
        retried as its policy says). Journaled with `by` (default: the user's name) and
        `via`; a second delivery for the same attempt is StateError. A live runner takes
        it at once; otherwise the instance goes on when it is resumed."""
        from workflow_cli.engine.identity import who
        from workflow_cli.engine.mailbox import record_delivery
        from workflow_cli.store.runlock import runner_alive

        if (output is NO_OUTPUT) == (error is None):
            raise UsageError("give --output or --error (one of them)")
        delivered_by = who(by)
        instance_id = self.store.resolve_instance_id(instance)
        self.check_agent(agent)
        common: dict[str, Any] = {"agent": agent, "clock": self.clock, "via": via}
        if error is not None:
            attempt, state = record_delivery(
                self.store, instance_id, task, error=error, by=delivered_by, **common
            )
        else:
            attempt, state = record_delivery(
                self.store, instance_id, task, output=output, by=delivered_by, **common
            )
        live = state.get("runner") is not None and runner_alive(
            self.store.instance_dir(instance_id)
        )
        return DeliveryResult(
            id=instance_id,
            task=task,
            attempt=attempt,
            agent=agent,
            by=delivered_by,
            delivered="error" if error is not None else "output",
            runner=live,
            state=state["state"],
        )

    def check_agent(self, agent: str) -> None:
        """Refuse an agent the workspace does not know (NotFoundError): one neither
        declared in agents.yaml, built in, nor given an assignment (``agents/NAME/``)."""
        from workflow_cli.engine.agents.mailbox import agent_folder
        from workflow_cli.engine.agents.registry import agent_names

        if agent in agent_names(self.store) or agent_folder(self.store, agent).is_dir():
            return
        raise NotFoundError(f"unknown agent '{agent}' ('workflow_cli agents' lists them)")

    # -- async twins -----------------------------------------------------------------------

    async def agents_async(self) -> builtins.list[dict[str, Any]]:
        return await in_thread(self.agents)

    async def inbox_async(self, agent: str) -> builtins.list[dict[str, Any]]:
        return await in_thread(lambda: self.inbox(agent))

    async def deliver_async(
        self, instance: str, task: str, *, agent: str, **options: Any
    ) -> DeliveryResult:
        return await in_thread(lambda: self.deliver(instance, task, agent=agent, **options))


async def in_thread(work: Callable[[], T]) -> T:
    """`work` run in a worker thread while the event loop goes on (asyncio is imported
    only by those who await)."""
    import asyncio

    return await asyncio.to_thread(work)
