"""Result caching through the real CLI: a hit reuses the output without running the
task and says where it came from; a miss runs it; an old entry (ttl), --no-cache and a
changed input file all run it again; cache list and clear."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Result, write_definition

# A command agent that counts its runs in runs/<task> and answers with its input's length.
AGENT = """\
import json, os, sys
params = json.load(sys.stdin)
os.makedirs("runs", exist_ok=True)
with open(os.path.join("runs", os.environ["WORKFLOW_TASK"]), "a") as handle:
    handle.write("run\\n")
print(json.dumps({"length": len(params.get("text", "")), "text": params.get("text")}))
"""


@pytest.fixture(autouse=True)
def agent(workspace: Path) -> None:
    (workspace / "count.py").write_text(AGENT)
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"count": {"command": [sys.executable, "count.py"]}}})
    )


def runs(workspace: Path, task: str = "measure") -> int:
    path = workspace / "runs" / task
    return len(path.read_text().splitlines()) if path.exists() else 0


def flow(workspace: Path, cache: Any, text: str = "hello") -> Path:
    task = {
        "action": "agent_task",
        "agent_id": "count",
        "parameters": {"text": text},
        "cache": cache,
    }
    return write_definition(workspace, {"measure": task})


def run(cli: Callable[..., Result], path: Path, *more: str) -> dict[str, Any]:
    result = cli("run", str(path), "--json", *more)
    assert result.exit_code == 0, result
    status = cli("status", result.json()["id"], "--json")
    task: dict[str, Any] = status.json()["tasks"]["measure"]
    return {"id": result.json()["id"], **task}


def test_a_hit_reuses_the_output_and_says_where_it_came_from(cli, workspace):
    path = flow(workspace, True)
    first = run(cli, path)
    assert runs(workspace) == 1 and first.get("cached") is None
    second = run(cli, path)
    assert runs(workspace) == 1  # not run again
    assert second["output"] == first["output"] == {"length": 5, "text": "hello"}
    assert second["cached"]["instance"] == first["id"]
    assert second["cached"]["task"] == "measure"
    shown = " ".join(cli("status", second["id"]).stdout.split())  # as one line, unwrapped
    assert f"cached from {first['id']}/measure, key" in shown
    debug = " ".join(cli("debug", second["id"], "measure").stdout.split())
    assert f"cached from {first['id']}/measure, key" in debug


def test_other_parameters_miss_and_no_cache_runs_it(cli, workspace):
    run(cli, flow(workspace, True, "hello"))
    run(cli, flow(workspace, True, "other text"))
    assert runs(workspace) == 2
    again = run(cli, flow(workspace, True, "hello"), "--no-cache")
    assert runs(workspace) == 3 and again.get("cached") is None


def test_an_entry_older_than_its_ttl_is_not_used(cli, workspace):
    path = flow(workspace, {"ttl_seconds": 1})
    run(cli, path)
    entry = next((workspace / "cache").glob("*.json"))
    document = json.loads(entry.read_text())
    document["created_at"] = "2000-01-01T00:00:00+00:00"  # made long ago
    entry.write_text(json.dumps(document))
    run(cli, path)
    assert runs(workspace) == 2


def test_a_changed_input_file_misses(cli, workspace):
    (workspace / "input.txt").write_text("one")
    path = flow(workspace, {"files": ["input.txt"]})
    run(cli, path)
    run(cli, path)
    assert runs(workspace) == 1
    (workspace / "input.txt").write_text("two")
    run(cli, path)
    assert runs(workspace) == 2


def test_a_key_expression_decides_what_counts(cli, workspace):
    task = {
        "action": "agent_task",
        "agent_id": "count",
        "parameters": {"text": "{{ params.text }}", "noise": "{{ params.noise }}"},
        "cache": {"key": "{{ params.text }}"},
    }
    path = write_definition(workspace, {"measure": task}, params={"text": "same", "noise": "a"})
    assert cli("run", str(path), "-p", "noise=a").exit_code == 0
    assert cli("run", str(path), "-p", "noise=b").exit_code == 0
    assert runs(workspace) == 1
    assert cli("run", str(path), "-p", "text=changed").exit_code == 0
    assert runs(workspace) == 2


def test_failed_outputs_are_not_kept(cli, workspace):
    task = {"action": "agent_task", "agent_id": "missing_agent_file", "cache": True}
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"missing_agent_file": {"command": [sys.executable, "nope.py"]}}})
    )
    path = write_definition(workspace, {"measure": task})
    assert cli("run", str(path)).exit_code == 1
    assert not (workspace / "cache").exists() or list((workspace / "cache").iterdir()) == []


def test_cache_list_and_clear(cli, workspace):
    run(cli, flow(workspace, True, "a"))
    run(cli, flow(workspace, True, "bb"))
    listed = cli("cache", "list", "--json").json()
    assert len(listed) == 2 and all(e["task"] == "measure" for e in listed)
    assert "KEY\tFROM\tMADE" in cli("cache", "list").stdout
    kept = cli("cache", "clear", "--older-than", "1h", "--json").json()
    assert kept == {"deleted": []}
    old = next((workspace / "cache").glob("*.json"))
    past = time.time() - 7200
    document = json.loads(old.read_text())
    document["created_at"] = "2000-01-01T00:00:00+00:00"
    old.write_text(json.dumps(document))
    os.utime(old, (past, past))
    cleared = cli("cache", "clear", "--older-than", "1h", "--json").json()
    assert cleared == {"deleted": [document["key"]]}
    assert cli("cache", "clear").stdout.strip() == "deleted 1 cached output(s)"
    assert cli("cache", "list", "--json").json() == []


def test_tasks_may_not_touch_the_cache_folder(cli, workspace):
    run(cli, flow(workspace, True))
    write = {
        "action": "file_operation",
        "parameters": {"operation": "write", "path": "cache/forged.json", "content": "{}"},
    }
    result = cli("run", str(write_definition(workspace, {"w": write}, name="w.json")), "--json")
    assert result.exit_code == 1
    status = cli("status", result.json()["id"], "--json").json()
    assert "engine's own cache/ folder" in status["tasks"]["w"]["error"]["message"]
