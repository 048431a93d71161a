"""Approval requests: a request record to approve, and the request with its decisions
written down."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

from workflow_cli.engine.actions.base import TaskCall
from workflow_cli.engine.agents.builtin.parameters import bad, is_number, log, string, type_name
from workflow_cli.engine.agents.builtin.records import json_bytes, write_file


def build_request(parameters: dict[str, Any], call: TaskCall) -> Any:
    """An approval request record. Its id is derived from the instance and the request's
    content, so running the task again gives the same id."""
    title = string(parameters, "title").strip()
    requester = string(parameters, "requester").strip()
    amount = parameters.get("amount")
    if not is_number(amount) or not math.isfinite(amount) or amount <= 0:
        raise bad("amount", f"must be a number above zero, not {amount!r}")
    currency = string(parameters, "currency", "USD").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise bad("currency", f"must be a three-letter code such as USD, not {currency!r}")
    description = parameters.get("description") or ""
    if not isinstance(description, str):
        raise bad("description", f"must be text, not {type_name(description)}")
    key = "\x00".join([call.instance_id, title, repr(amount), currency, requester])
    request_id = "REQ-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10].upper()
    log(call, f"request {request_id}: {title!r}, {amount} {currency}, by {requester}")
    return {
        "request_id": request_id,
        "instance_id": call.instance_id,
        "title": title,
        "amount": amount,
        "currency": currency,
        "requester": requester,
        "description": description,
    }


def finalize_request(parameters: dict[str, Any], call: TaskCall) -> Any:
    """Write the request and the approvals given to it to ``output`` (a JSON file); the
    status is ``approved`` when every approval's decision is ``approved``."""
    request = parameters.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("request_id"), str):
        raise bad("request", "must be the output of build_request")
    approvals = parameters.get("approvals")
    if (
        not isinstance(approvals, list)
        or not approvals
        or not all(isinstance(a, dict) and isinstance(a.get("decision"), str) for a in approvals)
    ):
        raise bad("approvals", "must be a non-empty list of approval_gate outputs")
    name = string(parameters, "output")
    status = "approved" if all(a["decision"] == "approved" for a in approvals) else "rejected"
    approved_by = [a.get("by") for a in approvals if a["decision"] == "approved"]
    record = {"request": request, "approvals": approvals, "status": status}
    written = write_file(call, name, json_bytes(record))
    log(call, f"request {request['request_id']} {status}")
    return {
        **written,
        "status": status,
        "request_id": request["request_id"],
        "approved_by": approved_by,
    }
