"""The web dashboard, opened in headless Chromium (Debian's package, driven by
Playwright) against a real ``workflow_cli serve`` on 127.0.0.1: signing in, the
instances, an instance's page following a run live, approving from the page, the agents
page and delivering from it; and its guards, by plain HTTP."""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Result
from gated import WAIT_LIMIT, write_review_template
from test_server import ROLES, Server, add_token, start_server, stop_server, wait_until

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

PAGE_WAIT_MS = WAIT_LIMIT * 1000


@pytest.fixture
def server(workspace: Path, cli: Callable[..., Result]) -> Iterator[Server]:
    tokens = {name: add_token(cli, name, role) for name, role in ROLES.items()}
    process, url = start_server(workspace)
    try:
        yield Server(url, process, tokens)
    finally:
        stop_server(process)


@pytest.fixture
def browser() -> Iterator[Any]:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def signed_in(browser: Any, server: Server, name: str) -> Any:
    """A page of a new browser context, signed in with `name`'s token."""
    page = browser.new_context().new_page()
    page.set_default_timeout(PAGE_WAIT_MS)
    page.goto(server.url + "/")
    assert urllib.parse.urlsplit(page.url).path == "/login"  # no cookie: sign in first
    page.fill("#token", server.tokens[name])
    page.click("#sign-in")
    page.wait_for_url(server.url + "/")
    return page


def create(server: Server, template: str, params: dict[str, Any]) -> str:
    status, body = server.call(
        "POST", "/api/workflows", "ops", {"template": template, "params": params}
    )
    assert status == 201, body
    return str(body["id"])


def test_signing_in_and_the_list_of_instances(browser: Any, server: Server) -> None:
    first = create(server, "sequential_pipeline", {})
    second = create(server, "approval_chain", {"amount": 900})
    page = browser.new_context().new_page()
    page.set_default_timeout(PAGE_WAIT_MS)
    page.goto(server.url + "/")
    page.fill("#token", "not-a-token")
    page.click("#sign-in")
    assert "unknown or revoked token" in page.inner_text("[role=alert]")
    page = signed_in(browser, server, "viewer1")
    assert "signed in as viewer1 (viewer)" in page.inner_text("nav")
    ids = page.eval_on_selector_all("#instances tr[data-id]", "rows => rows.map(r => r.dataset.id)")
    assert ids == [second, first]  # newest first, ids whole
    page.select_option("select[name=template]", "approval_chain")
    page.click("text=Filter")
    page.wait_for_url("**template=approval_chain**")
    ids = page.eval_on_selector_all("#instances tr[data-id]", "rows => rows.map(r => r.dataset.id)")
    assert ids == [second]
    page.click(f"a[href='/instances/{second}']")
    assert page.inner_text("h1") == second
    assert page.get_attribute("#state", "data-state") == "created"
    assert page.locator("svg").count() >= 1  # the graph


def test_approving_from_the_page_while_it_follows_the_run(
    browser: Any, server: Server, workspace: Path
) -> None:
    instance = create(server, "approval_chain", {"amount": 900})
    assert server.call("POST", f"/api/workflows/{instance}/start", "ops")[0] == 202
    wait_until(
        lambda: (
            server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["state"]
            == "waiting"
        ),
        "the run to wait at the gate",
    )
    viewer = signed_in(browser, server, "viewer1")
    viewer.goto(f"{server.url}/instances/{instance}")
    assert "Your token may not decide approvals" in viewer.inner_text("#gate-level1_approval")
    lead = signed_in(browser, server, "team_lead")
    assert instance in lead.inner_text("#approvals")
    lead.goto(f"{server.url}/instances/{instance}")
    lead.fill("#gate-level1_approval input[name=comment]", "looks fine")
    lead.click("#approve-level1_approval")
    lead.wait_for_url(f"{server.url}/instances/{instance}")
    decided = lead.inner_text("#gate-level1_approval")
    assert "approved by team_lead: looks fine" in decided
    assert lead.locator("#approve-level1_approval").count() == 0  # no second decision
    events = [e for e in journal(workspace, instance) if e["type"] == "approval_recorded"]
    assert [(e["by"], e["comment"]) for e in events] == [("team_lead", "looks fine")]
    # The viewer's page, left open, follows the run that goes on: no reload by the test.
    viewer.goto(f"{server.url}/instances/{instance}")
    assert server.call("POST", f"/api/workflows/{instance}/resume", "ops")[0] == 202
    # The run goes past the first level to the second, which the page shows as it comes.
    viewer.wait_for_selector("#gate-level2_approval")
    states = viewer.eval_on_selector_all(
        "#tasks tr[data-task] .badge", "badges => badges.map(b => b.textContent)"
    )
    assert "completed" in states and "waiting" in states
    viewer.click("#tasks a:has-text('log')")
    assert viewer.locator("h1").inner_text().startswith("Log of ")


def test_the_agents_page_and_a_delivery_from_it(
    browser: Any, server: Server, workspace: Path
) -> None:
    import json

    write_review_template(workspace)
    instance = create(server, "review", {"report": "annual.txt"})
    assert server.call("POST", f"/api/workflows/{instance}/start", "ops")[0] == 202
    wait_until(
        lambda: (
            server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["state"]
            == "waiting"
        ),
        "the run to wait for the reviewer",
    )
    [assigned] = server.call("GET", "/api/agents/reviewer/inbox", "viewer1")[1]
    viewer = signed_in(browser, server, "viewer1")
    viewer.click("#nav-agents")
    viewer.wait_for_url(server.url + "/agents")
    rows = viewer.eval_on_selector_all(
        "#agents tr[data-agent]",
        "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))",
    )
    by_name = {row[0]: row for row in rows}
    assert by_name["reviewer"][1:3] == ["mailbox", "agents.yaml"] and by_name["reviewer"][5] == "1"
    assert by_name["echo"][1:3] == ["builtin", "built in"]
    item = viewer.locator(f"#agent-reviewer article[data-instance='{instance}']")
    assert item.get_attribute("data-task") == "review"
    assert "Read the report; say whether it may go out." in item.inner_text()
    assert item.locator(".attempt").inner_text() == "1"
    assert item.locator(".since").inner_text() == assigned["assigned_at"][:19].replace("T", " ")
    assert json.loads(item.locator("pre.parameters").inner_text()) == {
        "report": "annual.txt",
        "pages": 12,
    }
    assert item.locator("form").count() == 0
    assert "Your token may not deliver results." in item.inner_text()
    ops = signed_in(browser, server, "ops")
    ops.goto(server.url + "/agents")
    form = f"#agent-reviewer article[data-instance='{instance}'] form"
    # An output the task's output_schema refuses: the CLI's message, nothing recorded.
    ops.fill(f"{form} textarea[name=output]", '{"approved": "yes"}')
    ops.click(f"{form} button")
    assert "/approved: 'yes' is not of type 'boolean'" in ops.inner_text("[role=alert]")
    assert not [e for e in journal(workspace, instance) if e["type"] == "agent_delivered"]
    ops.goto(server.url + "/agents")
    ops.fill(f"{form} textarea[name=output]", '{"approved": true, "note": "from the page"}')
    ops.click(f"{form} button")
    ops.wait_for_url(f"{server.url}/instances/{instance}")
    # The instance was resumed with the delivery; its page follows the run to its end.
    ops.wait_for_selector("#state[data-state=completed]")
    [delivered] = [e for e in journal(workspace, instance) if e["type"] == "agent_delivered"]
    assert (delivered["agent"], delivered["by"], delivered["via"]) == ("reviewer", "ops", "api")
    assert delivered["output"] == {"approved": True, "note": "from the page"}
    requests = [e["by"] for e in journal(workspace, instance) if e["type"] == "run_requested"]
    assert requests == ["ops", "ops"]  # started, then resumed from the page
    ops.goto(server.url + "/agents")
    assert "Nothing waits for reviewer." in ops.inner_text("#agent-reviewer")


def test_sending_an_event_from_the_page(
    browser: Any, server: Server, workspace: Path, cli: Callable[..., Result]
) -> None:
    from conftest import write_definition

    wait = {
        "action": "wait_for_event",
        "parameters": {"event": "paid", "filter": "event.data.order == 7"},
    }
    then = {"action": "condition_check", "dependencies": ["pay"],
            "parameters": {"expression": "steps.pay.output.amount"}}  # fmt: skip
    path = write_definition(workspace, {"pay": wait, "ship": then})
    instance = cli("create", str(path)).stdout.strip()
    assert cli("start", instance).exit_code == 3
    viewer = signed_in(browser, server, "viewer1")
    viewer.goto(f"{server.url}/instances/{instance}")
    shown = viewer.inner_text("#wait-pay")
    assert "paid" in shown and "event.data.order == 7" in shown
    assert "Your token may not send events" in shown
    ops = signed_in(browser, server, "ops")
    ops.goto(f"{server.url}/instances/{instance}")
    ops.fill("#wait-pay textarea[name=data]", "{not json")
    ops.click("#signal-pay")
    assert "data is not JSON" in ops.inner_text("body")
    assert not [e for e in journal(workspace, instance) if e["type"] == "signal_received"]
    ops.goto(f"{server.url}/instances/{instance}")
    ops.fill("#wait-pay textarea[name=data]", '{"order": 7, "amount": 12}')
    ops.click("#signal-pay")
    ops.wait_for_url(f"{server.url}/instances/{instance}")
    [sent] = [e for e in journal(workspace, instance) if e["type"] == "signal_received"]
    assert sent["by"] == "ops" and sent["data"] == {"order": 7, "amount": 12}
    assert [e["task"] for e in journal(workspace, instance) if e["type"] == "signal_consumed"] == [
        "pay"
    ]
    ops.click("#resume")
    wait_until(
        lambda: (
            server.call("GET", f"/api/workflows/{instance}/status", "viewer1")[1]["state"]
            == "completed"
        ),
        "the run to complete",
    )


def journal(workspace: Path, instance: str) -> list[dict[str, Any]]:
    import json

    path = workspace / "instances" / instance / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def request(
    server: Server, method: str, path: str, *, token: str | None = None, **headers: str
) -> tuple[int, dict[str, str], str]:
    if token is not None:
        headers["Cookie"] = f"workflow_cli_token={server.tokens[token]}"
    data = b"task=level1_approval" if method == "POST" else None
    if data:
        headers["Content-Type"] = "application/x-www-form-urlencoded"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    call = urllib.request.Request(server.url + path, data, headers, method=method)
    try:
        with opener.open(call, timeout=WAIT_LIMIT) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


def test_the_dashboards_guards(server: Server) -> None:
    instance = create(server, "approval_chain", {"amount": 900})
    status, headers, _ = request(server, "GET", f"/instances/{instance}")
    assert status == 303 and headers["location"] == f"/login?next=/instances/{instance}"
    status, headers, body = request(server, "GET", "/", token="viewer1")
    assert status == 200 and instance in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "<script src=" in body and "<script>" not in body  # no inline script
    # A form sent from another site's page is refused, even with the cookie.
    status, _, body = request(
        server,
        "POST",
        f"/instances/{instance}/approve",
        token="team_lead",
        Origin="http://elsewhere.example",
    )
    assert status == 403 and "own pages only" in body
    # A viewer may not decide; an approver may, as themselves (the gate is not waiting yet).
    status, _, _ = request(server, "POST", f"/instances/{instance}/approve", token="viewer1")
    assert status == 403
    status, _, body = request(server, "POST", f"/instances/{instance}/approve", token="team_lead")
    assert status == 409 and "Refused" in body
    # Logs only of the instance's own tasks; sign-in sends nowhere but this server.
    status, _, _ = request(server, "GET", f"/instances/{instance}/logs/..%2F..%2Fx", token="root")
    assert status == 404
    status, _, body = request(server, "GET", "/login?next=//elsewhere.example/")
    assert 'name="next" value="/"' in body
    # The agents page: only signed in; delivering from it only with an operator's token,
    # from its own pages.
    status, headers, _ = request(server, "GET", "/agents")
    assert status == 303 and headers["location"] == "/login?next=/agents"
    status, _, body = request(server, "GET", "/agents", token="viewer1")
    assert status == 200 and 'id="agents"' in body and "<script>" not in body
    status, _, _ = request(server, "POST", "/agents/reviewer/deliver", token="viewer1")
    assert status == 403
    status, _, body = request(
        server,
        "POST",
        "/agents/reviewer/deliver",
        token="ops",
        Origin="http://elsewhere.example",
    )
    assert status == 403 and "own pages only" in body
