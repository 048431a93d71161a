"""Who takes the runner's turn: the thread that brought a result, when no one has it.

A chain then goes on with no thread woken between its tasks: the attempt's thread takes
the turn, and the next attempt it starts runs on that same thread. The runner's own
thread sleeps until the time the last turn asked for, and is woken when a turn taken
elsewhere ends the run, fails, or needs it sooner (a retry, a deadline). Each run below
sets a long poll interval, so a missed wake-up shows as a run that does not end in time.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import write_definition

from workflow_cli.cli.context import utc_now
from workflow_cli.definition.templates import fill_values, read_template
from workflow_cli.engine.executor import ThreadExecutor
from workflow_cli.engine.lifecycle import EngineServices, create_from_template
from workflow_cli.engine.runner import Runner
from workflow_cli.engine.runs import RunOptions, RunOutcome
from workflow_cli.store.journal import Event
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

LONG_POLL = 120.0  # the runner's own thread looks in this rarely unless woken
BOUND = 60.0  # every run here ends well within this, or the test fails


def test_work_handed_in_by_a_pool_thread_runs_next_on_that_thread() -> None:
    executor = ThreadExecutor()
    seen: dict[str, int] = {}
    order: list[str] = []
    both = threading.Barrier(3, timeout=BOUND)

    def note(name: str) -> None:
        seen[name] = threading.get_ident()
        order.append(name)

    def second() -> None:
        note("second")
        both.wait()

    def third() -> None:
        note("third")
        both.wait()

    def first() -> None:
        note("first")
        executor.submit(second)  # runs next, here
        executor.submit(third)  # this thread is busy: another one runs it
        order.append("first ends")

    try:
        executor.submit(first)  # from a thread not of the pool: a pool thread runs it
        both.wait()
    finally:
        executor.shutdown()
    assert seen["first"] != threading.get_ident()
    assert seen["second"] == seen["first"]
    assert order.index("second") > order.index("first ends")
    assert seen["third"] != seen["first"]


def new_instance(workspace: Path, tasks: dict[str, Any]) -> tuple[Workspace, str]:
    template = read_template(write_definition(workspace, tasks))
    ws = Workspace.at(workspace)
    return ws, create_from_template(ws, template, fill_values(template, {}), utc_now)


def run_bounded(runner: Runner) -> RunOutcome:
    """Run on a thread of its own, failing the test if it does not end within BOUND."""
    ended: dict[str, Any] = {}

    def go() -> None:
        try:
            ended["outcome"] = runner.run()
        except BaseException as exc:  # handed to the test's thread
            ended["error"] = exc

    thread = threading.Thread(target=go, name="runner", daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), "the run did not end: a wake-up was missed"
    if "error" in ended:
        raise ended["error"]
    outcome: RunOutcome = ended["outcome"]
    return outcome


def make_runner(ws: Workspace, instance_id: str, **kw: Any) -> Runner:
    options = RunOptions(max_workers=2, poll_interval=LONG_POLL)
    services = EngineServices(ws, utc_now, options)
    return Runner(ws, instance_id, clock=utc_now, options=options, services=services, **kw)


def chain(n: int, **last: Any) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for i in range(n):
        deps = [f"t{i - 1}"] if i else []
        tasks[f"t{i}"] = {"action": "agent_task", "agent_id": "echo", "dependencies": deps}
    tasks[f"t{n - 1}"].update(last)
    return tasks


def test_a_chain_goes_on_from_the_thread_of_each_attempt(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns: Counter[str] = Counter()
    take_turn = Runner._take_turn

    def counted(self: Runner) -> float | None:
        turns[threading.current_thread().name] += 1
        return take_turn(self)

    monkeypatch.setattr(Runner, "_take_turn", counted)
    ws, instance_id = new_instance(workspace, chain(30))
    runner = make_runner(ws, instance_id)
    assert run_bounded(runner).state == "completed"
    # The runner's thread took the first turn (the first task) and the one that saw the
    # run over; every task after the first was started from its predecessor's thread,
    # and all ran on one pool thread.
    assert turns.pop("runner") <= 2
    assert list(turns.values()) == [30]
    assert runner.executor._threads and len(runner.executor._threads) == 1  # type: ignore[attr-defined]


class FailsOnce:
    """A reporter that fails when it is handed a given task's completion."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.threads: list[str] = []

    def on_events(self, events: list[Event], state: State) -> None:
        for event in events:
            if event["type"] == "task_completed" and event["task"] == self.task:
                self.threads.append(threading.current_thread().name)
                raise RuntimeError(f"reporter broke on {self.task}")


def test_what_fails_in_a_turn_taken_elsewhere_is_raised_by_the_run(workspace: Path) -> None:
    ws, instance_id = new_instance(workspace, chain(5))
    reporter = FailsOnce("t2")
    runner = make_runner(ws, instance_id, reporter=reporter)
    with pytest.raises(RuntimeError, match="reporter broke on t2"):
        run_bounded(runner)
    assert reporter.threads and reporter.threads[0].startswith("task-")
    # The run let go of its lock: the instance can be run again, and completes.
    assert run_bounded(make_runner(ws, instance_id)).state == "completed"


def declare(workspace: Path, name: str) -> None:
    """Declare the callable agent `name` (its module is workspace/name.py)."""
    agents = {"agents": {name: {"callable": f"{name}:run"}}}
    (workspace / "agents.yaml").write_text(json.dumps(agents))


def test_a_retry_set_in_a_turn_taken_elsewhere_wakes_the_runner(workspace: Path) -> None:
    (workspace / "turns_flaky.py").write_text(
        "import pathlib\n\n"
        "def run(parameters):\n"
        "    mark = pathlib.Path(parameters['mark'])\n"
        "    if not mark.exists():\n"
        "        mark.write_text('1')\n"
        "        raise RuntimeError('first attempt fails')\n"
        "    return {'ok': True}\n"
    )
    declare(workspace, "turns_flaky")
    flaky = {
        "agent_id": "turns_flaky",
        "parameters": {"mark": str(workspace / "mark")},
        "retry_count": 2,
        "retry_delay": 0.05,
    }
    ws, instance_id = new_instance(workspace, chain(3, **flaky))
    outcome = run_bounded(make_runner(ws, instance_id))
    assert outcome.state == "completed", outcome


def test_a_deadline_set_in_a_turn_taken_elsewhere_wakes_the_runner(workspace: Path) -> None:
    (workspace / "turns_stuck.py").write_text(
        "import threading\n\n"
        "HOLD = threading.Event()\n\n"
        "def run(parameters):\n"
        "    HOLD.wait(300)\n"
        "    return {}\n"
    )
    declare(workspace, "turns_stuck")
    stuck = {"agent_id": "turns_stuck", "timeout": 0.2}
    ws, instance_id = new_instance(workspace, chain(3, **stuck))
    try:
        outcome = run_bounded(make_runner(ws, instance_id))
    finally:
        module = sys.modules.get("turns_stuck")
        if module is not None:
            module.HOLD.set()  # let the abandoned attempt's thread end
    assert outcome.state == "failed", outcome
    assert "timed out" in (outcome.reason or ""), outcome


class FailsOnStart:
    """A reporter that fails when a given task's start is reported."""

    def __init__(self, task: str) -> None:
        self.task = task

    def on_events(self, events: list[Event], state: State) -> None:
        if any(e["type"] == "task_started" and e.get("task") == self.task for e in events):
            raise RuntimeError(f"reporter broke on the start of {self.task}")


def test_once_the_run_has_failed_no_result_takes_a_turn(workspace: Path) -> None:
    (workspace / "turns_hold.py").write_text(
        "import pathlib, threading\n\n"
        "HOLD = threading.Event()\n\n"
        "def run(parameters):\n"
        "    pathlib.Path(parameters['mark']).write_text('began')\n"
        "    HOLD.wait(300)\n"
        "    return {'held': True}\n"
    )
    declare(workspace, "turns_hold")
    tasks = chain(2)
    tasks["t0"].update(agent_id="turns_hold", parameters={"mark": str(workspace / "began")})
    ws, instance_id = new_instance(workspace, tasks)
    runner = make_runner(ws, instance_id, reporter=FailsOnStart("t0"))
    with pytest.raises(RuntimeError, match="the start of t0"):
        run_bounded(runner)  # t0 was handed to a thread before its start was reported
    journal = workspace / "instances" / instance_id / "events.jsonl"
    before = journal.read_bytes()
    deadline = time.monotonic() + BOUND
    while not (workspace / "began").exists():  # t0's attempt runs on
        assert time.monotonic() < deadline, "t0's attempt never began"
        time.sleep(0.01)
    sys.modules["turns_hold"].HOLD.set()  # t0 comes back after the run has ended
    for thread in runner.executor._threads:  # type: ignore[attr-defined]
        thread.join(BOUND)
        assert not thread.is_alive()
    assert journal.read_bytes() == before  # nothing recorded, t1 never started


def test_agents_yaml_is_read_once_a_turn_and_a_change_is_seen_by_the_next(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn reads agents.yaml once for every attempt it starts; an attempt that
    changed it is done before the turn that starts the next task reads it again."""
    (workspace / "turns_swap.py").write_text(
        "import json, pathlib\n\n"
        "def run(parameters):\n"
        "    path = pathlib.Path(parameters['agents'])\n"
        "    agents = json.loads(path.read_text())\n"
        "    agents['agents']['who'] = {'callable': 'turns_swap:second'}\n"
        "    path.write_text(json.dumps(agents))\n"
        "    return {}\n\n"
        "def first(parameters):\n"
        "    return {'by': 'first'}\n\n"
        "def second(parameters):\n"
        "    return {'by': 'second'}\n"
    )
    agents = {
        "agents": {
            "turns_swap": {"callable": "turns_swap:run"},
            "who": {"callable": "turns_swap:first"},
        }
    }
    (workspace / "agents.yaml").write_text(json.dumps(agents))
    tasks = {
        "before": {"action": "agent_task", "agent_id": "who"},
        "swap": {
            "action": "agent_task",
            "agent_id": "turns_swap",
            "parameters": {"agents": str(workspace / "agents.yaml")},
            "dependencies": ["before"],
        },
        "after": {"action": "agent_task", "agent_id": "who", "dependencies": ["swap"]},
    }
    from workflow_cli.engine.agents import agents_as_read as as_read

    reads: list[str] = []

    def counted(ws: Workspace) -> Any:
        reads.append(threading.current_thread().name)
        return as_read(ws)

    monkeypatch.setattr("workflow_cli.engine.runner.agents_as_read", counted)
    ws, instance_id = new_instance(workspace, tasks)
    runner = make_runner(ws, instance_id)
    assert run_bounded(runner).state == "completed"
    outputs = {t: s["output"] for t, s in runner.state["tasks"].items()}
    assert outputs["before"] == {"by": "first"} and outputs["after"] == {"by": "second"}
    assert len(reads) <= 5  # a turn for each of the 3 tasks, and the runner's own
