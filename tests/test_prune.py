"""``delete`` and ``prune``: instances go with their checkpoints, logs and health
records; never one whose runner is alive."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime

from conftest import start_runner, write_definition

PY = sys.executable


def _quick(workspace):
    return write_definition(
        workspace, {"a": {"action": "condition_check", "parameters": {"expression": "1"}}}
    )


def _owned(workspace, instance):
    return [
        workspace / "instances" / instance,
        workspace / "checkpoints" / instance,
        workspace / "monitoring" / "instances" / f"{instance}.json",
    ]


def test_prune_dry_run_then_prune_then_delete(cli, workspace):
    quick = _quick(workspace)
    old = [cli("run", str(quick), "--json").json()["id"] for _ in range(3)]
    waiting = cli("create", str(quick)).stdout.strip()  # created: not pruned by default
    cutoff = datetime.now(UTC).isoformat()
    new = cli("run", str(quick), "--json").json()["id"]
    for instance in old:
        assert all(path.exists() for path in _owned(workspace, instance))

    dry = cli("prune", "--older-than", cutoff, "--dry-run", "--json").json()
    assert sorted(r["id"] for r in dry["removed"]) == sorted(old)
    assert all(r["bytes"] > 0 and r["paths"] for r in dry["removed"])
    assert all(path.exists() for path in _owned(workspace, old[0]))  # nothing went
    text = cli("prune", "--older-than", cutoff, "--dry-run")
    assert f"would remove {old[0]}" in text.stdout and "would remove 3 instance(s)" in text.stdout

    done = cli("prune", "--older-than", cutoff)
    assert done.exit_code == 0 and "removed 3 instance(s)" in done.stdout
    for instance in old:
        assert not any(path.exists() for path in _owned(workspace, instance))
    left = {row["id"] for row in cli("list", "--all", "--json").json()}
    assert left == {waiting, new}
    caches = {".summaries.json"}  # the kept summaries of `list`
    debris = [p.name for p in (workspace / "instances").iterdir() if p.name.startswith(".")]
    assert set(debris) <= caches

    created = cli("prune", "--older-than", cutoff, "--state", "created", "--json").json()
    assert [r["id"] for r in created["removed"]] == [waiting]
    deleted = cli("delete", new[:-1])  # a unique prefix
    assert deleted.exit_code == 0 and f"deleted {new}" in deleted.stdout
    assert cli("list", "--all", "--json").json() == []
    assert cli("delete", new).exit_code == 2  # no such instance now

    assert cli("prune", "--older-than", "soon").exit_code == 2
    assert cli("prune", "--older-than", "7d", "--state", "bogus").exit_code == 2
    assert cli("prune", "--older-than", "2999-01-01T00:00:00").exit_code == 2


def test_an_instance_with_a_live_runner_is_never_removed(cli, workspace):
    script = workspace / "hold.py"
    script.write_text(
        "import os, sys, time\n"
        "for _ in range(600):\n"
        "    if os.path.exists('release'):\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "print('{}')\n"
    )
    (workspace / "agents.yaml").write_text(
        json.dumps({"agents": {"hold": {"command": [PY, str(script)]}}})
    )
    definition = write_definition(workspace, {"h": {"action": "agent_task", "agent_id": "hold"}})
    instance, runner = start_runner(workspace, definition)
    try:
        deadline = time.monotonic() + 60
        while cli("status", instance, "--json").json()["tasks"]["h"]["state"] != "running":
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
        cutoff = datetime.now(UTC).isoformat()
        refused = cli("delete", instance)
        assert refused.exit_code == 4
        assert f"workflow_cli stop {instance}" in refused.stderr
        pruned = cli("prune", "--older-than", cutoff, "--state", "running", "--json").json()
        assert pruned["removed"] == [] and pruned["passed_over"] == [instance]
        assert (workspace / "instances" / instance / "events.jsonl").exists()
        (workspace / "release").write_text("")
        assert runner.wait(timeout=60) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=10)
    assert os.path.isdir(workspace / "instances" / instance)
    assert cli("delete", instance).exit_code == 0  # once the run is over
