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

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from workflow_cli.engine.timers import Fired, fire_in_instance, new_timer, parse_time
from workflow_cli.errors import NotFoundError, StateError, UsageError, WorkflowCliError
from workflow_cli.store import events as ev
from workflow_cli.store.config import config_block
from workflow_cli.store.instances import append_events, load_state, open_journal
from workflow_cli.store.journal import Clock, Record
from workflow_cli.store.state import State, TimerRecord
from workflow_cli.store.workspace import Workspace

DEADLINE = "approval_deadline"
REMINDER = "approval_reminder"
ON_TIMEOUT = ("fail", "reject", "approve", "escalate")
DEADLINE_BY = "deadline"  # who a decision taken by a deadline is recorded as


# -- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalSettings:
    """The workspace's ``approvals`` block: identity rule, admins, groups."""

    identity: str = "any"  # "os": a person decides only as the OS user
    admins: frozenset[str] = frozenset()
    groups: Mapping[str, list[str]] = field(default_factory=dict)


def approval_settings(workspace: Workspace) -> ApprovalSettings:
    block = config_block(workspace, "approvals")
    if block is None:
        return ApprovalSettings()
    where = "workflow_cli.yaml: approvals"
    if not isinstance(block, dict):
        raise UsageError(f"{where} must be a mapping")
    identity = block.get("identity", "any")
    if identity not in ("any", "os"):
        raise UsageError(f"{where}.identity must be 'os' or 'any', not {identity!r}")
    admins = block.get("admins") or []
    groups = block.get("groups") or {}
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        raise UsageError(f"{where}.admins must be a list of names")
    if not isinstance(groups, dict) or not all(
        isinstance(m, list) and all(isinstance(n, str) for n in m) for m in groups.values()
    ):
        raise UsageError(f"{where}.groups must map each group to a list of names")
    return ApprovalSettings(identity, frozenset(admins), groups)


def acting_as(by: str | None, os_user: str, settings: ApprovalSettings) -> str:
    """Who a person acts as: `by` (default the OS user), refused under ``identity: os``
    when it is not the OS user (unless the OS user is an admin)."""
    name = os_user if by is None else by.strip()
    if not name:
        raise UsageError("--as needs a name")
    if settings.identity == "os" and name != os_user and os_user not in settings.admins:
        raise UsageError(
            f"this workspace decides by OS identity (approvals.identity: os): you are "
            f"'{os_user}' and may not act as '{name}'"
        )
    return name


def requester_of(workspace: Workspace, given: str | None, os_user: str) -> str | None:
    """Who asks for a new instance (``create --as``). Under ``identity: os`` it is the OS
    user, and naming anyone else is refused (admins excepted); otherwise what was given."""
    settings = approval_settings(workspace)
    if settings.identity == "os":
        return acting_as(given, os_user, settings)
    return None if given is None else acting_as(given, os_user, settings)


# -- the gate's parameters ---------------------------------------------------------------


@dataclass(frozen=True)
class GateSpec:
    """A gate's parameters, checked, with groups expanded and its levels laid out."""

    message: str
    levels: list[dict[str, Any]]  # [{"approvers": [...], "timeout_seconds": s | None}]
    required: int = 1
    reject_required: int = 1
    escalation_mode: str = "replace"
    on_timeout: str = "fail"
    allow_self_approval: bool = False
    inputs: dict[str, Any] | None = None
    remind_every_seconds: float | None = None

    def request(self) -> dict[str, Any]:
        return {"message": self.message, "inputs": self.inputs}


def _names(value: Any, groups: Mapping[str, list[str]], what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{what}' must list one or more names")
    names: list[str] = []
    for item in value:
        if item.startswith("@"):
            members = groups.get(item[1:])
            if members is None:
                raise ValueError(
                    f"'{what}' names the group {item}, which workflow_cli.yaml "
                    "(approvals.groups) does not define"
                )
            found = members
        else:
            found = [item]
        names.extend(n for n in found if n not in names)
    return names


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"'{what}' must be a number of seconds above zero")
    return float(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'{what}' must be a whole number of at least 1")
    return value


def parse_gate(parameters: Mapping[str, Any], groups: Mapping[str, list[str]]) -> GateSpec:
    """The gate's parameters as a `GateSpec` (ValueError naming what is wrong)."""
    approvers = _names(parameters.get("approvers"), groups, "approvers")
    timeout = _seconds(parameters.get("timeout_seconds"), "timeout_seconds")
    mode = parameters.get("escalation_mode", "replace")
    if mode not in ("replace", "add"):
        raise ValueError("'escalation_mode' must be 'replace' or 'add'")
    steps: list[tuple[float | None, list[str]]] = []
    if parameters.get("escalation") is not None:
        escalation = parameters["escalation"]
        if not isinstance(escalation, list) or not all(isinstance(s, dict) for s in escalation):
            raise ValueError("'escalation' must be a list of {after_seconds, approvers}")
        for n, step in enumerate(escalation):
            after = _seconds(step.get("after_seconds"), f"escalation[{n}].after_seconds")
            if after is None:
                raise ValueError(f"'escalation[{n}]' needs after_seconds")
            steps.append((after, _names(step.get("approvers"), groups, f"escalation[{n}]")))
    elif parameters.get("escalate_to") is not None:
        if timeout is None:
            raise ValueError("'escalate_to' needs 'timeout_seconds' (when to escalate)")
        steps.append((timeout, _names(parameters["escalate_to"], groups, "escalate_to")))
    levels: list[dict[str, Any]] = [
        {"approvers": approvers, "timeout_seconds": steps[0][0] if steps else timeout}
    ]
    for n, (_, names) in enumerate(steps):
        if mode == "add":
            names = levels[-1]["approvers"] + [x for x in names if x not in levels[-1]["approvers"]]
        following = steps[n + 1][0] if n + 1 < len(steps) else timeout
        levels.append({"approvers": names, "timeout_seconds": following})
    required = _count(parameters.get("required", 1), "required")
    most = max(len(level["approvers"]) for level in levels)
    if required > most and not any(name.startswith("@") for name in approvers):
        raise ValueError(f"'required' is {required}, but no level has that many approvers")
    on_timeout = parameters.get("on_timeout", "fail")
    if on_timeout not in ON_TIMEOUT:
        raise ValueError(f"'on_timeout' must be one of {', '.join(ON_TIMEOUT)}")
    inputs = parameters.get("inputs")
    if inputs is not None and not isinstance(inputs, dict):
        raise ValueError("'inputs' must be a JSON schema (an object)")
    message = parameters.get("message", "")
    self_ok = parameters.get("allow_self_approval", False)
    if not isinstance(self_ok, bool):
        raise ValueError("'allow_self_approval' must be true or false")
    return GateSpec(
        message=message if isinstance(message, str) else json.dumps(message),
        levels=levels,
        required=required,
        reject_required=_count(parameters.get("reject_required", 1), "reject_required"),
        escalation_mode=mode,
        on_timeout=on_timeout,
        allow_self_approval=self_ok,
        inputs=inputs,
        remind_every_seconds=_seconds(
            parameters.get("remind_every_seconds"), "remind_every_seconds"
        ),
    )


def request_digest(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request a person decides on (its rendered message and its form)."""
    data = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()


# -- what the gate comes to --------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What a gate comes to: still waiting (``waiting_for``), approved (``output``) or
    not (``failure``: message, kind, details)."""

    waiting_for: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    failure: tuple[str, str, dict[str, Any]] | None = None


def counted(decisions: Sequence[Mapping[str, Any]], digest: str | None) -> list[dict[str, Any]]:
    """The decisions that count for the request with `digest` (ones recorded before
    requests had digests count too)."""
    return [dict(d) for d in decisions if d.get("digest") in (None, digest)]


def evaluate_gate(
    spec: GateSpec,
    decisions: Sequence[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
) -> Verdict:
    """The gate's verdict on the decisions so far. `previous` is what the gate waited for
    before (its level and approvers stand while the request is the same)."""
    digest = request_digest(spec.request())
    # Escalations and reassignments stand while the request and its levels are the same.
    same = (
        previous is not None
        and previous.get("digest") == digest
        and previous.get("levels") == spec.levels
    )
    level = int(previous.get("level", 0)) if same and previous else 0
    approvers = list(previous["approvers"]) if same and previous else spec.levels[0]["approvers"]
    valid = counted(decisions, digest)
    by_deadline = [d for d in valid if d.get("via") == DEADLINE_BY]
    approved = _people(valid, "approved")
    rejected = _people(valid, "rejected")
    if by_deadline and by_deadline[-1]["decision"] == "timed_out":
        last = by_deadline[-1]
        text = f"no decision by the deadline ({last.get('comment')})"
        return Verdict(failure=(text, "timeout", last))
    if (by_deadline and by_deadline[-1]["decision"] == "rejected") or len(
        rejected
    ) >= spec.reject_required:
        last = [d for d in valid if d["decision"] == "rejected"][-1]
        text = f"rejected by {last['by']}" + (f": {last['comment']}" if last.get("comment") else "")
        return Verdict(failure=(text, "rejected", _record(last, valid, level, digest)))
    if (by_deadline and by_deadline[-1]["decision"] == "approved") or len(
        approved
    ) >= spec.required:
        last = [d for d in valid if d["decision"] == "approved"][-1]
        return Verdict(output=_record(last, valid, level, digest))
    waiting = {
        "approvers": approvers,
        "message": spec.message,
        "digest": digest,
        "level": level,
        "levels": spec.levels,
        "required": spec.required,
        "reject_required": spec.reject_required,
        "approved_by": approved,
        "escalation_mode": spec.escalation_mode,
        "on_timeout": spec.on_timeout,
        "allow_self_approval": spec.allow_self_approval,
        "inputs": spec.inputs,
        "remind_every_seconds": spec.remind_every_seconds,
    }
    return Verdict(waiting_for=waiting)


def _people(decisions: list[dict[str, Any]], decision: str) -> list[str]:
    found: list[str] = []
    for d in decisions:
        if d["decision"] == decision and d.get("via") != DEADLINE_BY and d["by"] not in found:
            found.append(d["by"])
    return found


def _record(
    last: Mapping[str, Any], valid: list[dict[str, Any]], level: int, digest: str
) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for d in valid:
        if d["decision"] == "approved":
            inputs.update(d.get("inputs") or {})
    return {
        "decision": last["decision"],
        "by": last["by"],
        "comment": last.get("comment"),
        "time": last.get("time"),
        "level": last.get("level", level),
        "digest": digest,
        "inputs": inputs,
        "decisions": valid,
    }


# -- deadlines and reminders -------------------------------------------------------------


def wait_timers(state: State, task_id: str, now: datetime) -> list[Record]:
    """The timers a gate that has begun (or goes on) waiting needs and does not have:
    its current level's deadline, and its next reminder."""
    task = state["tasks"][task_id]
    waiting = task.get("waiting_for") or {}
    if task["state"] != "waiting" or "digest" not in waiting:
        return []
    level = int(waiting.get("level", 0))
    mine = [t for t in state.get("timers", {}).values() if t["target"] == task_id]
    events: list[Record] = []
    levels = waiting.get("levels") or []
    timeout = levels[level].get("timeout_seconds") if level < len(levels) else None
    if timeout and not any(t["kind"] == DEADLINE and t["data"].get("level") == level for t in mine):
        due = now + timedelta(seconds=timeout)
        events.append(new_timer(state, DEADLINE, task_id, due, {"level": level}))
    every = waiting.get("remind_every_seconds")
    if every and not any(t["kind"] == REMINDER for t in mine):
        events.append(new_timer(state, REMINDER, task_id, now + timedelta(seconds=every), {}))
    return events


def _waiting_gate(state: State, timer: TimerRecord) -> dict[str, Any] | None:
    task = state["tasks"].get(timer["target"])
    if task is None or task["state"] != "waiting":
        return None
    waiting = task.get("waiting_for")
    return waiting if waiting and "digest" in waiting else None


def fire_deadline(state: State, timer: TimerRecord, now: datetime) -> Fired:
    """A level's deadline passed: escalate to the next level, or do what on_timeout says."""
    task_id = timer["target"]
    waiting = _waiting_gate(state, timer)
    level = timer["data"].get("level", 0)
    if waiting is None or waiting.get("level", 0) != level:
        return Fired([ev.timer_cancelled(timer["timer"], "the gate no longer waits at that level")])
    levels = waiting.get("levels") or []
    if level + 1 < len(levels):
        following = levels[level + 1]
        approvers = list(following["approvers"])
        if waiting.get("escalation_mode") == "add":
            now_deciding = list(waiting["approvers"])
            approvers = now_deciding + [a for a in approvers if a not in now_deciding]
        mode = waiting.get("escalation_mode", "replace")
        events: list[Record] = [ev.approval_escalated(task_id, level + 1, approvers, mode)]
        if following.get("timeout_seconds"):
            due = now + timedelta(seconds=following["timeout_seconds"])
            events.append(new_timer(state, DEADLINE, task_id, due, {"level": level + 1}))
        return Fired(events)
    on_timeout = waiting.get("on_timeout", "fail")
    decision = {"approve": "approved", "reject": "rejected"}.get(on_timeout, "timed_out")
    comment = f"no decision by {timer['due']} (level {level}); on_timeout: {on_timeout}"
    recorded = ev.approval_recorded(
        task_id,
        decision,
        DEADLINE_BY,
        comment,
        digest=waiting["digest"],
        level=level,
        via=DEADLINE_BY,
    )
    others = [
        ev.timer_cancelled(t["timer"], "the gate was decided by its deadline")
        for t in state.get("timers", {}).values()
        if t["target"] == task_id and t["timer"] != timer["timer"]
    ]
    return Fired([recorded, *others], run_again=task_id)


def fire_reminder(state: State, timer: TimerRecord, now: datetime) -> Fired:
    waiting = _waiting_gate(state, timer)
    if waiting is None or not waiting.get("remind_every_seconds"):
        return Fired([ev.timer_cancelled(timer["timer"], "the gate no longer waits")])
    task_id = timer["target"]
    due = now + timedelta(seconds=waiting["remind_every_seconds"])
    return Fired(
        [
            ev.approval_reminded(task_id, int(waiting.get("level", 0)), list(waiting["approvers"])),
            new_timer(state, REMINDER, task_id, due, {}),
        ]
    )


TIMER_HANDLERS = {DEADLINE: fire_deadline, REMINDER: fire_reminder}


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
            loaded = json.loads(as_json)
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
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


@dataclass(frozen=True)
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
    approved = _people(valid, "approved")
    rejected = _people(valid, "rejected")
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


# -- the inbox ---------------------------------------------------------------------------


def gate_deadline(state: State, task_id: str) -> str | None:
    due = [
        t["due"]
        for t in state.get("timers", {}).values()
        if t["target"] == task_id and t["kind"] == DEADLINE
    ]
    return min(due, key=parse_time) if due else None


def waiting_gates(
    workspace: Workspace,
    clock: Clock,
    *,
    for_name: str | None = None,
    overdue: bool = False,
    instance_ids: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Every gate waiting across the workspace (or in the instances `instance_ids`
    names), oldest first: instance, task, message, approvers, level, decisions so far,
    waiting since, deadline, overdue."""
    folder = workspace.instances_dir
    if not folder.is_dir():
        return []
    now = clock()
    found: list[dict[str, Any]] = []
    if instance_ids is None:
        paths = [p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir()]
    else:
        paths = [folder / instance_id for instance_id in instance_ids]
    for path in sorted(paths):
        try:
            journal = open_journal(workspace, path.name, clock)
            try:
                state = load_state(journal)
            finally:
                journal.close()
        except WorkflowCliError:
            continue
        for task_id, task in state["tasks"].items():
            waiting = task.get("waiting_for") or {}
            if task["state"] != "waiting" or "approvers" not in waiting:
                continue
            if for_name is not None and for_name not in waiting["approvers"]:
                continue
            deadline = gate_deadline(state, task_id)
            late = deadline is not None and parse_time(deadline) <= now
            if overdue and not late:
                continue
            decisions = counted(
                [a for a in state.get("approvals", []) if a["task"] == task_id],
                waiting.get("digest"),
            )
            found.append(
                {
                    "instance": state.get("id", path.name),
                    "task": task_id,
                    "message": waiting.get("message", ""),
                    "approvers": waiting["approvers"],
                    "required": waiting.get("required", 1),
                    "level": waiting.get("level", 0),
                    "decisions": decisions,
                    "waiting_since": waiting.get("since"),
                    "level_since": waiting.get("level_since"),
                    "deadline": deadline,
                    "overdue": late,
                    "requester": state.get("requester"),
                }
            )
    found.sort(key=lambda g: g["waiting_since"] or "")
    return found
