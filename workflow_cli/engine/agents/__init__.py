"""Agents: what an ``agent_task`` runs.

Declared in the workspace's ``agents.yaml``::

    agents:
      word_count:                     # a command: parameters as JSON on stdin,
        command: [python3, count.py]  # output as JSON on stdout, stderr to the task's log
        env: {LANG: C.UTF-8}          # optional extra environment
      scorer:
        callable: my_module:score     # a Python callable, called with the parameters dict
      classifier:
        url: http://127.0.0.1:8080/c  # parameters POSTed as JSON, the JSON answer the output
      reviewer:
        mailbox: true                 # an assignment file in agents/reviewer/inbox/

Built-in agents (``workflow_cli.engine.agents.builtin``) need no declaration; a
workspace agent of the same name takes precedence. An agent neither declared nor built
in is a mailbox agent (``undeclared_agents: error`` in ``workflow_cli.yaml`` makes it an
error).

The package: `registry` reads ``agents.yaml`` and runs an agent by name; each kind of
declared agent is a module (`command`, `python`, `http_endpoint`, `mailbox`) named in
``registry.KINDS``; `overview` gathers what ``workflow_cli agents`` shows; the built-in
agents live in ``builtin/``, one module per domain. Deliveries to mailbox agents'
assignments are `workflow_cli.engine.mailbox`.
"""

from __future__ import annotations

from workflow_cli.engine.agents.command import kill_orphan_agents
from workflow_cli.engine.agents.registry import (
    AgentSpec,
    agent_names,
    agents_as_read,
    builtin_agents,
    load_agents,
    run_agent,
)

__all__ = [
    "AgentSpec",
    "agent_names",
    "agents_as_read",
    "builtin_agents",
    "kill_orphan_agents",
    "load_agents",
    "run_agent",
]
