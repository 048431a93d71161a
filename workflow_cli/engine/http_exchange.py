"""HTTP requests as ``api_call`` and ``http`` agents make them: one request sent with a
deadline for the whole answer, the host's circuit breaker consulted and told the outcome,
and one line in the task's log with secret header values and URL query values masked.

Redirects are followed, but only to ``http``/``https`` URLs, and secret headers are not
sent on to another host. Proxies named by ``http_proxy``/``https_proxy`` are used, except
for this machine itself (``localhost``, 127.0.0.0/8, ``::1``), which is always reached
directly.
Failures are `ActionFailed` of kind ``timeout`` and ``connection`` (retried), ``tls``,
``redirect``, ``too_large``, ``cancelled``, ``circuit_open`` and ``http_status``
(`require_status`; retried for 5xx and 429 only).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.client import HTTPMessage
from typing import IO, Any, Protocol
from urllib.parse import urljoin, urlsplit

from workflow_cli.engine import breaker
from workflow_cli.engine.actions.base import ActionFailed, TaskCall
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.secrets import is_secret_key, mask_headers, mask_url

SCHEMES = ("http", "https")
MAX_BODY_BYTES = 10 * 1024 * 1024
_CHUNK = 64 * 1024


@readonly_dataclass
class HttpRequest:
    """One request to send: what `send_request` takes."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    expected: frozenset[int] | None  # None: any 2xx
    timeout: float


def send_request(
    call: TaskCall, request: HttpRequest, circuit_breaker: Any = None
) -> tuple[int, HTTPMessage, bytes]:
    """Send `request` for one attempt of a task, through its host's circuit breaker
    (settings: `circuit_breaker`, as ``breaker.settings_for`` reads them); the status,
    headers and body of the answer, whatever its status."""
    shown_url = mask_url(request.url)
    host = breaker.host_of(request.url)
    guard = breaker.settings_for(call.workspace, circuit_breaker)
    breaker.admit(call.workspace, host, guard, datetime.now(UTC))
    outcome = "no response"
    started = time.monotonic()
    try:
        status, headers, body = exchange(request, started + request.timeout, call.cancel)
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
    return status, headers, body


def require_status(request: HttpRequest, status: int) -> None:
    """Fail the attempt (kind ``http_status``) unless `status` is one `request` expects
    (by default any 2xx); retryable for a server error or 429 only."""
    if request.expected is None:
        expected_ok, wanted = 200 <= status < 300, "a 2xx status"
    else:
        expected_ok = status in request.expected
        wanted = " or ".join(str(code) for code in sorted(request.expected))
    if not expected_ok:
        raise ActionFailed(
            f"{request.method} {mask_url(request.url)} answered {status}, expected {wanted}",
            kind="http_status",
            # Only a server error or "too many requests" may go away by itself.
            retryable=status >= 500 or status == 429,
            details={"status": status},
        )


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exchange(
    request: HttpRequest, deadline: float, cancel: threading.Event
) -> tuple[int, HTTPMessage, bytes]:
    """Send `request`; the status, headers and body of the (final) response."""
    handlers: list[urllib.request.BaseHandler] = [HttpOnlyRedirects()]
    if is_loopback(request.url):  # this machine itself: never through a proxy
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
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


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80)


class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
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
