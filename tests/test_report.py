"""``report``: the self-contained HTML page of an instance, checked as text, as parsed
HTML, and as headless Chromium renders it; plus the timeline read from a journal."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.monitor.report.graph_svg import MAX_GRAPH_NODES, wrap_text
from workflow_cli.monitor.report.text import format_seconds
from workflow_cli.store.spans import build_timeline

HOSTILE = "<script>alert(1)</script>"
CHROMIUM_TIMEOUT = 90


# -- a workflow with retries, a failure, an approval and a hostile name -------------------


def write_flaky_agent(workspace: Path) -> None:
    """Agent ``flaky``: fails (exit 7) on its first two calls, then succeeds."""
    script = workspace / "flaky.py"
    script.write_text(
        "import json, pathlib, sys\n"
        "json.load(sys.stdin)\n"
        "counter = pathlib.Path('count.txt')\n"
        "n = int(counter.read_text()) + 1 if counter.exists() else 1\n"
        "counter.write_text(str(n))\n"
        "if n < 3:\n"
        "    sys.exit(7)\n"
        "print(json.dumps({'calls': n}))\n"
    )
    agents = {"agents": {"flaky": {"command": [sys.executable, str(script)]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))


def run_eventful(cli, workspace: Path) -> str:
    """Run a workflow to completion over two runs (it waits for an approval between
    them): a retried task, a failed one, a skipped one, and a task named like a script."""
    write_flaky_agent(workspace)
    tasks = {
        "fetch": {"name": "Fetch data", "action": "agent_task", "agent_id": "echo"},
        "hostile": {
            "name": HOSTILE,
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"x": 1},
            "dependencies": ["fetch"],
        },
        "flaky": {
            "name": "Flaky step",
            "action": "agent_task",
            "agent_id": "flaky",
            "retry_count": 3,
            "retry_delay": 0.05,
            "dependencies": ["fetch"],
        },
        "broken": {
            "name": "Broken step",
            "action": "file_operation",
            "parameters": {"operation": "read", "path": "absent <b>.txt"},
            "critical": False,
            "dependencies": ["fetch"],
        },
        "after_broken": {
            "action": "condition_check",
            "parameters": {"expression": "1"},
            "dependencies": ["broken"],
        },
        "gate": {
            "name": "Sign-off",
            "action": "approval_gate",
            "parameters": {"approvers": ["ann"]},
            "dependencies": ["hostile", "flaky"],
        },
    }
    path = write_definition(
        workspace, tasks, params={"note": "<script>alert('p')</script>", "limit": 5}
    )
    first = cli("run", str(path), "--json")
    assert first.exit_code == 3, first  # waiting for ann
    instance = str(first.json()["id"])
    assert cli("approve", instance, "gate", "--as", "ann").exit_code == 0
    assert cli("resume", instance, "--json").exit_code == 0
    return instance


# Elements that hold no text: the parser does not wait for them to close.
_VOID = frozenset({"meta", "br", "img", "link", "input", "hr", "path", "rect", "line", "circle"})


class Page(HTMLParser):
    """The elements of a page with their attributes, and each text with the elements it
    sits in (innermost last)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[tuple[str, list[tuple[str, dict[str, str]]]]] = []
        self._open: list[tuple[str, dict[str, str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = (tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append((data, list(self._open)))

    def text_in(self, tag: str, cls: str | None = None, section: str | None = None) -> list[str]:
        """Texts inside an element `tag` (with class `cls`) inside section #`section`."""
        found = []
        for data, ancestors in self.texts:
            if section and not any(a.get("id") == section for t, a in ancestors if t == "section"):
                continue
            if any(
                t == tag and (cls is None or cls in a.get("class", "").split())
                for t, a in ancestors
            ):
                found.append(data)
        return found

    def node_names(self) -> dict[str, str]:
        """The name drawn in each node of the graph (its lines joined by spaces)."""
        names: dict[str, list[str]] = {}
        for data, ancestors in self.texts:
            tags = [(t, a.get("class", "")) for t, a in ancestors]
            if ("text", "name") not in tags:
                continue
            for tag, attrs in ancestors:
                if tag == "g" and attrs.get("class") == "node":
                    names.setdefault(attrs["data-task"], []).append(data)
        return {task: " ".join(lines) for task, lines in names.items()}

    def attempts(self) -> dict[str, list[str]]:
        """Each task's timeline bars, by outcome, in drawing order."""
        bars: dict[str, list[str]] = {}
        for tag, attrs in self.elements:
            classes = attrs.get("class", "").split()
            if tag == "g" and classes[:1] == ["attempt"]:
                bars.setdefault(attrs["data-task"], []).append(classes[1])
        return bars


def report(cli, workspace: Path, instance: str, name: str = "report.html") -> tuple[Path, str]:
    out = workspace / name
    result = cli("report", instance, "--html", str(out))
    assert result.exit_code == 0, result
    assert result.stdout.strip() == f"wrote {out} (report of {instance})"
    return out, out.read_text(encoding="utf-8")


# -- the page as text --------------------------------------------------------------------


def test_report_draws_every_attempt_and_task(cli, workspace):
    instance = run_eventful(cli, workspace)
    _, text = report(cli, workspace, instance)
    page = Page(text)
    assert page.attempts() == {
        "fetch": ["completed"],
        "hostile": ["completed"],
        "flaky": ["retried", "retried", "completed"],
        "broken": ["failed"],
        "gate": ["waiting", "completed"],
    }  # after_broken was skipped: it has no attempt
    assert page.node_names() == {
        "fetch": "Fetch data",
        "hostile": HOSTILE,
        "flaky": "Flaky step",
        "broken": "Broken step",
        "after_broken": "after_broken",
        "gate": "Sign-off",
    }
    labels = page.text_in("text", "row-label", section="timeline")
    assert "Flaky step · #3" in labels and f"{HOSTILE} · #1" in labels
    assert "Sign-off · waiting" in labels
    runs = [a for t, a in page.elements if t == "rect" and a.get("class") == "run"]
    assert len(runs) == 2  # the run that stopped to wait, and the resumed one
    cards = dict(zip(page.text_in("div", "label"), page.text_in("div", "value"), strict=False))
    assert cards["tasks completed"] == "4 / 6"  # one failed, one skipped
    decided = page.text_in("td", section="approvals")
    assert "gate" in decided and "ann" in decided
    assert "No compensations ran." in page.text_in("p", "note", section="compensations")
    assert cards["task attempts"] == "7"
    assert cards["runs"] == "2"
    details = page.text_in("td", "detail", section="tasks")
    assert any("absent <b>.txt" in d for d in details)  # the failure's message, as text


def test_report_escapes_everything_and_loads_nothing(cli, workspace):
    instance = run_eventful(cli, workspace)
    _, text = report(cli, workspace, instance)
    assert "<script" not in text.lower()  # the hostile name and parameter are text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;script&gt;alert(&#x27;p&#x27;)&lt;/script&gt;" in text
    assert "absent &lt;b&gt;.txt" in text
    lowered = text.lower()
    for loader in ("src=", "href=", "@import", "<link", "<iframe", "<object", "<img"):
        assert loader not in lowered
    assert "http:" not in lowered and "https:" not in lowered
    assert lowered.count("url(") == lowered.count("url(#arrow)")  # in-page references only
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"" in text


def test_report_shows_the_health_breakdown(cli, workspace):
    from workflow_cli.monitor.health import health_path
    from workflow_cli.store.workspace import Workspace

    instance = run_eventful(cli, workspace)
    _, text = report(cli, workspace, instance)
    record = json.loads(health_path(Workspace(workspace), instance).read_text())
    page = Page(text)
    score = page.text_in("span", "big", section="health")
    assert score == [f"{round(record['score'], 1):g}"]
    assert page.text_in("span", "level", section="health") == [record["level"]]
    from workflow_cli.monitor.explain import PART_TITLES, explain_part

    titles = [PART_TITLES[name] for name in record["parts"]]
    assert [t for t in page.text_in("th", section="health") if t in titles] == titles
    assert "57.1" in page.text_in("b", section="health")  # errors: 3 of 7 attempts failed
    # the words of 'health --explain', with percentages
    explained = page.text_in("div", "explain", section="health")
    errors = explain_part("errors", record["parts"]["errors"]["figures"])
    assert errors[0].startswith("3 failed attempts of 7 (43%)") and errors[0] in explained


def test_report_of_an_instance_never_run(cli, workspace):
    path = write_definition(
        workspace, {"only": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    instance = cli("create", str(path)).stdout.strip()
    _, text = report(cli, workspace, instance)
    page = Page(text)
    assert page.text_in("p", "empty", section="resources") == [
        "No resource history: no resource samples were recorded for this instance "
        "(it has not run, or ran without sampling)."
    ]
    assert page.text_in("p", "empty", section="timeline") == [
        "No task has run yet: there are no attempts to draw."
    ]
    assert page.node_names() == {"only": "only"}


def write_samples(workspace: Path, instance: str, count: int = 12) -> None:
    from workflow_cli.monitor.resources import history_path
    from workflow_cli.store.workspace import Workspace

    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    path = history_path(Workspace(workspace), instance)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for i in range(count):
            sample = {
                "time": (start + timedelta(seconds=i)).isoformat(timespec="milliseconds"),
                "process": {"cpu": 0.1, "rss": 50_000_000 + i * 1_000_000, "memory": 0.02},
                "machine": {"cpu": 0.2 + i * 0.05, "memory": 0.5, "disk": 0.6},
            }
            handle.write(json.dumps(sample) + "\n")


def test_report_draws_the_resource_history(cli, workspace):
    path = write_definition(
        workspace, {"only": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    instance = cli("create", str(path)).stdout.strip()
    write_samples(workspace, instance)
    _, text = report(cli, workspace, instance)
    page = Page(text)
    assert "No resource history" not in text
    lines = [a for t, a in page.elements if t == "polyline" and a.get("class") == "series"]
    assert len(lines) == 5  # runner cpu and memory, machine cpu, memory and disk
    assert all(len(a["points"].split()) == 12 for a in lines)
    rows = page.text_in("tr", section="resources")
    assert "machine CPU" in rows and "75%" in rows  # the peak: 0.2 + 11 * 0.05
    assert "12 samples over 11 s, from 2030-01-01 12:00:00 UTC." in page.text_in(
        "p", "note", section="resources"
    )


def test_report_errors_are_clear(cli, workspace):
    unknown = cli("report", "nope", "--html", str(workspace / "r.html"))
    assert unknown.exit_code == 2
    assert "no instance 'nope'" in unknown.stderr
    assert not (workspace / "r.html").exists()
    path = write_definition(
        workspace, {"only": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    instance = cli("create", str(path)).stdout.strip()
    missing = cli("report", instance, "--html", str(workspace / "no" / "such" / "r.html"))
    assert missing.exit_code == 2
    assert "cannot write the report to" in missing.stderr
    assert "No such file or directory" in missing.stderr
    folder = cli("report", instance, "--html", str(workspace))
    assert folder.exit_code == 2
    assert "it is a folder" in folder.stderr
    for result in (unknown, missing, folder):
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert cli("report", instance).exit_code == 2  # --html is required


def test_report_json_names_the_file(cli, workspace):
    path = write_definition(
        workspace, {"only": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    instance = cli("create", str(path)).stdout.strip()
    result = cli("report", instance[:-3], "--html", "out.html", "--json")
    assert result.exit_code == 0
    assert result.json() == {"id": instance, "html": str(workspace / "out.html")}


# -- the timeline read from the journal --------------------------------------------------

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def event(seconds: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"time": (T0 + timedelta(seconds=seconds)).isoformat(), "type": kind, **fields}


def test_timeline_of_retries_and_inline_attempts():
    events = [
        event(0, "run_started"),
        event(0, "task_started", task="a", attempt=1),
        event(1, "task_retrying", task="a", attempt=1, duration=0.9, error={"message": "no"}),
        event(2, "task_started", task="a", attempt=2),
        event(3, "task_completed", task="a", attempt=2, duration=1.0),
        # an inline action: started and ended in one write, with the time it measured
        event(3, "task_started", task="b", attempt=1),
        event(3, "task_completed", task="b", attempt=1, duration=0.5),
        event(4, "run_ended", state="completed"),
    ]
    timeline = build_timeline(events, now=T0 + timedelta(hours=1), live=False)
    summary = [(s.task, s.attempt, s.outcome, s.start, s.end) for s in timeline.spans]
    assert summary == [
        ("a", 1, "retried", T0, T0 + timedelta(seconds=1)),
        ("a", 2, "completed", T0 + timedelta(seconds=2), T0 + timedelta(seconds=3)),
        ("b", 1, "completed", T0 + timedelta(seconds=3), T0 + timedelta(seconds=3.5)),
    ]
    assert timeline.spans[0].error == "no"
    assert [(r.number, r.state) for r in timeline.runs] == [(1, "completed")]
    assert (timeline.start, timeline.end) == (T0, T0 + timedelta(seconds=4))


def test_timeline_after_a_runner_died_and_while_waiting():
    events = [
        event(0, "run_started"),
        event(0, "task_started", task="a", attempt=1),
        event(2, "task_waiting", task="gate"),
        # the runner died here; a new one recovers the instance
        event(10, "run_started"),
        event(10, "task_started", task="a", attempt=2),
        event(11, "task_completed", task="a", attempt=2, duration=1.0),
        event(11, "run_ended", state="waiting"),
        event(20, "task_started", task="gate", attempt=1),
        event(20, "task_completed", task="gate", attempt=1, duration=0.0),
    ]
    timeline = build_timeline(events, now=T0 + timedelta(hours=1), live=False)
    summary = [(s.task, s.attempt, s.outcome, s.start, s.end) for s in timeline.spans]
    assert summary == [
        ("a", 1, "interrupted", T0, T0 + timedelta(seconds=2)),
        ("gate", 0, "waiting", T0 + timedelta(seconds=2), T0 + timedelta(seconds=20)),
        ("a", 2, "completed", T0 + timedelta(seconds=10), T0 + timedelta(seconds=11)),
        ("gate", 1, "completed", T0 + timedelta(seconds=20), T0 + timedelta(seconds=20)),
    ]
    assert [(r.number, r.state, r.end) for r in timeline.runs] == [
        (1, None, T0 + timedelta(seconds=2)),
        (2, "waiting", T0 + timedelta(seconds=11)),
    ]


def test_timeline_of_a_live_run_reaches_now():
    events = [event(0, "run_started"), event(1, "task_started", task="a", attempt=1)]
    now = T0 + timedelta(seconds=30)
    live = build_timeline(events, now=now, live=True)
    assert [(s.outcome, s.end) for s in live.spans] == [("running", now)]
    assert [(r.state, r.end) for r in live.runs] == [(None, now)]
    dead = build_timeline(events, now=now, live=False)
    assert [(s.outcome, s.end) for s in dead.spans] == [("interrupted", T0 + timedelta(seconds=1))]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0004, "<1 ms"),
        (0.25, "250 ms"),
        (2.54, "2.5 s"),
        (42, "42 s"),
        (185, "3 min 05 s"),
        (7620, "2 h 07 min"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(
    ("text", "width", "lines"),
    [
        ("Statistics of partition 0", 20, ["Statistics of", "partition 0"]),
        ("<script>alert(1)</script>", 10, ["<script>al", "ert(1)</s…"]),
        ("a b c d e f g", 3, ["a b", "c…"]),
        ("short", 20, ["short"]),
    ],
)
def test_wrap_text(text, width, lines):
    assert wrap_text(text, width, 2) == lines


def test_a_graph_too_large_to_draw_is_left_out_plainly(cli, workspace):
    count = MAX_GRAPH_NODES + 1
    tasks = {
        f"t{i}": {"action": "condition_check", "parameters": {"expression": "1"}}
        for i in range(count)
    }
    instance = cli("create", str(write_definition(workspace, tasks))).stdout.strip()
    _, text = report(cli, workspace, instance)
    page = Page(text)
    assert not page.node_names()
    assert page.text_in("p", "note", section="graph")[0].startswith(
        f"The graph has {count} tasks, too many to draw"
    )
    assert len(page.text_in("code", section="tasks")) == count  # the table lists them all


# -- in a real browser -------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    """Debian's headless Chromium: required in CI, else the test is skipped."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def run_chromium(chromium: str, tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile and no network chatter; its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its helper processes go with it on a timeout
    )
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT}s")
    assert process.returncode == 0, stderr[-2000:]
    return stdout


def test_chromium_shows_graph_timeline_and_health(cli, workspace, tmp_path, chromium):
    instance = run_eventful(cli, workspace)
    out, _ = report(cli, workspace, instance)
    dom = run_chromium(chromium, tmp_path, "--dump-dom", out.as_uri())
    page = Page(dom)
    # what the browser built: no script element, the hostile name shown as text
    assert not any(tag == "script" for tag, _ in page.elements)
    names = page.node_names()
    assert (names["fetch"], names["hostile"], names["gate"]) == ("Fetch data", HOSTILE, "Sign-off")
    labels = page.text_in("text", "row-label", section="timeline")
    assert [label for label in labels if label.startswith("Flaky step")] == [
        "Flaky step · #1",
        "Flaky step · #2",
        "Flaky step · #3",
    ]
    assert page.attempts()["flaky"] == ["retried", "retried", "completed"]
    # the counts as the browser shows them: done means completed
    cards = dict(zip(page.text_in("div", "label"), page.text_in("div", "value"), strict=False))
    assert cards["tasks completed"] == "4 / 6" and cards["task attempts"] == "7"
    assert "ann" in page.text_in("td", section="approvals")
    assert page.text_in("span", "level", section="health")[0] in (
        "healthy",
        "warning",
        "critical",
    )
    assert page.text_in("span", "big", section="health")[0].replace(".", "").isdigit()
    # and it paints: a 1200 px wide PNG of the page
    shot = tmp_path / "report.png"
    run_chromium(
        chromium,
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1200,900",
        "--hide-scrollbars",
        out.as_uri(),
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1200
    assert len(data) > 20_000  # a blank page compresses to a few hundred bytes


def test_chromium_shows_no_history_and_the_resource_chart(cli, workspace, tmp_path, chromium):
    path = write_definition(
        workspace, {"only": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )
    never_run = cli("create", str(path)).stdout.strip()
    out, _ = report(cli, workspace, never_run, "never.html")
    page = Page(run_chromium(chromium, tmp_path, "--dump-dom", out.as_uri()))
    assert page.text_in("p", "empty", section="resources")[0].startswith("No resource history")
    sampled = cli("create", str(path)).stdout.strip()
    write_samples(workspace, sampled)
    out, _ = report(cli, workspace, sampled, "sampled.html")
    page = Page(run_chromium(chromium, tmp_path, "--dump-dom", out.as_uri()))
    assert not page.text_in("p", "empty", section="resources")
    series = [a for t, a in page.elements if t == "polyline" and a.get("class") == "series"]
    assert len(series) == 5
    legend = page.text_in("text", "legend-label", section="resources")
    assert legend == [
        "runner CPU",
        "machine CPU",
        "runner memory",
        "machine memory",
        "machine disk",
    ]


def test_long_edges_in_the_graph_go_around_the_boxes(cli, workspace):
    import re

    def check(*deps: str) -> dict[str, Any]:
        return {
            "action": "condition_check",
            "parameters": {"expression": "1"},
            "dependencies": list(deps),
        }

    tasks = {
        "a": check(),
        "b": check("a"),
        "b2": check("a"),
        "c": check("b", "b2"),
        "c2": check("b"),
        "d": check("c", "a"),  # a -> d skips two columns
        "e": check("d", "b2"),  # b2 -> e skips two
    }
    instance = cli("create", str(write_definition(workspace, tasks))).stdout.strip()
    _, text = report(cli, workspace, instance)
    svg = text.split('<svg class="graph"', 1)[1].split("</svg>", 1)[0]
    boxes = {
        task: tuple(float(v) for v in found)
        for task, *found in re.findall(
            r'data-task="([^"]+)"><title>[^<]*</title><rect x="([\d.]+)" y="([\d.]+)" '
            r'width="([\d.]+)" height="([\d.]+)"',
            svg,
        )
    }
    assert set(boxes) == set(tasks)
    edges = dict(re.findall(r'<path class="edge" d="([^"]+)"[^>]*><title>([^<]+)</title>', svg))
    edges = {title: d for d, title in edges.items()}
    for title in ("a → d", "b2 → e"):
        numbers = [float(n) for n in re.findall(r"-?[\d.]+", edges[title])]
        points = list(zip(numbers[::2], numbers[1::2], strict=True))
        horizontal = [(p, q) for p, q in itertools.pairwise(points) if p[1] == q[1] and q[0] > p[0]]
        assert horizontal, title  # it passes the columns between on straight runs
        for (x1, y), (x2, _) in horizontal:
            for task, (bx, by, bw, bh) in boxes.items():
                if x1 < bx + bw and bx < x2:  # the run passes this box's column
                    assert not by <= y <= by + bh, (title, task)


def test_bar_labels_say_the_bars_length_and_charts_fit_the_page(cli, workspace):
    import re

    from workflow_cli.monitor.report.axis import CHART_W

    instance = run_eventful(cli, workspace)
    _, text = report(cli, workspace, instance)
    groups = re.findall(r'<g class="attempt [^"]+"[^>]*><title>([^<]*)</title>(.*?)</g>', text)
    labelled = 0
    for tooltip, body in groups:
        label = re.search(r'class="bar-label"[^>]*>([^<]+)<', body)
        if label:
            labelled += 1
            # the tooltip gives the bar's length first, then any runner-measured time
            assert f", {label.group(1)}" in tooltip.split(" from ")[0], tooltip
            assert f"({label.group(1)} measured" not in tooltip, tooltip
    assert labelled >= 5
    css = text.split("<style>", 1)[1].split("</style>", 1)[0]
    main = re.search(r"main \{ max-width: (\d+)px;[^}]*padding: \d+px (\d+)px", css)
    section = re.search(r"header, section \{[^}]*border: (\d+)px[^}]*padding: \d+px (\d+)px", css)
    assert main and section
    content = int(main[1]) - 2 * int(main[2]) - 2 * int(section[2]) - 2 * int(section[1])
    assert content >= CHART_W  # the charts fit: no sideways scrollbar


def test_a_bar_is_labelled_with_its_own_length():
    import re

    from workflow_cli.monitor.report.axis import time_axis
    from workflow_cli.monitor.report.timeline_svg import _bar
    from workflow_cli.store.spans import AttemptSpan

    start = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    end = start + timedelta(seconds=4)
    span = AttemptSpan("t", 1, start, end, "completed", duration=1.5)  # recorded late
    axis = time_axis([start, end + timedelta(seconds=60)])
    assert axis is not None
    drawn = _bar(span, 40, axis, "Task")
    assert re.search(r'class="bar-label"[^>]*>4.0 s<', drawn)
    assert "completed, 4.0 s (1.5 s measured by the runner)" in drawn
