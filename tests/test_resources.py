"""Resource sampling: settings, samples and their history, threshold crossings and the
alerts and checkpoints they cause, and monitoring around a real run.

Thresholds are crossed by setting them low (0.0 is crossed by any reading), never by
loading the machine."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.engine import lifecycle
from workflow_cli.errors import WorkspaceError
from workflow_cli.monitor.alerts import read_alerts
from workflow_cli.monitor.resources import (
    DEFAULT_THRESHOLDS,
    MIN_CPU_SPAN,
    Crossing,
    ResourceSampler,
    load_workspace_monitoring,
    merge_peaks,
    monitor_settings,
    read_history,
)
from workflow_cli.monitor.session import monitored_run
from workflow_cli.store.checkpoints import list_checkpoints
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace


def utc_now() -> datetime:
    return datetime.now(UTC)


def echo_tasks(n: int = 3) -> dict[str, Any]:
    names = [f"t{i}" for i in range(n)]
    return {
        name: {
            "action": "agent_task",
            "agent_id": "echo",
            "parameters": {"i": i},
            "dependencies": [names[i - 1]] if i else [],
        }
        for i, name in enumerate(names)
    }


def new_instance(workspace: Path, **extra: Any) -> tuple[Workspace, str]:
    path = write_definition(workspace, echo_tasks(), **extra)
    ws = Workspace(workspace)
    return ws, lifecycle.create(ws, str(path), [], utc_now)


LOW = {"warning": 0.0, "critical": 1.0}  # every reading crosses warning, none critical
NEVER = {"warning": 2.0, "critical": 2.0}  # out of reach: no reading crosses it
ZERO = {"warning": 0.0, "critical": 0.0}  # every reading is critical


# -- settings -------------------------------------------------------------------------


def test_defaults():
    settings = monitor_settings({}, {})
    assert settings.thresholds == DEFAULT_THRESHOLDS
    assert settings.thresholds["cpu"] == {"warning": 0.8, "critical": 0.9}
    assert settings.thresholds["memory"] == {"warning": 0.7, "critical": 0.85}
    assert settings.thresholds["disk"] == {"warning": 0.8, "critical": 0.9}
    assert settings.sample_interval == 1.0


def test_definition_over_workspace_config_over_defaults(workspace):
    (workspace / "workflow_cli.yaml").write_text(
        "monitoring:\n"
        "  sample_interval: 2\n"
        "  stuck_after: 60\n"
        "  thresholds:\n"
        "    cpu: {warning: 0.5, critical: 0.6}\n"
        "    memory: {critical: 0.95}\n"
    )
    block = load_workspace_monitoring(Workspace(workspace))
    shared = monitor_settings({}, block)
    assert shared.sample_interval == 2.0
    assert shared.stuck_after == 60.0
    assert shared.thresholds["cpu"] == {"warning": 0.5, "critical": 0.6}
    assert shared.thresholds["memory"] == {"warning": 0.7, "critical": 0.95}
    own = monitor_settings(
        {"monitoring": {"sample_interval": 0.5, "thresholds": {"cpu": {"warning": 0.3}}}},
        block,
    )
    assert own.sample_interval == 0.5
    assert own.thresholds["cpu"] == {"warning": 0.3, "critical": 0.6}
    assert own.thresholds["disk"] == DEFAULT_THRESHOLDS["disk"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("monitoring: [1]\n", "monitoring must be a mapping"),
        ("monitoring: {thresholds: {gpu: {warning: 0.5}}}\n", "unknown metric 'gpu'"),
        ("monitoring: {thresholds: {cpu: {alarm: 0.5}}}\n", "unknown level 'alarm'"),
        ("monitoring: {sample_interval: 0.01}\n", "sample_interval must be"),
        ("monitoring: {colour: red}\n", "unknown key(s) colour"),
        ("monitoring: {thresholds: {cpu: [\n", "not valid YAML"),
    ],
)
def test_bad_workspace_config(workspace, text, message):
    (workspace / "workflow_cli.yaml").write_text(text)
    with pytest.raises(WorkspaceError, match=re_escape(message)):
        load_workspace_monitoring(Workspace(workspace))


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_warning_above_critical_is_refused():
    with pytest.raises(WorkspaceError, match=r"cpu warning 0\.95 is above its critical level"):
        monitor_settings({"monitoring": {"thresholds": {"cpu": {"warning": 0.95}}}}, {})


# -- sampling -------------------------------------------------------------------------


def test_a_sample_of_the_process_tree_and_the_machine(workspace):
    ws, instance = new_instance(workspace)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        sampler = ResourceSampler(
            ws, instance, clock=utc_now, thresholds={m: NEVER for m in DEFAULT_THRESHOLDS}
        )
        sampler.start(background=False)
        sample = sampler.sample_once()
        sampler.stop()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    process, machine = sample["process"], sample["machine"]
    assert process["processes"] >= 2  # this process and its child
    assert process["rss"] > 0 and process["threads"] >= 1
    for value in (process["cpu"], process["memory"], *(machine[m] for m in ("cpu", "memory"))):
        assert 0.0 <= value <= 1.0
    assert 0.0 < machine["disk"] <= 1.0
    assert machine["net_sent"] >= 0 and machine["net_recv"] >= 0
    history = read_history(ws, instance)
    assert len(history) == 1  # no thread: only the sample taken here
    assert history[0] == json.loads(json.dumps(sample))
    assert sampler.errors == []
    assert read_alerts(ws) == []
    offset, peaks = sampler.progress
    assert offset == (workspace / "instances" / instance / "resources.jsonl").stat().st_size
    assert peaks["samples"] == 1
    assert peaks["process_rss"] >= process["rss"]


def test_history_skips_a_torn_last_line(workspace):
    ws, instance = new_instance(workspace)
    good = {"time": "t", "process": {"cpu": 0.1}, "machine": {"cpu": 0.2, "memory": 0.3}}
    path = workspace / "instances" / instance / "resources.jsonl"
    path.write_text(json.dumps(good) + "\n" + '{"time": "t2", "proc')
    assert read_history(ws, instance) == [good]
    peaks = merge_peaks({}, read_history(ws, instance))
    assert peaks == {"cpu": 0.1, "memory": 0.3, "machine_cpu": 0.2, "samples": 1}


def test_an_alert_once_per_crossing_not_per_sample(workspace):
    ws, instance = new_instance(workspace)
    critical: list[Crossing] = []
    sampler = ResourceSampler(
        ws,
        instance,
        clock=utc_now,
        thresholds={"cpu": NEVER, "memory": LOW, "disk": NEVER},
        on_critical=critical.append,
        cooldown=0,
    )
    sampler.start(background=False)
    for _ in range(3):
        sampler.sample_once()
    assert [(a["metric"], a["level"]) for a in read_alerts(ws)] == [("memory", "warning")]
    sampler.thresholds = {"cpu": NEVER, "memory": NEVER, "disk": NEVER}  # back below
    sampler.sample_once()
    sampler.thresholds = {"cpu": NEVER, "memory": LOW, "disk": NEVER}  # crossed again
    sampler.sample_once()
    sampler.stop()
    alerts = read_alerts(ws)
    assert [(a["metric"], a["level"]) for a in alerts] == [("memory", "warning")] * 2
    alert = alerts[0]
    assert alert["instance"] == instance and alert["kind"] == "resource"
    assert alert["threshold"] == 0.0 and 0 < alert["value"] <= 1
    assert "machine memory at" in alert["message"] and "warning threshold 0%" in alert["message"]
    assert critical == []


def test_a_crossing_again_within_the_cooldown_makes_no_second_alert(workspace):
    ws, instance = new_instance(workspace)
    now = [0.0]
    sampler = ResourceSampler(
        ws,
        instance,
        clock=utc_now,
        thresholds={"cpu": NEVER, "memory": LOW, "disk": NEVER},
        cooldown=300.0,
        monotonic=lambda: now[0],
    )
    sampler.start(background=False)
    for at, thresholds in [
        (0.0, LOW),  # crosses: an alert
        (10.0, NEVER),  # back below
        (20.0, LOW),  # crosses again within 300 s: no alert
        (30.0, NEVER),
        (400.0, LOW),  # after the cooldown: an alert
    ]:
        now[0] = at
        sampler.thresholds = {"cpu": NEVER, "memory": thresholds, "disk": NEVER}
        sampler.sample_once()
    sampler.stop()
    assert [(a["metric"], a["level"]) for a in read_alerts(ws)] == [("memory", "warning")] * 2


def test_cpu_thresholds_apply_to_the_runs_own_processes_not_the_machine(workspace):
    """A busy machine is not a busy run: a program outside the run's process tree
    spinning a core never makes a cpu alert for the run."""
    ws, instance = new_instance(workspace)
    idle = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert idle.stdout is not None and idle.stdout.readline() == "ready\n"  # started up
        sampler = ResourceSampler(
            ws,
            instance,
            clock=utc_now,
            pid=idle.pid,  # the "run" is the idle process
            thresholds={"cpu": {"warning": 0.05, "critical": 0.1}, "memory": NEVER, "disk": NEVER},
        )
        sampler.start(background=False)
        samples = []
        for _ in range(3):
            time.sleep(MIN_CPU_SPAN + 0.1)  # CPU shares are judged over at least this long
            samples.append(sampler.sample_once())
        sampler.stop()
    finally:
        hog.kill()
        idle.kill()
        hog.wait()
        idle.wait()
    assert max(s["machine"]["cpu"] for s in samples) > 0.1  # the hog was seen
    assert all(s["process"]["cpu"] < 0.05 for s in samples)
    assert read_alerts(ws) == []


def test_a_critical_crossing_calls_on_critical_once(workspace):
    ws, instance = new_instance(workspace)
    critical: list[Crossing] = []
    sampler = ResourceSampler(
        ws,
        instance,
        clock=utc_now,
        thresholds={"cpu": NEVER, "memory": NEVER, "disk": ZERO},
        on_critical=critical.append,
    )
    sampler.start(background=False)
    sampler.sample_once()
    sampler.sample_once()
    sampler.stop()
    assert [(c.metric, c.level, c.threshold) for c in critical] == [("disk", "critical", 0.0)]
    assert [(a["metric"], a["level"]) for a in read_alerts(ws)] == [("disk", "critical")]


def test_a_failing_callback_does_not_stop_sampling(workspace):
    ws, instance = new_instance(workspace)

    def explode(crossing: Crossing) -> None:
        raise RuntimeError("no checkpoint today")

    sampler = ResourceSampler(
        ws,
        instance,
        clock=utc_now,
        thresholds={"cpu": NEVER, "memory": NEVER, "disk": ZERO},
        on_critical=explode,
    )
    sampler.start(background=False)
    sampler.sample_once()
    sampler.stop()
    assert sampler.errors == ["on critical disk: RuntimeError: no checkpoint today"]
    assert len(read_history(ws, instance)) == 1


def test_the_thread_samples_until_stopped(workspace):
    ws, instance = new_instance(workspace)
    sampler = ResourceSampler(ws, instance, clock=utc_now, interval=0.1)
    sampler.start()
    sampler.stop()
    sampler.stop()  # twice is fine
    assert sampler.errors == []
    assert len(read_history(ws, instance)) >= 1  # at least the last sample, at stop()
    assert sampler.cpu_seconds > 0


# -- around a real run ----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.calls = 0
        self.types: list[str] = []

    def on_events(self, events: list[dict[str, Any]], state: State) -> None:
        self.calls += 1
        self.types += [e["type"] for e in events]


def test_a_monitored_run_samples_alerts_checkpoints_and_reports(workspace):
    thresholds = {"memory": LOW, "disk": ZERO}  # cpu keeps its defaults
    ws, instance = new_instance(
        workspace, monitoring={"sample_interval": 0.1, "thresholds": thresholds}
    )
    inner = Recorder()
    ticks = itertools.count(0.0, 0.5)  # a fake monotonic clock: 0.5 s per reading
    with monitored_run(ws, instance, utc_now, inner, monotonic=lambda: next(ticks)) as reporter:
        outcome = lifecycle.run(ws, instance, clock=utc_now, reporter=reporter)
    assert outcome.state == "completed"
    assert reporter.errors == []
    assert "run_ended" in inner.types  # every event was passed on
    # Refreshed during the run, but not on every batch of events.
    assert 1 <= reporter.refreshes <= inner.calls // 2 + 1
    assert len(read_history(ws, instance)) >= 1
    alerts = read_alerts(ws, instance=instance)
    kinds = sorted((a["metric"], a["level"]) for a in alerts if a["metric"] in ("memory", "disk"))
    assert kinds == [("disk", "critical"), ("memory", "warning")]
    checkpoints = [c for c in list_checkpoints(ws, instance) if c.kind != "start"]
    assert {c.kind for c in checkpoints} == {"resource"}
    assert any((c.label or "").startswith("disk ") for c in checkpoints)
    journal = (workspace / "instances" / instance / "events.jsonl").read_text()
    assert '"type":"checkpoint_created"' in journal and '"kind":"resource"' in journal
    record = json.loads((workspace / "monitoring" / "instances" / f"{instance}.json").read_text())
    assert record["state"] == "completed"
    resources = record["parts"]["resources"]
    assert resources["figures"]["samples"] >= 1
    assert resources["figures"]["thresholds"]["disk"] == ZERO
    assert resources["score"] < 100  # disk at or above its critical level
    summary = json.loads((workspace / "monitoring" / "health.json").read_text())
    assert summary["instances"]["by_state"]["completed"] == 1
    assert (workspace / "monitoring" / "metrics.prom").read_text().startswith("# HELP")


def test_monitoring_with_default_thresholds_through_the_cli(workspace, cli):
    ws, instance = new_instance(workspace)
    with monitored_run(ws, instance, utc_now, None) as reporter:
        outcome = lifecycle.run(ws, instance, clock=utc_now, reporter=reporter)
    assert outcome.state == "completed" and reporter.errors == []
    result = cli("health", instance, "--explain")
    assert result.exit_code == 0, result
    assert "samples" in result.stdout and "cpu peak" in result.stdout


def test_nothing_is_monitored_while_another_runner_holds_the_instance(workspace):
    from workflow_cli.errors import LockHeldError
    from workflow_cli.store.runlock import RunLock

    ws, instance = new_instance(workspace)
    lock = RunLock(workspace / "instances" / instance)
    lock.acquire(instance)
    try:
        with (
            pytest.raises(LockHeldError),
            monitored_run(ws, instance, utc_now, None) as reporter,
        ):
            lifecycle.run(ws, instance, clock=utc_now, reporter=reporter)
    finally:
        lock.release()
    assert not (workspace / "instances" / instance / "resources.jsonl").exists()


def test_the_machine_and_this_process_read_as_psutil_reads_them(workspace):
    import os

    import psutil

    from workflow_cli.monitor import machine

    assert machine.cpu_count() == psutil.cpu_count()
    assert machine.memory().total == psutil.virtual_memory().total
    assert abs(machine.memory().percent - psutil.virtual_memory().percent) <= 5
    found, theirs = machine.disk(str(workspace)), psutil.disk_usage(str(workspace))
    assert found.total == theirs.total and abs(found.percent - theirs.percent) <= 1
    times = machine.cpu_times()
    assert machine.cpu_total(times) >= machine.cpu_idle(times) > 0
    use, process = machine.ProcessUse(os.getpid()), psutil.Process()
    cpu, rss, threads = use.read()
    assert cpu == 0.0  # the first reading is the baseline, as psutil's
    assert threads == process.num_threads()
    assert abs(rss - process.memory_info().rss) < 64 * 2**20
    with subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE) as child:
        try:
            assert machine.has_children(os.getpid()) in (True, None)
        finally:
            child.communicate(b"\n", timeout=30)
