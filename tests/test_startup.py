"""What a run loads: a workflow that does not use a feature does not import its modules.

Each test runs the real CLI in a fresh interpreter (so nothing imported by the test
session counts) and reads which modules that process had loaded when the command ended.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import write_definition

# Runs the CLI in-process with the given arguments, then writes its exit code and the
# names of every module loaded to the file named first.
_PROBE = """
import json, sys
from workflow_cli.cli.app import app
out, args = sys.argv[1], sys.argv[2:]
try:
    app(args, prog_name="workflow_cli")
    code = 0
except SystemExit as exc:
    code = exc.code
with open(out, "w") as handle:
    json.dump({"exit": code, "modules": sorted(sys.modules)}, handle)
"""

ECHO = {"action": "agent_task", "agent_id": "echo", "parameters": {"hello": "world"}}

# Modules of features a one-task run on threads does not use, and what only an
# interactive terminal needs.
UNUSED = (
    "workflow_cli.engine.dask_executor",
    "distributed",
    "workflow_cli.engine.hooks.dispatcher",
    "workflow_cli.engine.approvals",
    "workflow_cli.engine.approvals.gate",
    "jinja2",
    "rich",
    "psutil",  # the runner and the machine are read from /proc; psutil reads child processes
    "workflow_cli.engine.compensation",
    "workflow_cli.engine.cache",
    "workflow_cli.cli.control",
    "workflow_cli.engine.agents.builtin.etl",
    "workflow_cli.engine.agents.builtin.partitions",
    "workflow_cli.engine.agents.builtin.quality",
    "workflow_cli.engine.agents.builtin.approvals",
    "workflow_cli.engine.agents.builtin.records",  # echo writes no file
    "csv",
    "workflow_cli.engine.agents.http_endpoint",  # no agent with a url
    "importlib.resources",  # the package's files are found from its folder
    "zipfile",
)


def run_loaded(workspace: Path, *args: str) -> tuple[Any, set[str], str]:
    """The exit code of ``workflow_cli ARGS`` run in a fresh interpreter, the modules it
    had loaded when it ended, and what it printed."""
    out = workspace.parent / "loaded.json"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), "--home", str(workspace), *args],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(out.read_text(encoding="utf-8"))
    return loaded["exit"], set(loaded["modules"]), done.stdout


def test_a_one_task_run_loads_no_module_of_a_feature_it_does_not_use(workspace: Path) -> None:
    path = write_definition(workspace, {"only": ECHO})
    code, modules, out = run_loaded(workspace, "run", str(path), "--json")
    assert code == 0
    assert "workflow_cli.engine.runner" in modules  # the run did happen in this process
    assert sorted(modules.intersection(UNUSED)) == []
    # and was monitored as every run is: a resource sample, a health record
    instance = json.loads(out)["id"]
    samples = (workspace / "instances" / instance / "resources.jsonl").read_text("utf-8")
    assert len(samples.splitlines()) >= 1
    assert (workspace / "monitoring" / "instances" / f"{instance}.json").is_file()


def test_a_run_with_a_hook_loads_the_hook_dispatcher(workspace: Path) -> None:
    script = workspace / "hook.py"
    script.write_text("open('hooked', 'w').write('yes')\n", encoding="utf-8")
    hooks = [{"events": ["workflow.completed"], "command": f"{sys.executable} {script}"}]
    path = write_definition(workspace, {"only": ECHO}, hooks=hooks)
    code, modules, _ = run_loaded(workspace, "run", str(path), "--json")
    assert code == 0
    assert "workflow_cli.engine.hooks.dispatcher" in modules
    assert (workspace / "hooked").read_text(encoding="utf-8") == "yes"


def test_a_run_that_compensates_loads_compensation(workspace: Path) -> None:
    undo = {"action": "agent_task", "agent_id": "echo", "parameters": {"undo": "a"}}
    fails = {"action": "agent_task", "agent_id": "write_summary", "parameters": {}}
    tasks = {"a": {**ECHO, "compensate": undo}, "b": {**fails, "dependencies": ["a"]}}
    path = write_definition(workspace, tasks, on_failure="compensate")
    code, modules, out = run_loaded(workspace, "run", str(path), "--json")
    assert code == 1
    assert "workflow_cli.engine.compensation" in modules
    instance = json.loads(out)["id"]
    journal = (workspace / "instances" / instance / "events.jsonl").read_text("utf-8")
    assert '"compensation_completed"' in journal


def test_a_run_with_a_cached_task_loads_the_cache(workspace: Path) -> None:
    path = write_definition(workspace, {"only": {**ECHO, "cache": {"ttl_seconds": 60}}})
    code, modules, _ = run_loaded(workspace, "run", str(path), "--json")
    assert code == 0
    assert "workflow_cli.engine.cache" in modules
    assert len(list((workspace / "cache").glob("*.json"))) == 1


def test_a_run_of_a_built_in_agent_loads_its_module_only(workspace: Path) -> None:
    split = {"action": "agent_task", "agent_id": "split_records"}
    task = {**split, "parameters": {"records": [{"n": 1}, {"n": 2}], "partitions": 2}}
    path = write_definition(workspace, {"only": task})
    code, modules, out = run_loaded(workspace, "run", str(path), "--json")
    assert code == 0 and json.loads(out)["state"] == "completed"
    assert "workflow_cli.engine.agents.builtin.partitions" in modules
    assert "workflow_cli.engine.agents.builtin.etl" not in modules


def test_a_run_of_a_url_agent_loads_the_http_agents(workspace: Path) -> None:
    with socket.socket() as closed:  # a port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    agents = {"agents": {"remote": {"url": f"http://127.0.0.1:{port}/x"}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents), encoding="utf-8")
    task = {"action": "agent_task", "agent_id": "remote", "parameters": {}}
    path = write_definition(workspace, {"only": task})
    code, modules, out = run_loaded(workspace, "run", str(path), "--json")
    assert code == 1 and json.loads(out)["state"] == "failed"
    assert "workflow_cli.engine.agents.http_endpoint" in modules


# A command agent that ends once the sampler has written two samples since it started:
# the second was taken wholly while it ran, so it must count it.
_WAITS_FOR_SAMPLES = """
import glob, sys, time
def lines():
    return sum(len(open(p).read().splitlines()) for p in glob.glob(sys.argv[1]))
start = lines()
deadline = time.monotonic() + 60
while lines() < start + 2 and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def test_a_run_that_starts_a_process_samples_it_with_psutil(workspace: Path) -> None:
    script = workspace / "waits.py"
    script.write_text(_WAITS_FOR_SAMPLES, encoding="utf-8")
    pattern = str(workspace / "instances" / "*" / "resources.jsonl")
    agents = {"agents": {"waiter": {"command": [sys.executable, str(script), pattern]}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents), encoding="utf-8")
    task = {"action": "agent_task", "agent_id": "waiter", "parameters": {}}
    path = write_definition(workspace, {"only": task}, monitoring={"sample_interval": 0.1})
    code, modules, out = run_loaded(workspace, "run", str(path), "--json")
    assert code == 0
    assert "psutil" in modules
    instance = json.loads(out)["id"]
    lines = (workspace / "instances" / instance / "resources.jsonl").read_text("utf-8")
    samples = [json.loads(line) for line in lines.splitlines()]
    assert max(sample["process"]["processes"] for sample in samples) >= 2
    assert all(sample["process"]["rss"] > 0 for sample in samples)
