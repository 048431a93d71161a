"""The Dask executor on a real cluster: a ``dask scheduler`` and two ``dask worker``
processes on 127.0.0.1, started here and killed at the end.

The command agent appends one line per execution (task, the pid of its parent — the
worker that started it — and its own pid) to ``runs.txt``, so the tests can tell where
each task ran and how often. Tasks given a ``gate`` wait for that file to exist (at
most a minute), which holds them in flight while a test kills something.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import Result, write_definition
from test_monitor import _frame

from workflow_cli.cli.context import utc_now
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.workspace import Workspace

WAIT_LIMIT = 60.0  # an upper bound on every wait, never a measure
POLL = 0.05

AGENT = """\
import json, os, sys, time

task = os.environ["WORKFLOW_TASK"]
params = json.load(sys.stdin)
fd = os.open("runs.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.write(fd, f"{task} {os.getppid()} {os.getpid()}\\n".encode())
os.close(fd)
gate = params.get("gate")
deadline = time.monotonic() + 60
while gate and not os.path.exists(gate) and time.monotonic() < deadline:
    time.sleep(0.02)
print(json.dumps({"task": task, "n": params.get("n")}))
"""

AGENTS = "agents:\n  work:\n    command: [" + json.dumps(sys.executable) + ", agent.py]\n"


def wait_until(condition: Callable[[], Any], what: str, limit: float = WAIT_LIMIT) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(POLL)
    raise AssertionError(f"timed out after {limit:g}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A Dask scheduler and its workers, each a process of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.url = f"dask://127.0.0.1:{self.port}"
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.scheduler = self._spawn(
            "scheduler",
            ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"],
        )
        import distributed

        self.client = wait_until(self._connect, "the scheduler", 30)
        self.distributed = distributed

    def _connect(self) -> Any:
        import distributed

        try:
            return distributed.Client(self.address, timeout=2, set_as_default=False)
        except OSError:
            return None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(
            name,
            [
                "worker",
                self.address,
                "--nthreads",
                "2",
                "--no-dashboard",
                "--no-nanny",
                "--name",
                name,
            ],
        )

    def ensure_workers(self, count: int = 2) -> None:
        """Two live workers (a killed one is replaced), known to the scheduler."""
        for name, process in list(self.workers.items()):
            if process.poll() is not None:
                del self.workers[name]
        index = 0
        while len(self.workers) < count:
            index += 1
            if f"w{index}" not in self.workers:
                self.start_worker(f"w{index}")
        pids = {p.pid for p in self.workers.values()}
        wait_until(lambda: set(self.worker_addresses()) == pids, "the workers", 30)

    def worker_addresses(self) -> dict[int, str]:
        """The address of each worker the scheduler knows, by its pid (asked of it)."""
        return {pid: address for address, pid in self.client.run(os.getpid).items()}

    def address_of(self, name: str) -> str:
        return self.worker_addresses()[self.workers[name].pid]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)
        for process in [*self.workers.values(), self.scheduler]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        running.ensure_workers()
        yield running
    finally:
        running.close()


@pytest.fixture
def dask(cluster: Cluster, workspace: Path) -> Cluster:
    cluster.ensure_workers()
    (workspace / "agent.py").write_text(AGENT)
    (workspace / "agents.yaml").write_text(AGENTS)
    return cluster


def task(*deps: str, **parameters: Any) -> dict[str, Any]:
    return {
        "action": "agent_task",
        "agent_id": "work",
        "parameters": parameters,
        "dependencies": list(deps),
    }


def runs(workspace: Path) -> list[tuple[str, int, int]]:
    """Each execution of the agent: its task, its parent's pid (the worker) and its pid."""
    path = workspace / "runs.txt"
    if not path.exists():
        return []
    return [
        (name, int(ppid), int(pid))
        for name, ppid, pid in (line.split() for line in path.read_text().splitlines())
    ]


def count_runs(workspace: Path) -> dict[str, int]:
    counted: dict[str, int] = {}
    for name, _, _ in runs(workspace):
        counted[name] = counted.get(name, 0) + 1
    return counted


def events(workspace: Path, instance: str) -> list[dict[str, Any]]:
    lines = (workspace / "instances" / instance / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def start_runner(workspace: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "WORKFLOW_HOME": str(workspace)}
    return subprocess.Popen(
        [sys.executable, "-m", "workflow_cli", *args],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def create(cli: Callable[..., Result], workspace: Path, tasks: dict[str, Any]) -> str:
    created = cli("create", str(write_definition(workspace, tasks)))
    assert created.exit_code == 0, created
    return created.stdout.strip()


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


# -- the tests ---------------------------------------------------------------------------


def test_fan_out_of_60_tasks_uses_both_workers(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    tasks = {"start": task(n=0)}
    tasks.update({f"t{i:02}": task("start", n=i) for i in range(60)})
    tasks["join"] = task(*[f"t{i:02}" for i in range(60)], n=61)
    definition = str(write_definition(workspace, tasks))
    run = cli("run", definition, "--executor", dask.url, "--max-workers", "8", "--json")
    assert run.exit_code == 0, run
    instance = run.json()["id"]
    assert count_runs(workspace) == {name: 1 for name in tasks}
    by_pid = dask.worker_addresses()
    completed = [e for e in events(workspace, instance) if e["type"] == "task_completed"]
    assert len(completed) == 62
    # The journal names the worker that ran each attempt, and it is the one that did.
    ran_under = {name: ppid for name, ppid, _ in runs(workspace)}
    for event in completed:
        assert event["worker"] == by_pid[ran_under[event["task"]]]
    assert {e["worker"] for e in completed} == set(by_pid.values())  # both workers
    assert completed[-1]["task"] == "join"
    status = cli("status", instance, "--json")
    assert status.exit_code == 0, status
    shown = status.json()["tasks"]
    assert {shown[t]["worker"] for t in shown} == set(by_pid.values())
    # status, monitor and the report show where each attempt ran.
    text = cli("status", instance, "--all").stdout
    header = next(line for line in text.splitlines() if line.split()[:1] == ["task"])
    assert "worker" in header  # the table's header
    for event in completed:
        line = next(ln for ln in text.splitlines() if ln.split()[:1] == [event["task"]])
        assert event["worker"] in line
    state = load_state(open_journal(Workspace(workspace), instance, utc_now))
    frame = _frame(dict(state), completed[-3:])
    assert "worker" in frame and "join: completed in" in frame
    assert f"on {completed[-1]['worker']}" in frame
    page = workspace / "report.html"
    assert cli("report", instance, "--html", str(page)).exit_code == 0
    html = page.read_text()
    for event in completed:
        assert "attempt 1: completed" in html and event["worker"] in html


def test_a_worker_killed_mid_run_loses_its_attempts_which_run_again(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    gate = workspace / "gate"
    tasks = {f"a{i}": task(n=i) for i in range(4)}
    tasks.update({f"b{i}": task(*tasks, n=i, gate=str(gate)) for i in range(4)})
    instance = create(cli, workspace, tasks)
    runner = start_runner(workspace, "start", instance, "--executor", dask.url, "--json")
    try:
        victim = dask.workers["w1"]
        survivor = next(w for name, w in dask.workers.items() if name != "w1")
        wait_until(
            lambda: any(n.startswith("b") and ppid == victim.pid for n, ppid, _ in runs(workspace)),
            "a held task on worker w1",
        )
        victim_address = dask.address_of("w1")
        done_before = {
            e["task"] for e in events(workspace, instance) if e["type"] == "task_completed"
        }
        assert done_before == {"a0", "a1", "a2", "a3"}
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        lost = wait_until(
            lambda: [e for e in events(workspace, instance) if e["type"] == "task_lost"],
            "the lost attempts",
        )
        gate.write_text("open")
        out, err = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, (out, err)
    assert json.loads(out)["state"] == "completed"
    # Started by the dead worker: its agents write their line, with their parent, first
    # thing; an agent it started just before it died may write after, as an orphan (its
    # parent then whatever adopted it). Never the surviving worker.
    on_victim = {(n, pid) for n, ppid, pid in runs(workspace) if ppid != survivor.pid}
    held_on_victim = {n for n, _ in on_victim if n.startswith("b")}
    assert held_on_victim
    journal = events(workspace, instance)
    lost = [e for e in journal if e["type"] == "task_lost"]
    # Every attempt the dead worker had is lost: those its agent had begun, and any it was
    # handed but had not begun when it died.
    lost_tasks = {e["task"] for e in lost}
    assert held_on_victim <= lost_tasks <= {f"b{i}" for i in range(4)}
    assert all(e["worker"] == victim_address for e in lost)
    assert not [e for e in journal if e["type"] in ("task_failed", "task_retrying")]
    counted = count_runs(workspace)
    for name in done_before:  # completed before the kill: never again
        assert counted[name] == 1
    for name in tasks:
        if name.startswith("b"):
            assert counted[name] == (2 if name in held_on_victim else 1)
    # What the dead worker left running on this machine was ended by the coordinator.
    for name, pid in on_victim:
        if name in held_on_victim:
            wait_until(partial(gone, pid), f"the orphaned agent of {name}", 10)
    state = cli("status", instance, "--json").json()
    assert all(t["state"] == "completed" for t in state["tasks"].values())
    assert {state["tasks"][t]["lost"] for t in lost_tasks} == {1}
    shown = cli("events", instance).stdout
    for name in lost_tasks:
        assert f"{name}: attempt 1 lost with {victim_address}; it runs again" in shown
    page = workspace / "report.html"
    assert cli("report", instance, "--html", str(page)).exit_code == 0
    assert page.read_text().count("lost with its worker, ") == len(lost_tasks)


def test_cancel_reaches_a_task_on_a_worker(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    tasks = {"long": task(gate=str(workspace / "never"))}
    instance = create(cli, workspace, tasks)
    runner = start_runner(workspace, "start", instance, "--executor", dask.url, "--json")
    try:
        (_, ppid, pid) = wait_until(lambda: runs(workspace), "the agent to start")[0]
        assert ppid in {p.pid for p in dask.workers.values()}  # it runs under a worker
        cancelled = cli("cancel", instance, "--json")
        assert cancelled.exit_code == 0, cancelled
        out, err = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert json.loads(out)["state"] == "cancelled", (out, err)
    wait_until(lambda: gone(pid), "the agent's process group to be killed on its worker", 10)
    journal = events(workspace, instance)
    assert [e["task"] for e in journal if e["type"] == "task_cancelled"] == ["long"]
    assert count_runs(workspace) == {"long": 1}


def test_coordinator_killed_then_resumed_on_the_same_cluster(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    gate = workspace / "gate"
    tasks = {f"a{i}": task(n=i) for i in range(3)}
    tasks.update({f"b{i}": task(*tasks, n=i, gate=str(gate)) for i in range(3)})
    instance = create(cli, workspace, tasks)
    runner = start_runner(workspace, "start", instance, "--executor", dask.url)
    try:
        wait_until(lambda: len(count_runs(workspace)) == 6, "every task to be running or done")
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    done_at_kill = {e["task"] for e in events(workspace, instance) if e["type"] == "task_completed"}
    assert done_at_kill == {"a0", "a1", "a2"}
    gate.write_text("open")
    resumed = cli("resume", instance, "--executor", dask.url, "--json")
    assert resumed.exit_code == 0, resumed
    assert resumed.json()["state"] == "completed"
    counted = count_runs(workspace)
    assert {n: counted[n] for n in done_at_kill} == {"a0": 1, "a1": 1, "a2": 1}
    assert {n: counted[n] for n in ("b0", "b1", "b2")} == {"b0": 2, "b1": 2, "b2": 2}
    journal = events(workspace, instance)
    second_run = journal[[e["type"] for e in journal].index("run_started", 2) :]
    workers = {e["worker"] for e in second_run if e["type"] == "task_completed"}
    assert workers <= set(dask.worker_addresses().values()) and workers


def test_workspace_default_executor_and_large_outputs_kept_as_files(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    (workspace / "workflow_cli.yaml").write_text(
        f"executor:\n  default: {dask.url}\n  output_limit: 1000\n"
    )
    (workspace / "bigout_dask.py").write_text(
        "def make(params):\n    return {'text': 'x' * params['size']}\n"
    )
    (workspace / "agents.yaml").write_text(AGENTS + "  big:\n    callable: bigout_dask:make\n")
    tasks = {
        "big": {"action": "agent_task", "agent_id": "big", "parameters": {"size": 5000}},
        "small": {"action": "agent_task", "agent_id": "big", "parameters": {"size": 10}},
    }
    run = cli("run", str(write_definition(workspace, tasks)), "--json")
    assert run.exit_code == 0, run
    instance = run.json()["id"]
    outputs = {e["task"]: e for e in events(workspace, instance) if e["type"] == "task_completed"}
    assert outputs["small"]["output"] == {"text": "x" * 10}
    kept = outputs["big"]["output"]
    data = (workspace / kept["output_file"]).read_bytes()
    assert json.loads(data) == {"text": "x" * 5000}
    assert kept["sha256"] == hashlib.sha256(data).hexdigest()
    assert kept["size"] == len(data)
    assert outputs["big"]["worker"] in dask.worker_addresses().values()


def test_an_unknown_executor_is_refused_before_anything_is_made(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    check = {"action": "condition_check", "parameters": {"expression": "true"}}
    definition = write_definition(workspace, {"t": check})
    result = cli("run", str(definition), "--executor", "dask://no port")
    assert result.exit_code == 2
    assert "unknown executor" in result.stderr
    assert not (workspace / "instances").exists() or not any((workspace / "instances").iterdir())


def test_a_scheduler_that_cannot_be_reached_is_a_clear_error(
    workspace: Path, cli: Callable[..., Result]
) -> None:
    (workspace / "workflow_cli.yaml").write_text(
        f"executor:\n  default: dask://127.0.0.1:{free_port()}\n  connect_timeout: 1\n"
    )
    check = {"action": "condition_check", "parameters": {"expression": "true"}}
    instance = create(cli, workspace, {"t": check})
    result = cli("start", instance)
    assert result.exit_code == 2, result
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("status", instance, "--json").json()["state"] == "created"


def test_a_timeout_counts_from_when_a_worker_takes_the_attempt(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    """Four held tasks fill the cluster's four threads; then (after an approval) a task
    with a 1 s timeout waits in Dask's queue for longer than its timeout and the
    coordinator's backstop, and still completes once a thread is free."""
    gate = workspace / "gate"
    tasks = {f"hold{i}": task(n=i, gate=str(gate)) for i in range(4)}
    tasks["approve"] = {"action": "approval_gate", "parameters": {"approvers": ["ops"]}}
    tasks["queued"] = {**task("approve", n=9), "timeout_seconds": 1}
    instance = create(cli, workspace, tasks)
    run = ("start", instance, "--executor", dask.url, "--max-workers", "6", "--json")
    runner = start_runner(workspace, *run)
    try:
        wait_until(lambda: len(count_runs(workspace)) == 4, "the held tasks to fill the cluster")
        wait_until(
            lambda: (
                cli("status", instance, "--json").json()["tasks"]["approve"]["state"] == "waiting"
            ),
            "the approval gate",
        )
        assert cli("approve", instance, "approve", "--as", "ops").exit_code == 0
        wait_until(
            lambda: "queued" in {e.get("task") for e in events(workspace, instance)},
            "the queued task's start",
        )
        time.sleep(1 + 2 + 1)  # past its timeout and the backstop's grace, still queued
        assert "queued" not in count_runs(workspace)
        gate.write_text("open")
        out, err = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, (out, err)
    assert count_runs(workspace)["queued"] == 1
    journal = events(workspace, instance)
    assert not [e for e in journal if e["type"] in ("task_failed", "task_retrying")]


def test_stop_reaches_a_task_on_a_worker_and_resume_finishes_it(
    dask: Cluster, workspace: Path, cli: Callable[..., Result]
) -> None:
    gate = workspace / "gate"
    instance = create(cli, workspace, {"held": task(gate=str(gate))})
    runner = start_runner(workspace, "start", instance, "--executor", dask.url, "--json")
    try:
        (_, ppid, pid) = wait_until(lambda: runs(workspace), "the agent to start")[0]
        assert ppid in {p.pid for p in dask.workers.values()}
        stopped = cli("stop", instance, "--grace", "0", "--json")
        assert stopped.exit_code == 0, stopped
        out, err = runner.communicate(timeout=WAIT_LIMIT)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert json.loads(out)["state"] == "paused", (out, err)
    wait_until(partial(gone, pid), "the agent's process group to be killed on its worker", 10)
    journal = events(workspace, instance)
    assert [e["task"] for e in journal if e["type"] == "task_interrupted"] == ["held"]
    gate.write_text("open")
    resumed = cli("resume", instance, "--executor", dask.url, "--json")
    assert resumed.exit_code == 0, resumed
    assert count_runs(workspace) == {"held": 2}


def test_which_attempts_run_on_a_worker(workspace: Path) -> None:
    """Commands, Python callables and built-in agents go to the workers; HTTP and mailbox
    agents, and every other action, stay with the coordinator."""
    from conftest import make_call

    from workflow_cli.engine.actions import get_action
    from workflow_cli.engine.dask_executor import runs_on_worker

    (workspace / "agents.yaml").write_text(
        AGENTS
        + "  scorer:\n    callable: scoring:score\n"
        + "  endpoint:\n    url: http://127.0.0.1:9/score\n"
        + "  reviewer:\n    mailbox: true\n"
    )
    agent_task, condition = get_action("agent_task"), get_action("condition_check")
    log = workspace / "t.log"

    def placed(action: Any, agent: str | None) -> bool:
        return runs_on_worker(action, make_call(workspace, None, log, agent_id=agent))

    assert placed(agent_task, "work") and placed(agent_task, "scorer")
    assert placed(agent_task, "echo")  # built in
    assert not placed(agent_task, "endpoint") and not placed(agent_task, "reviewer")
    assert not placed(condition, None)
