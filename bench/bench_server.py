"""The server's figures on a workspace of 1,000 instances: ``GET /api/workflows?limit=50``
and ``GET /api/workflows/{id}/status`` (medians, a real uvicorn on 127.0.0.1 over real
HTTP), the dashboard's first page (``GET /``, signed in) and its agents page
(``GET /agents``), and how soon a journaled event reaches an SSE client.

    .venv/bin/python bench/bench_server.py [--instances 1000] [--runs 21] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Results

from workflow_cli import api
from workflow_cli.store.tokens import add_token

TEMPLATE = {
    "name": "three",
    "description": "three echo steps",
    "parameters": {"n": {"type": "integer", "default": 0}},
    "workflow": {
        "id": "three",
        "name": "three",
        "version": "1",
        "schema_version": "2.0.0",
        "tasks": {
            "a": {
                "action": "agent_task",
                "agent_id": "echo",
                "parameters": {"n": "{{ params.n }}"},
            },
            "b": {"action": "agent_task", "agent_id": "echo", "dependencies": ["a"]},
            "c": {"action": "agent_task", "agent_id": "echo", "dependencies": ["b"]},
        },
    },
}


def timed_get(url: str, token: str, *, page: bool = False) -> float:
    """Milliseconds for one GET and its whole answer: an API call with the token, or
    with `page` a dashboard page with the token in its cookie, as a browser sends it."""
    headers = {"Cookie": f"workflow_cli_token={token}"} if page else {}
    headers.setdefault("Authorization", f"Bearer {token}")
    request = urllib.request.Request(url, headers=headers)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--ran", type=int, default=200, help="how many of them are run")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json-out", type=Path, default=None, help="also save the figures")
    args = parser.parse_args()
    results = Results()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "templates").mkdir()
        (root / "templates" / "three.json").write_text(json.dumps(TEMPLATE))
        ws = api.Workspace(root)
        print(f"making {args.instances} instances, running {args.ran} of them", flush=True)
        ids = [ws.create("three", {"n": i}) for i in range(args.instances)]
        for instance in ids[: args.ran]:
            ws.run(instance)
        _info, token = add_token(ws.store, "bench", "admin", datetime.now().astimezone())
        env = {**os.environ, "WORKFLOW_HOME": str(root)}
        server = subprocess.Popen(
            [sys.executable, "-m", "workflow_cli", "serve", "--port", "0"],
            env=env,
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
            timed_get(f"{url}/api/workflows?limit=50", token)  # warm-up
            samples = [timed_get(f"{url}/api/workflows?limit=50", token) for _ in range(args.runs)]
            results.add(
                "list_50",
                f"GET /api/workflows?limit=50 ({args.instances} instances)",
                statistics.median(samples),
                "ms",
                50,
                samples,
            )
            samples = [
                timed_get(f"{url}/api/workflows/{ids[i % args.ran]}/status", token)
                for i in range(args.runs)
            ]
            results.add(
                "status", "GET /api/workflows/{id}/status", statistics.median(samples), "ms", 50
            )
            timed_get(f"{url}/", token, page=True)  # warm-up: templates compiled
            samples = [timed_get(f"{url}/", token, page=True) for _ in range(args.runs)]
            results.add(
                "dashboard_first_page",
                f"GET / (the dashboard's first page, {args.instances} instances)",
                statistics.median(samples),
                "ms",
                300,
                samples,
            )
            timed_get(f"{url}/agents", token, page=True)
            samples = [timed_get(f"{url}/agents", token, page=True) for _ in range(args.runs)]
            results.add(
                "dashboard_agents",
                "GET /agents (the agents page)",
                statistics.median(samples),
                "ms",
                None,
                samples,
            )
            results.add("sse_latency", *sse_latency(ws, url, token))
        finally:
            server.terminate()
            server.wait(60)
    results.report(args.json_out, instances=args.instances, runs=args.runs)


def sse_latency(ws: api.Workspace, url: str, token: str) -> tuple[str, float, str, float]:
    """Follow a new instance over SSE while it runs here; for each event, the time from
    its journal stamp to its arrival at the client."""
    instance = ws.create("three")
    delays: list[float] = []
    ready = threading.Event()

    def listen() -> None:
        request = urllib.request.Request(
            f"{url}/api/workflows/{instance}/events",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            ready.set()
            for raw in response:
                line = raw.decode()
                if line.startswith("data: "):
                    arrived = time.time()
                    event: dict[str, Any] = json.loads(line[6:])
                    if "time" in event and event.get("type") != "instance_created":
                        stamp = datetime.fromisoformat(event["time"]).timestamp()
                        delays.append((arrived - stamp) * 1000)

    listener = threading.Thread(target=listen)
    listener.start()
    ready.wait(60)
    time.sleep(0.2)  # the stream is attached and polling before the run begins
    ws.run(instance)
    listener.join(60)
    return "an event reaches an SSE client (median ms)", statistics.median(delays), "ms", 100


if __name__ == "__main__":
    main()
