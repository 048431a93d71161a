"""HTTP agents: the task's parameters POSTed as JSON to a URL; the JSON answer is the output.

``agents.yaml``::

    agents:
      scorer:
        url: http://127.0.0.1:8080/score   # http:// or https://, no credentials in it
        headers:                           # optional; secret values are masked in the log
          Authorization: "Bearer {{ secrets.scorer_token }}"  # a declared secret
        timeout_seconds: 10                # optional (default 30; never over the task's)
        circuit_breaker: {failures: 3}     # optional; false turns the host's breaker off

Header values may use expressions (``{{ secrets.NAME }}`` for a secret declared in
``workflow_cli.yaml`` or the definition, ``{{ instance.id }}``), rendered for each attempt.
A 2xx answer with a JSON body is the output (an empty body is null); any other status
fails the attempt with kind ``http_status`` (retried for 5xx and 429 only), a body that
is not JSON with kind ``bad_output``. The request goes through `engine.http_exchange`:
the host's circuit breaker, redirects to http(s) only, one masked line in the task's log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any

from workflow_cli import __version__
from workflow_cli.definition.expressions import has_template, render_value
from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.engine.agents.command import json_answer
from workflow_cli.errors import ExpressionError, Problem
from workflow_cli.readonly import readonly_dataclass

if TYPE_CHECKING:
    from workflow_cli.engine.agents.registry import AgentSpec

DEFAULT_TIMEOUT = 30.0


@readonly_dataclass
class Endpoint:
    """Where an HTTP agent is, and how to call it."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    circuit_breaker: Any = None


def parse(entry: Mapping[str, Any], where: str) -> Endpoint | Problem:
    """The endpoint of an ``agents.yaml`` entry with ``url``."""
    from workflow_cli.engine.actions.api_call import parameter_problems

    settings = {"url": entry["url"], "headers": entry.get("headers", {})}
    if "timeout_seconds" in entry:
        settings["timeout_seconds"] = entry["timeout_seconds"]
    for key, message in parameter_problems(settings, templated_ok=False):
        return Problem(f"{where}/{key}" if key else where, message)
    breaker = entry.get("circuit_breaker")
    if breaker is not None and not isinstance(breaker, bool | dict):
        return Problem(f"{where}/circuit_breaker", "must be false or a mapping")
    return Endpoint(
        str(entry["url"]),
        dict(settings["headers"]),
        float(entry.get("timeout_seconds", DEFAULT_TIMEOUT)),
        breaker,
    )


def run(spec: AgentSpec[Endpoint], call: TaskCall) -> Any:
    """POST the task's parameters; the JSON answer."""
    endpoint = spec.settings
    given = dict(endpoint.headers)
    if any(has_template(value) for value in given.values()):
        try:
            given = {name: str(value) for name, value in render_value(given, call.context).items()}
        except ExpressionError as exc:
            raise ActionFailed(
                f"agent '{spec.name}': headers: {exc.message}", kind="expression", retryable=False
            ) from None
    headers = {
        "User-Agent": f"workflow_cli/{__version__}",
        "Accept": "application/json",
        **given,
        "Content-Type": "application/json",
        "X-Workflow-Instance": call.instance_id,
        "X-Workflow-Task": call.task_id,
        "X-Workflow-Attempt": str(call.attempt),
    }
    # Imported here: ssl and urllib are a tenth of a second's import, which a run
    # without HTTP agents need not pay.
    from workflow_cli.engine.http_exchange import HttpRequest, require_status, send_request

    timeouts = [t for t in (endpoint.timeout, call.timeout) if t]
    request = HttpRequest(
        method="POST",
        url=endpoint.url,
        headers=headers,
        body=json.dumps(call.parameters, ensure_ascii=False).encode("utf-8"),
        expected=None,
        timeout=float(min(timeouts)) if timeouts else DEFAULT_TIMEOUT,
    )
    status, _, body = send_request(call, request, endpoint.circuit_breaker)
    require_status(request, status)
    return json_answer(spec.name, body, "answered")
