"""Approval gates: who may decide, when a decision counts, and what a deadline does.

A gate (``action: approval_gate``) asks its ``approvers`` (names, or groups such as
``@finance`` from the workspace's ``approvals.groups``) to decide a request: its
rendered ``message`` and its form (``inputs``, a JSON schema the approver fills). The
request's digest is bound to every decision, so a decision taken on a request that has
since changed no longer counts. ``required`` different people must approve (a quorum);
``reject_required`` rejections (default 1) reject.

Deadlines are durable timers (`engine.timers`): when the current level's deadline
passes with no decision, the gate escalates to its next level (``escalate_to`` or
``escalation: [{after_seconds, approvers}, ...]``; the new approvers replace the old
ones, or join them with ``escalation_mode: add``); after the last level it does what
``on_timeout`` says: ``fail`` (default), ``reject``, ``approve`` (``escalate`` with no
level left fails). ``remind_every_seconds`` records a reminder while it waits.

People decide with `record_decision` (``approve``/``reject``) and hand a gate on with
`reassign`; `waiting_gates` is the inbox across the workspace. Identity: a decision is
taken as ``--as`` (default: the OS user); with ``approvals.identity: os`` in the
workspace settings only the OS user's own name is accepted (admins excepted).
"""

from workflow_cli.engine.approvals.deadlines import (
    DEADLINE,
    REMINDER,
    TIMER_HANDLERS,
    wait_timers,
)
from workflow_cli.engine.approvals.decisions import (
    Decision,
    push_back,
    reassign,
    record_decision,
)
from workflow_cli.engine.approvals.gate import GateSpec, evaluate_gate, parse_gate
from workflow_cli.engine.approvals.inbox import waiting_gates
from workflow_cli.engine.identity import (
    ApprovalSettings,
    acting_as,
    approval_settings,
    requester_of,
)

__all__ = [
    "DEADLINE",
    "REMINDER",
    "TIMER_HANDLERS",
    "ApprovalSettings",
    "Decision",
    "GateSpec",
    "acting_as",
    "approval_settings",
    "evaluate_gate",
    "parse_gate",
    "push_back",
    "reassign",
    "record_decision",
    "requester_of",
    "wait_timers",
    "waiting_gates",
]
