"""An approval gate's rules: its parameters (`parse_gate`) and what its decisions come
to (`evaluate_gate`): who may decide, the quorum, and decisions bound to the request's
digest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from workflow_cli.readonly import readonly_dataclass

ON_TIMEOUT = ("fail", "reject", "approve", "escalate")
DEADLINE_BY = "deadline"  # who a decision taken by a deadline is recorded as


# -- the gate's parameters ---------------------------------------------------------------


@readonly_dataclass
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


@readonly_dataclass
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
    approved = deciders(valid, "approved")
    rejected = deciders(valid, "rejected")
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


def deciders(decisions: list[dict[str, Any]], decision: str) -> list[str]:
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
