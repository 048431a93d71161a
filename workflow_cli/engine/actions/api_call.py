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
sent on to another host. Proxies named by ``http_proxy``/``https_proxy`` are used.

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
import http.client
import json
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.client import HTTPMessage
from typing import IO, Any, Protocol
from urllib.parse import urljoin, urlsplit

from workflow_cli import __version__
from workflow_cli.engine import breaker
from workflow_cli.engine.actions.base import ActionFailed, CheckContext, TaskCall
from workflow_cli.errors import Problem
from workflow_cli.store.secrets import is_secret_key, mask_headers, mask_url

SCHEMES = ("http", "https")
DEFAULT_TIMEOUT = 30.0
MAX_TEXT_BYTES = 64 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token: methods, header names
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    expected: frozenset[int] | None  # None: any 2xx
    timeout: float


class ApiCall:
    name = "api_call"
    inline = False

    def check(self, ctx: CheckContext) -> list[Problem]:
        parameters = ctx.task.get("parameters") or {}
        where = f"{ctx.pointer}/parameters"
        return [
            Problem(f"{where}/{key}" if key else where, message)
            for key, message in _parameter_problems(parameters, templated_ok=True)
        ]

    def run(self, call: TaskCall) -> Any:
        request = _parse_request(call.parameters, call.timeout)
        shown_url = mask_url(request.url)
        host, guard = (
            breaker.host_of(request.url),
            breaker.settings_for(call.workspace, call.parameters.get("circuit_breaker")),
        )
        breaker.admit(call.workspace, host, guard, datetime.now(UTC))
        outcome = "no response"
        started = time.monotonic()
        try:
            status, headers, body = _exchange(request, started + request.timeout, call.cancel)
            outcome = str(status)
        except ActionFailed as failure:
            outcome = f"failed ({failure.kind})"
            if failure.retryable:  # the host did not answer: it counts against its circuit
                breaker.record(call.workspace, host, guard, datetime.now(UTC), failure.message)
            raise
        finally:
            call.log.write(
                f"{request.method} {shown_url} -> {outcome} in {time.monotonic() - started:.3f}s"
                f"; headers {json.dumps(mask_headers(request.headers), ensure_ascii=False)}\n"
            )
        trouble = status >= 500 or status == 429  # an answer, but the host is in trouble
        breaker.record(
            call.workspace, host, guard, datetime.now(UTC), f"HTTP {status}" if trouble else None
        )
        if request.expected is None:
            expected_ok, wanted = 200 <= status < 300, "a 2xx status"
        else:
            expected_ok, wanted = status in request.expected, _describe_expected(request.expected)
        if not expected_ok:
            raise ActionFailed(
                f"{request.method} {shown_url} answered {status}, expected {wanted}",
                kind="http_status",
                # Only a server error or "too many requests" may go away by itself.
                retryable=status >= 500 or status == 429,
                details={"status": status},
            )
        return _output(status, headers, body)


def _parameter_problems(
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


def _parse_request(parameters: Mapping[str, Any], task_timeout: float | None) -> _Request:
    problems = _parameter_problems(parameters, templated_ok=False)
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
    return _Request(
        method=str(parameters.get("method", "GET")).upper(),
        url=str(parameters["url"]),
        headers=headers,
        body=body,
        expected=None
        if expected is None
        else frozenset(expected if isinstance(expected, list) else [expected]),
        timeout=float(min(timeouts)) if timeouts else DEFAULT_TIMEOUT,
    )


def _exchange(
    request: _Request, deadline: float, cancel: threading.Event
) -> tuple[int, HTTPMessage, bytes]:
    """Send `request`; the status, headers and body of the (final) response."""
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    outgoing = urllib.request.Request(
        request.url, data=request.body, headers=request.headers, method=request.method
    )
    shown = f"{request.method} {mask_url(request.url)}"
    try:
        try:
            response = opener.open(outgoing, timeout=request.timeout)
        except urllib.error.HTTPError as exc:
            response = exc  # an error status is still an answer, with headers and a body
        with response:
            status = int(response.status)
            body = _receive(response, deadline, cancel, shown)
            headers: HTTPMessage = response.headers
        return status, headers, body
    except TimeoutError:
        raise _timed_out(shown, request.timeout) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _timed_out(shown, request.timeout) from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise ActionFailed(
                f"{shown}: the server's certificate does not verify: {reason.verify_message}",
                kind="tls",
                retryable=False,
            ) from None
        raise ActionFailed(f"{shown}: cannot connect: {reason}", kind="connection") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ActionFailed(
            f"{shown}: the connection failed: {exc or type(exc).__name__}", kind="connection"
        ) from None
    except ValueError as exc:
        # http.client's refusals of what it cannot send (e.g. a URL it cannot encode).
        raise ActionFailed(f"{shown}: cannot be sent: {exc}", retryable=False) from None


class _Body(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


def _receive(response: _Body, deadline: float, cancel: threading.Event, shown: str) -> bytes:
    """The whole body, within the deadline. The socket timeout bounds each wait for data;
    this bounds the sum, so a server sending a byte a second cannot hold the task."""
    chunks: list[bytes] = []
    size = 0
    # read1, not read: read(n) waits for all n bytes, so a slow sender would never
    # give the loop a chance to look at the clock.
    while chunk := response.read1(_CHUNK):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ActionFailed(
                f"{shown}: the response is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB",
                kind="too_large",
                retryable=False,
            )
        if cancel.is_set():
            raise ActionFailed(f"{shown}: cancelled", kind="cancelled", retryable=False)
        if time.monotonic() > deadline:
            raise TimeoutError
        chunks.append(chunk)
    return b"".join(chunks)


def _timed_out(shown: str, timeout: float) -> ActionFailed:
    return ActionFailed(f"{shown}: no complete answer within {timeout:g}s", kind="timeout")


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


def _describe_expected(codes: frozenset[int]) -> str:
    return " or ".join(str(code) for code in sorted(codes))


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only, without secret headers when the host changes."""

    def http_error_302(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
    ) -> Any:
        location = headers.get("location") or headers.get("uri")
        if location:
            scheme = urlsplit(urljoin(req.full_url, location)).scheme.lower()
            # urllib itself would follow ftp:, and answer file: etc. as a plain 3xx.
            if scheme not in SCHEMES:
                fp.close()
                raise ActionFailed(
                    f"{req.get_method()} {mask_url(req.full_url)}: refused a redirect to a"
                    f" '{scheme}:' URL; only http and https are followed",
                    kind="redirect",
                    retryable=False,
                )
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            # Credentials were given for one host; another must not receive them.
            for name in [name for name in new.headers if is_secret_key(name)]:
                del new.headers[name]
        return new


ACTION = ApiCall()
