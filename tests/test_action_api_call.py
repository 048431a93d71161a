"""The ``api_call`` action against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import make_call

from workflow_cli.engine.actions.api_call import ACTION, MAX_TEXT_BYTES
from workflow_cli.engine.actions.base import ActionFailed, CheckContext

Run = Callable[..., Any]


class Server:
    """A local HTTP server; `url(path)` is the address of one of its endpoints."""

    def __init__(self) -> None:
        self.release = threading.Event()  # lets a /slow handler end at teardown
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval: shutdown() waits for the loop to notice, once per test.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.redirect_to = ""
        self.flaky_failing = True  # /flaky answers 503 while this holds
        self.flaky_calls = 0

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _handler_for(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def reply(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def reply_json(self, status: int, value: Any) -> None:
            self.reply(status, json.dumps(value).encode(), "application/json")

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            if path == "/json":
                self.reply(200, b'{"hello": "world", "n": 3}', "application/json", {"X-Thing": "1"})
            elif path == "/text":
                self.reply(200, "plain tëxt".encode(), "text/plain; charset=utf-8")
            elif path == "/big":
                self.reply(200, b"a" * (MAX_TEXT_BYTES + 1000), "text/plain")
            elif path.startswith("/status/"):
                status = int(path.rsplit("/", 1)[1])
                self.reply_json(status, {"error": f"status {status}"})
            elif path == "/slow":
                server.release.wait(2)
                self.reply_json(200, {"late": True})
            elif path == "/trickle":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "40")
                self.end_headers()
                for _ in range(40):
                    if server.release.wait(0.05):
                        return
                    self.wfile.write(b"x")
                    self.wfile.flush()
            elif path == "/echo":
                self.reply_json(
                    200,
                    {
                        "method": self.command,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode("utf-8"),
                    },
                )
            elif path == "/flaky":
                server.flaky_calls += 1
                self.reply_json(503 if server.flaky_failing else 200, {"calls": server.flaky_calls})
            elif path == "/redirect":
                self.reply(302, b"", "text/plain", {"Location": server.redirect_to})
            else:
                self.reply_json(404, {"error": "no such endpoint"})

        do_GET = do_POST = do_PUT = do_DELETE = handle_any

    return Handler


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment would take requests meant for 127.0.0.1 elsewhere."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


@pytest.fixture
def other_server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "task.log"


@pytest.fixture
def run(workspace: Path, log_path: Path) -> Iterator[Run]:
    """Runs one attempt of an api_call task; `timeout` is the task's timeout."""
    with open(log_path, "a", encoding="utf-8") as log:

        def run(timeout: float | None = None, **parameters: Any) -> Any:
            call = make_call(
                workspace, log, log_path, task_id="call", parameters=parameters, timeout=timeout
            )
            try:
                return ACTION.run(call)
            finally:
                log.flush()

        yield run


def fails(run: Run, **parameters: Any) -> ActionFailed:
    with pytest.raises(ActionFailed) as caught:
        run(**parameters)
    return caught.value


def check(**parameters: Any) -> list[str]:
    ctx = CheckContext(
        task_id="call",
        task={"action": "api_call", "parameters": parameters},
        pointer="/tasks/2",
        agent_names=frozenset(),
    )
    return [p.pointer for p in ACTION.check(ctx)]


def closed_port() -> int:
    """A port that was just free on 127.0.0.1, so nothing answers there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- answers --------------------------------------------------------------------------


def test_a_json_answer_is_parsed(run: Run, server: Server) -> None:
    output = run(url=server.url("/json"))
    assert output["status"] == 200
    assert output["json"] == {"hello": "world", "n": 3}
    assert output["text"] is None
    assert output["headers"]["content-type"] == "application/json"
    assert output["headers"]["x-thing"] == "1"
    assert all(name == name.lower() for name in output["headers"])


def test_a_text_answer_is_text(run: Run, server: Server) -> None:
    output = run(url=server.url("/text"))
    assert (output["json"], output["text"]) == (None, "plain tëxt")


def test_long_text_is_cut_at_64_kib(run: Run, server: Server) -> None:
    output = run(url=server.url("/big"))
    assert output["text"] == "a" * MAX_TEXT_BYTES


def test_a_json_body_is_sent_as_json(run: Run, server: Server) -> None:
    output = run(url=server.url("/echo"), method="post", json={"items": [1, "é"]})
    echoed = output["json"]
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == {"items": [1, "é"]}


def test_a_text_body_and_headers_are_sent(run: Run, server: Server) -> None:
    output = run(
        url=server.url("/echo"),
        method="PUT",
        body="line one\n",
        headers={"X-Trace": "abc", "Authorization": "Bearer real-value"},
    )
    echoed = output["json"]
    assert echoed["body"] == "line one\n"
    assert echoed["headers"]["content-type"].startswith("text/plain")
    assert echoed["headers"]["x-trace"] == "abc"
    assert echoed["headers"]["authorization"] == "Bearer real-value"


# -- statuses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (404, False), (400, False)]
)
def test_unexpected_statuses(run: Run, server: Server, status: int, retryable: bool) -> None:
    failure = fails(run, url=server.url(f"/status/{status}"))
    assert failure.kind == "http_status"
    assert failure.retryable is retryable
    assert failure.details == {"status": status}
    assert str(status) in failure.message


def test_an_expected_error_status_is_a_success(run: Run, server: Server) -> None:
    output = run(url=server.url("/status/404"), expected_status=[404, 410])
    assert output["status"] == 404
    assert output["json"] == {"error": "status 404"}


def test_a_2xx_that_was_not_expected_fails_for_good(run: Run, server: Server) -> None:
    failure = fails(run, url=server.url("/json"), expected_status=201)
    assert (failure.kind, failure.retryable, failure.details) == (
        "http_status",
        False,
        {"status": 200},
    )


# -- time-outs and connections ----------------------------------------------------------


def test_a_slow_answer_times_out(run: Run, server: Server) -> None:
    started = time.monotonic()
    failure = fails(run, url=server.url("/slow"), timeout_seconds=0.3)
    assert (failure.kind, failure.retryable) == ("timeout", True)
    assert time.monotonic() - started < 1.0


def test_a_trickling_answer_times_out_as_a_whole(run: Run, server: Server) -> None:
    # Each byte comes well within the timeout; the whole answer would take 2 s.
    started = time.monotonic()
    failure = fails(run, url=server.url("/trickle"), timeout_seconds=0.3)
    assert (failure.kind, failure.retryable) == ("timeout", True)
    assert time.monotonic() - started < 1.0


def test_the_task_timeout_bounds_the_request(run: Run, server: Server) -> None:
    started = time.monotonic()
    failure = fails(run, url=server.url("/slow"), timeout=0.3, timeout_seconds=30)
    assert failure.kind == "timeout"
    assert time.monotonic() - started < 1.0


def test_connection_refused_is_retryable(run: Run) -> None:
    failure = fails(run, url=f"http://127.0.0.1:{closed_port()}/x", timeout_seconds=1)
    assert (failure.kind, failure.retryable) == ("connection", True)


# -- redirects ------------------------------------------------------------------------


def test_redirects_within_http_are_followed(run: Run, server: Server) -> None:
    server.redirect_to = "/json"
    assert run(url=server.url("/redirect"))["json"] == {"hello": "world", "n": 3}


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
def test_redirects_to_other_schemes_are_refused(run: Run, server: Server, target: str) -> None:
    server.redirect_to = target
    failure = fails(run, url=server.url("/redirect"))
    assert (failure.kind, failure.retryable) == ("redirect", False)


def test_secret_headers_do_not_follow_a_redirect_to_another_host(
    run: Run, server: Server, other_server: Server
) -> None:
    server.redirect_to = other_server.url("/echo")
    output = run(
        url=server.url("/redirect"),
        headers={"Authorization": "Bearer s3cr3t", "X-Trace": "abc"},
    )
    received = output["json"]["headers"]
    assert "authorization" not in received
    assert received["x-trace"] == "abc"


# -- the log --------------------------------------------------------------------------


def test_secret_headers_and_query_values_are_masked_in_the_log(
    run: Run, server: Server, log_path: Path
) -> None:
    secrets = {
        "Authorization": "Bearer s3cr3t-auth",
        "Cookie": "session=s3cr3t-cookie",
        "X-API-Key": "s3cr3t-key",
        "X-Auth-Token": "s3cr3t-token",
        "X-Client-Secret": "s3cr3t-client",
    }
    output = run(
        url=server.url("/echo?api_key=s3cr3t-query&page=2"),
        headers={**secrets, "X-Trace": "visible-trace"},
    )
    assert output["json"]["headers"]["x-api-key"] == "s3cr3t-key"  # sent as given
    log = log_path.read_text(encoding="utf-8")
    assert "s3cr3t" not in log
    assert log.count("***") == len(secrets) + 1
    assert "visible-trace" in log
    assert "page=2" in log


def test_one_log_line_per_request_with_method_url_status_duration(
    run: Run, server: Server, log_path: Path
) -> None:
    run(url=server.url("/json"))
    fails(run, url=server.url("/status/500"), method="DELETE")
    fails(run, url=f"http://127.0.0.1:{closed_port()}/gone")
    lines = log_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"GET {server.url('/json')} -> 200 in ")
    assert lines[1].startswith(f"DELETE {server.url('/status/500')} -> 500 in ")
    assert " -> failed (connection) in " in lines[2]


# -- refused parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:80/x", "http://", "http://u:p@h/"],
)
def test_urls_other_than_http_are_refused_at_run_time(run: Run, url: str) -> None:
    failure = fails(run, url=url)
    assert failure.retryable is False
    assert failure.kind == "error"


def test_bad_parameters_are_refused_at_run_time(run: Run, server: Server) -> None:
    url = server.url("/json")
    assert fails(run, url=url, json={}, body="x").retryable is False
    assert fails(run, url=url, headers={"X-A": 1}).retryable is False
    assert fails(run, url=url, headers={"X-A": "a\r\nX-B: b"}).retryable is False
    assert fails(run, url=url, method="GET /x").retryable is False
    assert fails(run, url=url, expected_status="200").retryable is False
    assert fails(run, url=url, timeout_seconds=0).retryable is False


def test_check_accepts_valid_and_templated_tasks() -> None:
    assert check(url="https://api.example.com/v1", method="POST", json={"a": 1}) == []
    assert check(url="{{ params.endpoint }}", headers={"Authorization": "{{ params.t }}"}) == []
    assert check(url="http://h/x", expected_status=[200, 204], timeout_seconds=2.5) == []


def test_check_reports_bad_parameters() -> None:
    assert check() == ["/tasks/2/parameters"]
    assert check(url="ftp://example.com/file") == ["/tasks/2/parameters/url"]
    assert check(url="file:///etc/passwd") == ["/tasks/2/parameters/url"]
    assert check(url="http://h/", json={}, body="x") == ["/tasks/2/parameters"]
    assert check(url="http://h/", headers={"X-A": 5}) == ["/tasks/2/parameters/headers/X-A"]
    assert check(url="http://h/", expected_status=[]) == ["/tasks/2/parameters/expected_status"]
    assert check(url="http://h/", timeout_seconds=-1) == ["/tasks/2/parameters/timeout_seconds"]
    assert check(url="http://h/", method="GE T") == ["/tasks/2/parameters/method"]


# -- circuit breaker --------------------------------------------------------------------

ONE_HOUR = {"failures": 2, "cool_down_seconds": 3600}
NO_WAIT = {"failures": 2, "cool_down_seconds": 0}


def test_the_circuit_opens_after_failures_in_a_row_and_fails_fast(
    run: Run, server: Server, workspace: Path
) -> None:
    for _ in range(2):
        assert fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR).kind == "http_status"
    failure = fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR)
    assert failure.kind == "circuit_open" and failure.retryable
    assert f"127.0.0.1:{server.port} is open after 2 failures" in failure.message
    assert server.flaky_calls == 2  # the open circuit did not call the host
    stored = json.loads((workspace / "monitoring" / "breakers.json").read_text())
    assert stored[f"127.0.0.1:{server.port}"]["state"] == "open"


def test_after_the_cool_down_one_trial_closes_the_circuit(run: Run, server: Server) -> None:
    for _ in range(2):
        fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR)
    server.flaky_failing = False
    assert run(url=server.url("/flaky"), circuit_breaker=NO_WAIT)["status"] == 200
    server.flaky_failing = True  # closed again: one failure does not open it
    assert fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR).kind == "http_status"
    assert server.flaky_calls == 4


def test_a_failed_trial_opens_the_circuit_again(run: Run, server: Server) -> None:
    for _ in range(2):
        fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR)
    assert fails(run, url=server.url("/flaky"), circuit_breaker=NO_WAIT).kind == "http_status"
    assert fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR).kind == "circuit_open"
    assert server.flaky_calls == 3


def test_a_refused_connection_counts_and_other_hosts_are_not_affected(
    run: Run, server: Server
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/"
    for _ in range(2):
        assert fails(run, url=dead, circuit_breaker=ONE_HOUR).kind != "circuit_open"
    assert fails(run, url=dead, circuit_breaker=ONE_HOUR).kind == "circuit_open"
    assert run(url=server.url("/json"), circuit_breaker=ONE_HOUR)["status"] == 200


def test_circuit_breaker_false_turns_it_off(run: Run, server: Server) -> None:
    for _ in range(4):
        assert fails(run, url=server.url("/flaky"), circuit_breaker=False).kind == "http_status"
    assert server.flaky_calls == 4


def test_bad_breaker_settings_fail_for_good(run: Run, server: Server) -> None:
    failure = fails(run, url=server.url("/json"), circuit_breaker={"failures": 0})
    assert not failure.retryable and "circuit_breaker.failures" in failure.message


def test_health_shows_an_open_circuit(cli: Any, run: Run, server: Server) -> None:
    for _ in range(2):
        fails(run, url=server.url("/flaky"), circuit_breaker=ONE_HOUR)
    host = f"127.0.0.1:{server.port}"
    result = cli("health", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["circuits"][host]["state"] == "open"
    text = cli("health").stdout
    assert f"circuit open {host}: 2 failures in a row" in text
