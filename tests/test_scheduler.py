"""The scheduler on its own, with plain data: no journal, no threads, no clock.

A test plays the runner: it asks `next`, "records" what it decided by changing the task
states the scheduler reads, and tells it what happened."""

from __future__ import annotations

from typing import Any

from workflow_cli.definition.model import TaskSpec, WorkflowSpec, parse_workflow
from workflow_cli.engine.scheduler import Decision, Fail, Scheduler, Skip, Start


def workflow(tasks: dict[str, dict[str, Any]], **extra: Any) -> WorkflowSpec:
    body = {name: {"action": "noop", **task} for name, task in tasks.items()}
    return parse_workflow({"tasks": body, **extra})


class Play:
    """The runner's side: task records, and what happened to them."""

    def __init__(
        self,
        spec: WorkflowSpec,
        *,
        max_workers: int = 4,
        states: dict[str, str] | None = None,
        conditions: dict[str, Skip | Fail | None] | None = None,
    ) -> None:
        self.tasks: dict[str, dict[str, Any]] = {
            t: {"state": (states or {}).get(t, "pending"), "error": None} for t in spec.tasks
        }
        self.conditions = conditions or {}
        self.scheduler = Scheduler(
            spec, self.tasks, max_workers=max_workers, check_conditions=self.check
        )
        self.skipped: list[tuple[str, str]] = []

    def check(self, spec: TaskSpec) -> Skip | Fail | None:
        return self.conditions.get(spec.id)

    def next(self, now: float = 0.0) -> list[Decision]:
        """The decisions, with skips recorded and settled as the runner does."""
        decisions = self.scheduler.next(now)
        for decision in decisions:
            if isinstance(decision, Skip):
                self.tasks[decision.task]["state"] = "skipped"
                self.skipped.append((decision.task, decision.reason))
                self.scheduler.settled(decision.task)
            elif isinstance(decision, Start):
                self.tasks[decision.task]["state"] = "running"
        return decisions

    def starts(self, now: float = 0.0) -> list[str]:
        """Ask until nothing more is decided now; the tasks started, in order."""
        started: list[str] = []
        while decisions := self.next(now):
            started += [d.task for d in decisions if isinstance(d, Start)]
        return started

    def finish(self, task: str, state: str = "completed", message: str = "boom") -> None:
        self.tasks[task]["state"] = state
        if state == "failed":
            self.tasks[task]["error"] = {"message": message, "kind": "error"}
        self.scheduler.settled(task)


def test_dependencies_first_then_highest_priority_then_definition_order():
    spec = workflow(
        {
            "root": {},
            "low": {"dependencies": ["root"], "priority": -1},
            "first": {"dependencies": ["root"]},
            "second": {"dependencies": ["root"]},
            "high": {"dependencies": ["root"], "priority": 5},
        }
    )
    play = Play(spec, max_workers=1)
    assert play.starts() == ["root"]
    play.finish("root")
    order = []
    for _ in range(4):
        (started,) = play.starts()
        order.append(started)
        play.finish(started)
    assert order == ["high", "first", "second", "low"]
    assert play.scheduler.finished
    assert play.scheduler.final_state() == ("completed", None)


def test_no_more_than_max_workers_at_once_and_a_freed_slot_is_used_at_once():
    spec = workflow({f"t{i}": {} for i in range(5)})
    play = Play(spec, max_workers=2)
    assert play.starts() == ["t0", "t1"]
    assert play.starts() == []  # both slots are taken
    play.finish("t1")
    assert play.starts() == ["t2"]
    assert len(play.scheduler.running) == 2


def test_a_sequential_task_runs_alone():
    spec = workflow(
        {
            "a": {},
            "solo": {"execution_mode": "sequential", "priority": 1},
            "b": {},
        }
    )
    play = Play(spec, max_workers=4)
    assert play.starts() == ["solo"]  # highest priority; nothing else while it runs
    play.finish("solo")
    assert play.starts() == ["a", "b"]

    spec = workflow({"a": {}, "solo": {"execution_mode": "sequential"}, "b": {}})
    play = Play(spec, max_workers=4)
    assert play.starts() == ["a"]  # solo waits for a to finish, and b waits behind it
    play.finish("a")
    assert play.starts() == ["solo"]
    play.finish("solo")
    assert play.starts() == ["b"]


def test_a_failed_dependency_skips_its_dependents_and_the_skip_propagates():
    spec = workflow(
        {
            "a": {"critical": False},
            "b": {"dependencies": ["a"]},
            "c": {"dependencies": ["b"]},
            "other": {},
        }
    )
    play = Play(spec)
    assert play.starts() == ["a", "other"]
    play.finish("a", "failed")
    assert play.starts() == []
    assert play.skipped == [
        ("b", "dependency 'a' failed"),
        ("c", "all its dependencies were skipped"),
    ]
    play.finish("other")
    assert play.scheduler.finished
    assert play.scheduler.final_state() == ("completed", None)  # a was not critical


def test_run_if_dependencies_skipped_lets_a_join_run():
    spec = workflow(
        {
            "left": {"conditions": "x"},
            "right": {"conditions": "x"},
            "join": {"dependencies": ["left", "right"], "run_if_dependencies_skipped": True},
            "strict": {"dependencies": ["left", "right"]},
        },
    )
    play = Play(spec, conditions={"left": Skip("left", "no"), "right": Skip("right", "no")})
    assert play.starts() == ["join"]
    assert ("strict", "all its dependencies were skipped") in play.skipped


def test_a_join_after_two_branches_runs_when_either_ran():
    spec = workflow(
        {"left": {"conditions": "x"}, "right": {}, "join": {"dependencies": ["left", "right"]}}
    )
    play = Play(spec, conditions={"left": Skip("left", "condition is false: x")})
    assert play.starts() == ["right"]
    play.finish("right")
    assert play.starts() == ["join"]


def test_on_failure_modes():
    def after_failure(**task: Any) -> Play:
        spec = workflow({"a": task, "b": {"dependencies": ["a"]}, "c": {}})
        play = Play(spec, max_workers=1)
        assert play.starts() == ["a"]
        play.finish("a", "failed")
        return play

    failing = after_failure()  # fail, critical: nothing new starts
    assert failing.scheduler.halted and failing.starts() == []
    assert failing.scheduler.final_state() == ("failed", "task 'a' failed: boom")

    skipping = after_failure(on_failure="skip")
    assert skipping.starts() == ["c"]
    assert skipping.skipped == [("b", "dependency 'a' failed")]

    going_on = after_failure(on_failure="continue")
    assert going_on.starts() == ["b"]

    pausing = after_failure(on_failure="pause")
    assert pausing.starts() == []
    state, reason = pausing.scheduler.final_state()
    assert state == "paused" and reason is not None and "retry it, skip it" in reason
    assert pausing.scheduler.needs_person


def test_a_workflow_that_pauses_on_failure_pauses_for_a_critical_task():
    spec = workflow({"a": {}, "b": {}}, on_failure="pause")
    play = Play(spec, max_workers=1)
    assert play.starts() == ["a"]
    play.finish("a", "failed")
    assert play.starts() == []
    assert play.scheduler.final_state()[0] == "paused"


def test_a_task_failed_before_the_run_counts_when_the_run_starts():
    spec = workflow({"a": {"on_failure": "pause"}, "b": {}})
    play = Play(spec, states={"a": "failed"})
    assert play.scheduler.halted and play.starts() == []
    assert play.scheduler.final_state()[0] == "paused"


def test_conditions_skip_or_fail_a_task_without_running_it():
    spec = workflow({"a": {"conditions": ["x"]}, "b": {"conditions": ["y"]}, "c": {}})
    play = Play(spec, conditions={"a": Skip("a", "condition is false: x"), "b": Fail("b", "bad")})
    decisions = play.scheduler.next(0.0)
    assert Skip("a", "condition is false: x") in decisions
    assert Fail("b", "bad") in decisions
    assert Start("c") in decisions


def test_a_retry_waits_for_its_time():
    spec = workflow({"a": {}})
    play = Play(spec)
    assert play.starts(now=0.0) == ["a"]
    play.tasks["a"]["state"] = "retrying"
    play.scheduler.retry_at("a", 10.0)
    assert play.scheduler.wake_at == 10.0
    assert play.starts(now=9.9) == []
    assert not play.scheduler.finished
    assert play.starts(now=10.0) == ["a"]


def test_stop_starts_nothing_new_and_cancel_drops_retries():
    spec = workflow({"a": {}, "b": {"dependencies": ["a"]}, "c": {}})
    play = Play(spec, max_workers=1)
    assert play.starts() == ["a"]
    play.scheduler.stop("stopped by ops")
    play.finish("a")
    assert play.starts() == []
    assert play.scheduler.finished
    assert play.scheduler.final_state() == ("paused", "stopped by ops")

    play = Play(spec)
    play.starts()
    play.scheduler.retry_at("a", 5.0)
    play.scheduler.cancel("cancelled by ops")
    assert play.scheduler.wake_at is None
    assert play.scheduler.final_state() == ("cancelled", "cancelled by ops")


def test_a_waiting_task_leaves_its_slot_and_the_run_ends_waiting():
    spec = workflow({"gate": {}, "after": {"dependencies": ["gate"]}, "other": {}})
    play = Play(spec, max_workers=1)
    assert play.starts() == ["gate"]
    play.tasks["gate"]["state"] = "waiting"
    play.scheduler.released("gate")
    assert play.starts() == ["other"]
    play.finish("other")
    assert play.scheduler.finished
    assert play.scheduler.final_state() == ("waiting", "waiting for approval: gate")


def test_tasks_done_before_the_run_are_not_started_again():
    spec = workflow({"a": {}, "b": {"dependencies": ["a"]}, "c": {"dependencies": ["b"]}})
    play = Play(spec, states={"a": "completed", "b": "completed"})
    assert play.starts() == ["c"]


# -- for_each items ---------------------------------------------------------------------


def _items(play: Play, now: float = 0.0) -> list[tuple[str, int]]:
    """Ask once; the items started (Expand answered with every index 0..4)."""
    from workflow_cli.engine.scheduler import Expand, StartItem

    started = []
    for decision in play.next(now):
        if isinstance(decision, Expand):
            play.tasks[decision.task]["state"] = "running"
            play.scheduler.expanded(decision.task, list(range(5)))
        elif isinstance(decision, StartItem):
            started.append((decision.task, decision.index))
    return started


def test_items_start_in_order_within_max_parallel_and_the_worker_limit() -> None:
    spec = workflow({"each": {"for_each": [1, 2, 3, 4, 5], "max_parallel": 2}, "other": {}})
    play = Play(spec, max_workers=3)
    assert _items(play) == []  # the first answer expands it (and starts 'other')
    assert play.scheduler.running == {"other"}
    assert _items(play) == [("each", 0), ("each", 1)]
    assert _items(play) == []  # two out: its limit
    play.scheduler.item_released("each")
    assert _items(play) == [("each", 2)]
    play.scheduler.item_retry_at("each", 1, when=5.0)  # item 1 waits for its retry
    assert play.scheduler.wake_at == 5.0
    assert _items(play, now=1.0) == [("each", 3)]
    play.scheduler.item_released("each")
    play.scheduler.item_released("each")
    assert _items(play, now=5.0) == [("each", 1), ("each", 4)]  # the retry goes first
    assert not play.scheduler.finished


def test_items_share_the_worker_slots_with_tasks() -> None:
    spec = workflow({"each": {"for_each": [1, 2, 3, 4, 5]}, "a": {}, "b": {}})
    play = Play(spec, max_workers=3)
    _items(play)
    assert play.scheduler.running == {"a", "b"}
    assert _items(play) == [("each", 0)]  # one slot left
    play.tasks["a"]["state"] = "completed"
    play.scheduler.settled("a")
    assert _items(play) == [("each", 1)]


def test_cancel_drops_queued_items_and_finishes_once_items_are_back() -> None:
    spec = workflow({"each": {"for_each": [1, 2, 3, 4, 5], "max_parallel": 1}})
    play = Play(spec)
    _items(play)
    assert _items(play) == [("each", 0)]
    play.scheduler.cancel("cancelled")
    assert not play.scheduler.finished  # item 0 is still out
    play.scheduler.item_released("each")
    assert play.scheduler.finished
    assert _items(play) == []


# -- repeating groups -------------------------------------------------------------------


def test_a_group_holds_what_follows_until_it_is_over_and_can_run_again() -> None:
    from workflow_cli.engine.scheduler import EndIteration

    spec = workflow(
        {"a": {}, "b": {"dependencies": ["a"]}, "after": {"dependencies": ["b"]}},
        groups={"g": {"tasks": ["a", "b"], "repeat": {"until": "true"}}},
    )
    play = Play(spec)

    def settle(task: str) -> None:
        play.tasks[task]["state"] = "completed"
        play.scheduler.settled(task)

    assert play.starts() == ["a"]
    settle("a")
    assert play.starts() == ["b"]
    settle("b")
    decisions = play.next()
    assert decisions == [EndIteration("g")]  # 'after' is held back
    for task in ("a", "b"):  # the runner puts the group back to pending
        play.tasks[task]["state"] = "pending"
    play.scheduler.reopen("g", when=2.0)
    assert play.scheduler.wake_at == 2.0
    assert play.starts(now=1.0) == []
    assert play.starts(now=2.0) == ["a"]
    settle("a")
    assert play.starts(now=2.0) == ["b"]
    settle("b")
    assert play.next(now=2.0) == [EndIteration("g")]
    play.scheduler.group_done("g")
    assert play.starts(now=2.0) == ["after"]


def test_a_group_whose_task_failed_is_over() -> None:
    spec = workflow(
        {"a": {"on_failure": "continue"}, "after": {"dependencies": ["a"]}},
        groups={"g": {"tasks": ["a"], "repeat": {"until": "true"}}},
    )
    play = Play(spec)
    assert play.starts() == ["a"]
    play.tasks["a"]["state"] = "failed"
    play.scheduler.settled("a")
    assert play.starts() == ["after"]  # no EndIteration: nothing to repeat


def test_a_parallel_group_starts_together_once_every_members_dependencies_are_done():
    spec = workflow(
        {
            "p1": {},
            "p2": {},
            "a": {"dependencies": ["p1"], "parallel_group": "fan", "priority": 10},
            "b": {"dependencies": ["p2"], "parallel_group": "fan"},
            "report": {"dependencies": ["fan"]},
        }
    )
    assert spec.tasks["a"].dependencies == ("p1", "p2")
    assert spec.tasks["report"].dependencies == ("a", "b")
    play = Play(spec, max_workers=1)
    assert play.starts() == ["p1"]
    play.finish("p1")
    assert play.starts() == ["p2"]  # a, with priority 10, waits for its group's p2
    play.finish("p2")
    assert play.starts() == ["a"]
    play.finish("a")
    assert play.starts() == ["b"]
    play.finish("b")
    assert play.starts() == ["report"]


def test_a_run_past_the_workflows_timeout_is_told_to_end_once():
    from workflow_cli.engine.scheduler import TimedOut

    play = Play(workflow({"a": {}, "b": {"dependencies": ["a"]}}, timeout_seconds=5))
    assert play.starts(now=100.0) == ["a"]  # the clock starts at the first question
    assert play.scheduler.wake_at == 105.0
    assert play.next(now=104.9) == []
    decisions = play.next(now=105.0)
    assert len(decisions) == 1 and isinstance(decisions[0], TimedOut)
    assert "timeout (5 s)" in decisions[0].reason
    play.scheduler.time_out(decisions[0].reason)  # as the runner does, then ends a
    assert play.next(now=200.0) == []
    play.scheduler.released("a")
    assert play.scheduler.finished
    assert play.scheduler.final_state() == ("failed", decisions[0].reason)


def test_no_timeout_no_deadline():
    play = Play(workflow({"a": {}}))
    assert play.starts(now=0.0) == ["a"]
    assert play.scheduler.wake_at is None
    assert play.next(now=1e9) == []
