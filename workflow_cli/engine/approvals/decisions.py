"""People deciding: approving or rejecting a waiting gate (`record_decision`), pushing a
decision back, and handing a gate on (`reassign`). Who a person acts as is
`workflow_cli.engine.identity`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workflow_cli.definition.loader import loads_json
from workflow_cli.engine.approvals.gate import DEADLINE_BY, counted, deciders
from workflow_cli.engine.identity import ApprovalSettings
from workflow_cli.engine.timers import fire_in_instance
from workflow_cli.errors import NotFoundError, StateError, UsageError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

# -- people deciding ---------------------------------------------------------------------


def _target(state: State, instance_id: str, task_id: str | None) -> str:
    waiting = [
        t
        for t, s in state["tasks"].items()
        if s["state"] == "waiting" and "approvers" in (s.get("waiting_for") or {})
    ]
    if task_id is None:
        if not waiting:
            raise StateError(f"instance {instance_id} has no task waiting for approval")
        if len(waiting) > 1:
            raise UsageError(
                f"instance {instance_id} has {len(waiting)} tasks waiting "
                f"({', '.join(waiting)}); name one"
            )
        return waiting[0]
    if task_id not in state["tasks"]:
        raise NotFoundError(f"instance {instance_id} has no task '{task_id}'")
    if task_id not in waiting:
        raise StateError(
            f"task '{task_id}' is {state['tasks'][task_id]['state']}, not waiting for approval"
        )
    return task_id


def check_form(schema: Mapping[str, Any] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values checked against the gate's ``inputs`` schema (UsageError listing
    every problem)."""
    if schema is None:
        if values:
            raise UsageError("this gate has no form (no 'inputs'); --set is not for it")
        return {}
    from jsonschema import Draft202012Validator

    problems = sorted(
        Draft202012Validator(schema).iter_errors(dict(values)), key=lambda e: list(e.path)
    )
    if problems:
        lines = [
            ("/".join(str(p) for p in error.path) or "form") + ": " + error.message
            for error in problems
        ]
        raise UsageError("the form's values do not fit the gate's inputs: " + "; ".join(lines))
    return dict(values)


def parse_form(
    assignments: Sequence[str], as_json: str | None, schema: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``--set k=v`` (a value is JSON where the form's field is not a string) and
    ``--inputs JSON``, merged."""
    values: dict[str, Any] = {}
    if as_json is not None:
        try:
            loaded = loads_json(as_json)
        except ValueError as exc:
            raise UsageError(f"--inputs is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--inputs must be a JSON object")
        values.update(loaded)
    properties = (schema or {}).get("properties") or {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set needs key=value, not '{item}'")
        kind = (properties.get(key) or {}).get("type")
        if kind == "string":
            values[key] = raw
            continue
        try:
            values[key] = loads_json(raw)
        except ValueError:
            values[key] = raw
    return values


@readonly_dataclass
class Decision:
    """A person's decision on a gate, as the command was given it."""

    decision: str  # approved or rejected
    by: str
    comment: str | None = None
    form: Sequence[str] = ()  # --set k=v
    form_json: str | None = None  # --inputs JSON


def record_decision(
    workspace: Workspace,
    instance_id: str,
    task_id: str | None,
    decision: Decision,
    *,
    clock: Clock,
    extra: Sequence[Record] = (),
) -> tuple[str, State]:
    """Record an approval or rejection of a waiting gate; the gate's id and the state
    after it. Refused: a name that is not a current approver, the requester (unless the
    gate allows self-approval), a second decision by the same person, a decision on a
    gate already decided, form values that do not fit."""
    if decision.decision not in ("approved", "rejected"):
        raise UsageError(f"unknown decision '{decision.decision}'")
    fire_in_instance(workspace, instance_id, clock, by="approve")
    journal = open_journal(workspace, instance_id, clock)
    chosen: list[str] = []

    def decide(state: State) -> list[Record]:
        target = _target(state, instance_id, task_id)
        chosen.append(target)
        return [*_decision_events(state, target, decision), *extra]

    try:
        state = append_events(journal, decide)
    finally:
        journal.close()
    return chosen[0], state


def _decision_events(state: State, target: str, decision: Decision) -> list[Record]:
    waiting = state["tasks"][target].get("waiting_for") or {}
    approvers = waiting.get("approvers") or []
    by = decision.by
    if by not in approvers:
        raise UsageError(f"'{by}' may not decide '{target}' (approvers: {', '.join(approvers)})")
    requester = state.get("requester")
    if by == requester and not waiting.get("allow_self_approval", False):
        raise UsageError(
            f"'{by}' asked for this instance and may not decide its gate '{target}' "
            "(separation of duties; the gate would need allow_self_approval: true)"
        )
    digest = waiting.get("digest")
    valid = counted([a for a in state.get("approvals", []) if a["task"] == target], digest)
    mine = [d for d in valid if d["by"] == by]
    if mine:
        raise StateError(f"'{by}' already {mine[-1]['decision']} '{target}'; one decision each")
    approved = deciders(valid, "approved")
    rejected = deciders(valid, "rejected")
    required = int(waiting.get("required", 1))
    reject_required = int(waiting.get("reject_required", 1))
    if (
        len(approved) >= required
        or len(rejected) >= reject_required
        or any(d.get("via") == DEADLINE_BY for d in valid)
    ):
        last = valid[-1]
        raise StateError(
            f"task '{target}' was already {last['decision']} by {last['by']}; "
            "the decision takes effect when the run goes on"
        )
    inputs: dict[str, Any] = {}
    if decision.decision == "approved":
        schema = waiting.get("inputs")
        inputs = check_form(schema, parse_form(decision.form, decision.form_json, schema))
    elif decision.form or decision.form_json:
        raise UsageError("a rejection takes no form values (--set/--inputs)")
    events: list[Record] = [
        ev.approval_recorded(
            target,
            decision.decision,
            by,
            decision.comment,
            digest=digest,
            level=waiting.get("level", 0) if digest else None,
            inputs=inputs,
        )
    ]
    decides = (decision.decision == "approved" and len(approved) + 1 >= required) or (
        decision.decision == "rejected" and len(rejected) + 1 >= reject_required
    )
    if decides:
        events.extend(
            ev.timer_cancelled(t["timer"], f"the gate was {decision.decision}")
            for t in state.get("timers", {}).values()
            if t["target"] == target
        )
    return events


def push_back(
    workspace: Workspace,
    instance_id: str,
    task_id: str | None,
    decision: Decision,
    rewind_to: str,
    *,
    clock: Clock,
) -> tuple[str, State, list[str]]:
    """Reject a gate and send the run back to `rewind_to`, an earlier task: it and every
    task after it go back to pending (as ``retry --downstream`` does), the gate included,
    so it asks again once the run gets there. Refused while a runner runs."""
    from workflow_cli.definition.model import parse_workflow
    from workflow_cli.engine.control.guards import no_runner
    from workflow_cli.engine.control.repair import plan_retry
    from workflow_cli.store.instances import load_definition

    plan = plan_retry(workspace, instance_id, rewind_to, downstream=True, clock=clock)
    tasks = [change.task for change in plan.reset]
    after = set(
        parse_workflow(load_definition(workspace, instance_id)).graph.downstream([rewind_to])
    )
    why = f"pushed back by {decision.by}" + (f": {decision.comment}" if decision.comment else "")
    with no_runner(workspace, instance_id, "push the run back"):
        journal = open_journal(workspace, instance_id, clock)
        gate: list[str] = []

        def decide(state: State) -> list[Record]:
            target = _target(state, instance_id, task_id)
            if target not in after:
                raise UsageError(f"'{rewind_to}' does not come before the gate '{target}'")
            gate.append(target)
            tasks.extend(t for t in after if state["tasks"][t]["state"] == "waiting")
            events = _decision_events(state, target, decision)
            return [*events, ev.tasks_reset(list(dict.fromkeys(tasks)), decision.by, why)]

        try:
            state = append_events(journal, decide)
        finally:
            journal.close()
    return gate[0], state, list(dict.fromkeys(tasks))


def reassign(
    workspace: Workspace,
    instance_id: str,
    task_id: str | None,
    *,
    to: str,
    by: str,
    comment: str | None,
    settings: ApprovalSettings,
    clock: Clock,
) -> tuple[str, State]:
    """Hand a waiting gate on: a current approver puts `to` in their place; an admin
    adds `to` to the approvers. Recorded."""
    if not to.strip():
        raise UsageError("--to needs a name")
    fire_in_instance(workspace, instance_id, clock, by="reassign")
    journal = open_journal(workspace, instance_id, clock)
    chosen: list[str] = []

    def decide(state: State) -> list[Record]:
        target = _target(state, instance_id, task_id)
        approvers = list((state["tasks"][target].get("waiting_for") or {}).get("approvers") or [])
        if to in approvers:
            raise UsageError(f"'{to}' is already an approver of '{target}'")
        if by in approvers:
            replaced: str | None = by
            approvers[approvers.index(by)] = to
        elif by in settings.admins:
            replaced = None
            approvers.append(to)
        else:
            raise UsageError(
                f"'{by}' may not reassign '{target}': only its approvers "
                f"({', '.join(approvers)}) or an admin may"
            )
        chosen.append(target)
        return [
            ev.approval_reassigned(
                target, by=by, to=to, replaced=replaced, approvers=approvers, comment=comment
            )
        ]

    try:
        state = append_events(journal, decide)
    finally:
        journal.close()
    return chosen[0], state
