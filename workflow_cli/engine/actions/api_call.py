"""``api_call``: makes one HTTP request; the response is the task's output.

Parameters:

- ``url`` (required): an ``http://`` or ``https://`` URL. Credentials go in ``headers``,
  not in the URL (``user:password@host`` is refused).
- ``method``: ``GET`` (the default), ``POST``, ``PUT``, ``PATCH``, ``DELETE``, …
- ``headers``: an object of header names to text values.
- ``json``: a JSON body (any JSON value); sets ``Content-Type: application/json``.
- ``body``: a text body, sent as UTF-8 (``Content-Type: text/plain`` unless ``headers``
  says otherwise). Give ``json`` or ``body``, not both.
- ``expected_status``: a status code or a list of them; by default any 2xx succeeds.
- ``timeout_seconds``: how long the request may take, connecting and reading included
  (default: the task's ``timeout_seconds``, else 30; never longer than the task's).

Output: ``{"status", "headers", "json", "text"}``. ``headers`` has lower-case names
(repeated headers joined with ``", "``). ``json`` is the parsed body when the response is
JSON (``application/json`` or ``…+json``), else null; ``text`` is the body as text when it
is not JSON (the first 64 KiB), else null.

Redirects are followed, but only to ``http``/``https`` URLs, and secret headers are not
sent on to another host. Proxies named by ``http_proxy``/``https_proxy`` are used, except
for this machine itself (``localhost``, 127.0.0.0/8, ``::1``).

Failures: ``http_status`` for a status not expected (``details.status``; retried for 5xx
and 429 only), ``timeout`` and ``connection`` (retried), ``tls`` (a certificate that does
not verify), ``redirect`` (to another scheme), ``too_large`` (a body over 10 MiB),
``cancelled``. Each request adds one line to the task's log: method, URL, status,
duration and request headers, with the values of secret-looking headers (Authorization,
Cookie, X-API-Key, names containing "token" or "secret", …) and URL query parameters
written as ``***``.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from workflow_cli import __version__
from workflow_cli.engine.actions.base import ActionFailed, CheckContext, TaskCall
from workflow_cli.engine.http_exchange import (
    SCHEMES,
    HttpRequest,
    require_status,
    send_request,
)
from workflow_cli.errors import Problem

DEFAULT_TIMEOUT = 30.0
MAX_TEXT_BYTES = 64 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: methods, header names


class ApiCall:
    name = "api_call"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        parameters = ctx.task.get("parameters") or {}
        where = f"{ctx.pointer}/parameters"
        return [
            Problem(f"{where}/{key}" if key else where, message)
            for key, message in parameter_problems(parameters, templated_ok=True)
        ]

    def run(self, call: TaskCall) -> Any:
        request = _parse_request(call.parameters, call.timeout)
        status, headers, body = send_request(call, request, call.parameters.get("circuit_breaker"))
        require_status(request, status)
        return _output(status, headers, body)


def parameter_problems(
    parameters: Mapping[str, Any], *, templated_ok: bool
) -> list[tuple[str, str]]:
    """(parameter, message) for each invalid parameter ("" for the parameters as a whole).

    With `templated_ok` (static checks), a string holding ``{{`` stands for a value not
    known yet and passes.
    """

    def open_value(value: Any) -> bool:
        return templated_ok and isinstance(value, str) and "{{" in value

    problems: list[tuple[str, str]] = []
    url = parameters.get("url")
    if url is None:
        problems.append(("", "needs 'url'"))
    elif not isinstance(url, str):
        problems.append(("url", "must be a string"))
    elif not open_value(url):
        message = _url_problem(url)
        if message:
            problems.append(("url", message))
    method = parameters.get("method", "GET")
    if not open_value(method) and not (isinstance(method, str) and _TOKEN.match(method)):
        problems.append(("method", "must be an HTTP method such as GET or POST"))
    headers = parameters.get("headers", {})
    if not isinstance(headers, dict):
        problems.append(("headers", "must be an object of header names to strings"))
    else:
        for name, value in headers.items():
            if not _TOKEN.match(str(name)):
                problems.append((f"headers/{name}", "is not a valid header name"))
            elif not isinstance(value, str):
                problems.append((f"headers/{name}", "must be a string"))
            elif any(c in value for c in "\r\n\x00"):
                problems.append((f"headers/{name}", "must not contain line breaks or NUL"))
    if "json" in parameters and "body" in parameters:
        problems.append(("", "give 'json' or 'body', not both"))
    body = parameters.get("body")
    if body is not None and not isinstance(body, str):
        problems.append(("body", "must be a string (use 'json' for structured data)"))
    expected = parameters.get("expected_status")
    if expected is not None and not open_value(expected):
        codes = expected if isinstance(expected, list) else [expected]
        if not codes or not all(
            isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599
            for code in codes
        ):
            problems.append(
                ("expected_status", "must be a status code (100-599) or a list of them")
            )
    timeout = parameters.get("timeout_seconds")
    if (
        timeout is not None
        and not open_value(timeout)
        and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0)
    ):
        problems.append(("timeout_seconds", "must be a positive number"))
    return problems


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL: {exc}"
    if parts.scheme.lower() not in SCHEMES:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "must name a host"
    if "@" in parts.netloc:
        return "must not hold credentials; put them in 'headers' (e.g. Authorization)"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "must not contain spaces or control characters (percent-encode them)"
    return None


def _parse_request(parameters: Mapping[str, Any], task_timeout: float | None) -> HttpRequest:
    problems = parameter_problems(parameters, templated_ok=False)
    if problems:
        raise ActionFailed(
            "api_call: " + "; ".join(f"{key or 'parameters'} {msg}" for key, msg in problems),
            retryable=False,
        )
    headers = {"User-Agent": f"workflow_cli/{__version__}", **parameters.get("headers", {})}
    given = {name.lower() for name in headers}
    body: bytes | None = None
    if "json" in parameters:
        body = json.dumps(parameters["json"], ensure_ascii=False).encode("utf-8")
        if "content-type" not in given:
            headers["Content-Type"] = "application/json"
    elif parameters.get("body") is not None:
        body = str(parameters["body"]).encode("utf-8")
        if "content-type" not in given:
            # urllib would otherwise label any body as a submitted form.
            headers["Content-Type"] = "text/plain; charset=utf-8"
    expected = parameters.get("expected_status")
    timeouts = [t for t in (parameters.get("timeout_seconds"), task_timeout) if t]
    return HttpRequest(
        method=str(parameters.get("method", "GET")).upper(),
        url=str(parameters["url"]),
        headers=headers,
        body=body,
        expected=None
        if expected is None
        else frozenset(expected if isinstance(expected, list) else [expected]),
        timeout=float(min(timeouts)) if timeouts else DEFAULT_TIMEOUT,
    )


def _output(status: int, headers: Message, body: bytes) -> dict[str, Any]:
    names: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        names[key] = f"{names[key]}, {value}" if key in names else value
    content_type = headers.get_content_type()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            return {"status": status, "headers": names, "json": json.loads(body), "text": None}
        except ValueError:
            pass  # labelled JSON but is not: given as text, so the task can still see it
    charset = headers.get_content_charset() or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # Not final: a character cut in two at the limit is dropped, not shown as garbage.
    text = decoder.decode(body[:MAX_TEXT_BYTES], final=len(body) <= MAX_TEXT_BYTES)
    return {"status": status, "headers": names, "json": None, "text": text}


ACTION = ApiCall()
