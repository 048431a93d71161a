"""`Workspace`: the public Python API over one workspace folder.

Every method is a core operation the CLI and the server call too; it takes ids or unique
prefixes, returns typed records (`workflow_cli.api.types`) and raises the CLI's errors
(`workflow_cli.errors.WorkflowCliError` and its kinds). Each blocking method has an
``_async`` twin that runs it in a worker thread.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from workflow_cli.api.agents import AgentOperations, in_thread
from workflow_cli.api.types import (
    DecisionResult,
    InstanceSummary,
    RunnerInfo,
    RunResult,
    StartResult,
    StatusView,
    TemplateInfo,
)
from workflow_cli.engine.identity import who
from workflow_cli.errors import (
    LockHeldError,
    NotFoundError,
    ParameterError,
    StateError,
    UsageError,
)
from workflow_cli.store import events as ev
from workflow_cli.store.instances import append_events, load_state, open_journal
from workflow_cli.store.journal import Clock, Event, Record
from workflow_cli.store.runlock import runner_alive
from workflow_cli.store.state import (
    FINAL_INSTANCE_STATES,
    INSTANCE_STATES,
    State,
    why_not_runnable,
)
from workflow_cli.store.workspace import Workspace as StoreWorkspace

if TYPE_CHECKING:
    from workflow_cli.definition.templates import Template
    from workflow_cli.engine.control import StopOutcome as StopResult
    from workflow_cli.engine.event_waits import SignalResult
    from workflow_cli.engine.runner import Reporter
    from workflow_cli.monitor.follow import Follower


# How long `start` and `resume` wait for the runner process to begin its run.
START_TIMEOUT = 30.0
# How many ended runner processes `Workspace.runners` goes on listing.
_ENDED_RUNNERS_KEPT = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


class Workspace(AgentOperations):
    """One workspace folder (templates, instances, checkpoints, monitoring); its agents'
    methods (``agents``, ``inbox``, ``deliver``) are in `workflow_cli.api.agents`.

    >>> ws = Workspace("path/to/workspace")
    >>> instance_id = ws.create("sequential_pipeline", {"batch_size": 50})
    >>> ws.run(instance_id).state
    'completed'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock = utc_now,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """`path` must be an existing folder. `environ` is where runs in this process and
        runner processes find secrets (default: this process's environment)."""
        self.store = StoreWorkspace.at(Path(path))
        self.clock = clock
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self._runners: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
        self._runners_lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.store.root

    def resolve(self, instance: str) -> str:
        """The id of the instance that `instance` names exactly or as a unique prefix."""
        return self.store.resolve_instance_id(instance)

    # -- templates and instances ----------------------------------------------------------

    def templates(self) -> builtins.list[TemplateInfo]:
        """Every template: the built-in ones and the workspace's ``templates/`` folder."""
        from workflow_cli.definition.templates import list_templates

        return [template_info(t) for t in list_templates(self.store.templates_dir)]

    def create(
        self,
        template: str,
        params: Mapping[str, Any] | Sequence[str] | None = None,
        requester: str | None = None,
        *,
        allow_files: bool = True,
    ) -> str:
        """Create an instance of `template` (a name, or a file unless `allow_files` is
        false) and return its id.

        `params` maps names to typed values (as JSON has them), or is a list of
        ``"key=value"`` texts typed like ``--param``. `requester` (who asks) is kept in
        the journal."""
        from workflow_cli.definition.templates import (
            fill_values,
            find_template,
            parse_param_args,
            template_names,
        )
        from workflow_cli.engine.lifecycle import create_from_template

        if requester is not None and not requester.strip():
            raise UsageError("the requester needs a name")
        if not allow_files and template not in template_names(self.store.templates_dir):
            raise NotFoundError(
                f"unknown template '{template}' (templates are named as 'templates' lists them)"
            )
        found = find_template(self.store.templates_dir, template)
        if params is None:
            values = fill_values(found, {})
        elif isinstance(params, Mapping):
            for name in params:
                if not isinstance(name, str):
                    raise ParameterError(str(name), "parameter names are texts")
            values = fill_values(found, dict(params))
        elif isinstance(params, str):
            raise UsageError("params: a mapping of names to values, or a list of key=value")
        else:
            values = parse_param_args(found, builtins.list(params))
        return create_from_template(
            self.store, found, values, self.clock, environ=self.environ, requester=requester
        )

    def status(self, instance: str, *, fire_due: bool = True) -> StatusView:
        """An instance's state, progress and tasks (what ``status --json`` prints). Like
        the command, it first fires the instance's due deadlines when no runner holds it,
        unless `fire_due` is false (the server: it never takes an instance's run lock)."""
        instance_id = self.resolve(instance)
        state = load_state(open_journal(self.store, instance_id, self.clock))
        if fire_due:
            from workflow_cli.engine.timers import fire_in_instance

            fired = fire_in_instance(self.store, instance_id, self.clock, "status", known=state)
            if fired is not None and fired[0]:  # the journal grew: read the state again
                state = load_state(open_journal(self.store, instance_id, self.clock))
        return status_view(state)

    def list(
        self,
        *,
        state: str | None = None,
        template: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> builtins.list[InstanceSummary]:
        """Instances (of a state, of a template), oldest first unless `newest_first`, at
        most `limit` of them."""
        if state is not None and state not in INSTANCE_STATES:
            raise UsageError(f"unknown state '{state}' (one of: {', '.join(INSTANCE_STATES)})")
        if limit is not None and limit < 0:
            raise UsageError("limit: a number from 0 up")
        rows: builtins.list[InstanceSummary] = []
        for row in self._summaries():
            if state is not None and row["state"] != state:
                continue
            if template is not None and row["template"] != template:
                continue
            rows.append(row)
        rows.sort(key=lambda r: (r["created_at"] or "", r["id"]), reverse=newest_first)
        return rows if limit is None else rows[:limit]

    def _summaries(self) -> builtins.list[InstanceSummary]:
        """A row per instance, as `store.listing` keeps them: an instance whose journal has
        not changed since the last listing costs a ``stat``."""
        from workflow_cli.store.listing import instance_summaries

        return [
            {
                "id": row.id,
                "template": row.template,
                "state": row.state,
                "progress": {"done": row.done, "total": row.total, "completed": row.completed},
                "created_at": row.created_at,
            }
            for row in instance_summaries(self.store, self.clock)
        ]

    def approvals(
        self, *, for_name: str | None = None, overdue: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """Every approval gate waiting across the workspace, oldest first (what
        ``approvals --json`` prints): instance, task, level, message, approvers, how many
        are needed, decisions so far, waiting since, deadline, overdue."""
        from workflow_cli.engine.approvals import waiting_gates

        # No gate waits in an instance that has not started, nor in one that completed:
        # the kept rows of `list` (a stat each) leave those out unread.
        open_ids = [
            row["id"] for row in self._summaries() if row["state"] not in ("created", "completed")
        ]
        return waiting_gates(
            self.store, self.clock, for_name=for_name, overdue=overdue, instance_ids=open_ids
        )

    # -- running ----------------------------------------------------------------------------

    def run(
        self,
        instance: str,
        *,
        reporter: Reporter | None = None,
        max_workers: int = 4,
        checkpoint_interval: int | None = None,
        use_cache: bool = True,
        executor: str | None = None,
    ) -> RunResult:
        """Run (or go on with) an instance in this process until it completes, fails,
        waits or is stopped, with resource sampling and health records around it.
        `executor` (``threads``, ``local-dask``, ``dask://HOST:PORT``; default: the
        workspace's setting) is where its attempts run."""
        from workflow_cli.engine import lifecycle
        from workflow_cli.engine.runner import RunOptions
        from workflow_cli.monitor.session import monitored_run

        if max_workers < 1:
            raise UsageError("max_workers: at least 1")
        instance_id = self.resolve(instance)
        options = RunOptions(
            max_workers=max_workers,
            checkpoint_interval=checkpoint_interval,
            use_cache=use_cache,
        )
        with monitored_run(self.store, instance_id, self.clock, reporter) as monitored:
            outcome = lifecycle.run(
                self.store,
                instance_id,
                clock=self.clock,
                reporter=monitored,
                options=options,
                environ=self.environ,
                executor=executor,
            )
        state = load_state(open_journal(self.store, instance_id, self.clock))
        waiting = {
            task_id: dict(task.get("waiting_for") or {})
            for task_id, task in state["tasks"].items()
            if task["state"] == "waiting"
        }
        return RunResult(
            id=instance_id,
            state=outcome.state,
            reason=outcome.reason,
            exit_code=int(outcome.exit_code),
            needs_person=outcome.needs_person,
            waiting=waiting,
            warnings=builtins.list(monitored.errors),
        )

    def start(
        self,
        instance: str,
        *,
        requester: str | None = None,
        max_workers: int = 4,
        timeout: float = START_TIMEOUT,
    ) -> StartResult:
        """Start an instance's runner in a process of its own (``workflow_cli start``,
        detached) and return once it has begun its run (or, for a short run, ended).
        The request is journaled with `requester` (default: the user's name)."""
        return self._spawn(instance, False, requester, max_workers, timeout)

    def resume(
        self,
        instance: str,
        *,
        requester: str | None = None,
        max_workers: int = 4,
        timeout: float = START_TIMEOUT,
    ) -> StartResult:
        """Go on with a waiting, paused or crashed instance in a runner process of its own
        (``workflow_cli resume``, detached); like `start` otherwise."""
        return self._spawn(instance, True, requester, max_workers, timeout)

    def _spawn(
        self, instance: str, resume: bool, requester: str | None, max_workers: int, timeout: float
    ) -> StartResult:
        from workflow_cli.api.runners import spawn_runner, wait_started

        if max_workers < 1:
            raise UsageError("max_workers: at least 1")
        by = who(requester)
        instance_id = self.resolve(instance)
        instance_dir = self.store.instance_dir(instance_id)

        def request(state: State) -> builtins.list[Record]:
            check_runnable(instance_id, state, resume=resume)
            if runner_alive(instance_dir):
                raise LockHeldError(
                    f"instance {instance_id} is busy: a runner is executing it already"
                )
            return [ev.run_requested(by, resume=resume)]

        append_events(open_journal(self.store, instance_id, self.clock), request)
        process, log = spawn_runner(
            self.store, instance_id, resume=resume, max_workers=max_workers, environ=self.environ
        )
        with self._runners_lock:
            self._runners[process.pid] = (instance_id, process)
        code = wait_started(
            self.store, instance_id, process, log, clock=self.clock, timeout=timeout
        )
        return StartResult(instance_id, process.pid, resume, log, code)

    def runners(self) -> builtins.list[RunnerInfo]:
        """The runner processes this object started: instance, pid and exit code (None
        while it runs). Looking reaps the ended ones; the latest ended ones are kept."""
        with self._runners_lock:
            found: builtins.list[RunnerInfo] = []
            for pid, (instance_id, process) in self._runners.items():
                found.append({"id": instance_id, "pid": pid, "exit_code": process.poll()})
            ended = [r["pid"] for r in found if r["exit_code"] is not None]
            for pid in ended[: max(len(ended) - _ENDED_RUNNERS_KEPT, 0)]:
                del self._runners[pid]
            return found

    def wait_runner(self, pid: int, timeout: float) -> int:
        """Wait up to `timeout` seconds for a runner process this object started to end;
        its exit code (subprocess.TimeoutExpired when it has not)."""
        with self._runners_lock:
            entry = self._runners.get(pid)
        if entry is None:
            raise UsageError(f"no runner process {pid} was started here")
        return entry[1].wait(timeout)

    # -- decisions and control ---------------------------------------------------------------

    def approve(
        self,
        instance: str,
        task: str | None = None,
        *,
        by: str,
        comment: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        """Approve a waiting approval gate (`task` may be left out when one waits); `by`
        must be one of its approvers; `inputs` fills the gate's form, if it has one. A
        live runner picks it up; else `resume`."""
        return self._decide(instance, task, "approved", by, comment, inputs)

    def reject(
        self, instance: str, task: str | None = None, *, by: str, comment: str | None = None
    ) -> DecisionResult:
        """Reject a waiting approval gate: on resume the gate fails."""
        return self._decide(instance, task, "rejected", by, comment)

    def _decide(
        self,
        instance: str,
        task: str | None,
        decision: str,
        by: str,
        comment: str | None,
        inputs: Mapping[str, Any] | None = None,
    ) -> DecisionResult:
        import json

        from workflow_cli.engine.approvals import Decision, record_decision

        instance_id = self.resolve(instance)
        form_json = None if inputs is None else json.dumps(dict(inputs))
        chosen = Decision(decision, by, comment, form_json=form_json)
        task_id, state = record_decision(self.store, instance_id, task, chosen, clock=self.clock)
        alive = state.get("runner") is not None
        return DecisionResult(instance_id, task_id, decision, by, state["state"], alive)

    def signal(
        self, instance: str, event: str, data: Any = None, sender: str | None = None
    ) -> SignalResult:
        """Send `event` with `data` (JSON data) to an instance, as ``workflow_cli signal``
        does: the first ``wait_for_event`` task waiting for it whose filter holds takes
        it (its data becomes the task's output; a live runner goes on, else `resume`);
        when none waits, it is kept for the first wait that begins later and matches.
        Journaled with `sender` (default: the OS user)."""
        from workflow_cli.engine.event_waits import send_signal

        instance_id = self.resolve(instance)
        return send_signal(self.store, instance_id, event, data, by=who(sender), clock=self.clock)

    def stop(
        self,
        instance: str,
        *,
        by: str | None = None,
        grace: float | None = None,
        wait: float = 30.0,
    ) -> StopResult:
        """Pause an instance (see ``workflow_cli stop``); waits up to `wait` seconds for a
        live runner to end."""
        from workflow_cli.engine.control import stop

        instance_id = self.resolve(instance)
        return stop(self.store, instance_id, by=who(by), grace=grace, wait=wait, clock=self.clock)

    def cancel(self, instance: str, *, by: str | None = None, wait: float = 30.0) -> StopResult:
        """Cancel an instance for good (see ``workflow_cli cancel``)."""
        from workflow_cli.engine.control import cancel

        instance_id = self.resolve(instance)
        return cancel(self.store, instance_id, by=who(by), wait=wait, clock=self.clock)

    # -- watching -------------------------------------------------------------------------------

    def events(
        self,
        instance: str,
        *,
        follow: bool = False,
        interval: float = 0.25,
        timeout: float | None = None,
    ) -> Iterator[Event]:
        """The instance's journal events, secrets masked. With `follow`, go on with each
        new event until the run ends (or waits, or its runner is found dead), or until
        `timeout` seconds pass; the caller may also stop iterating at any time."""
        from workflow_cli.monitor.follow import Follower

        instance_id = self.resolve(instance)
        follower = Follower(self.store, instance_id, self.clock, from_start=True)
        return _follow_events(follower, follow, interval, timeout)

    def health(self) -> dict[str, Any]:
        """The workspace's health summary (what ``health --json`` shows), not written."""
        from workflow_cli.monitor.summary import workspace_health

        return workspace_health(self.store, self.clock, write=False)

    # -- async twins -----------------------------------------------------------------------------

    async def create_async(
        self,
        template: str,
        params: Mapping[str, Any] | Sequence[str] | None = None,
        requester: str | None = None,
    ) -> str:
        return await in_thread(lambda: self.create(template, params, requester))

    async def start_async(self, instance: str, **options: Any) -> StartResult:
        return await in_thread(lambda: self.start(instance, **options))

    async def resume_async(self, instance: str, **options: Any) -> StartResult:
        return await in_thread(lambda: self.resume(instance, **options))

    async def run_async(self, instance: str, **options: Any) -> RunResult:
        return await in_thread(lambda: self.run(instance, **options))

    async def status_async(self, instance: str) -> StatusView:
        return await in_thread(lambda: self.status(instance))

    async def list_async(self, **filters: Any) -> builtins.list[InstanceSummary]:
        return await in_thread(lambda: self.list(**filters))

    async def approvals_async(self, **filters: Any) -> builtins.list[dict[str, Any]]:
        return await in_thread(lambda: self.approvals(**filters))

    async def approve_async(
        self, instance: str, task: str | None = None, *, by: str, **options: Any
    ) -> DecisionResult:
        return await in_thread(lambda: self.approve(instance, task, by=by, **options))

    async def reject_async(
        self, instance: str, task: str | None = None, *, by: str, comment: str | None = None
    ) -> DecisionResult:
        return await in_thread(lambda: self.reject(instance, task, by=by, comment=comment))

    async def signal_async(
        self, instance: str, event: str, data: Any = None, sender: str | None = None
    ) -> SignalResult:
        return await in_thread(lambda: self.signal(instance, event, data, sender))

    async def stop_async(self, instance: str, **options: Any) -> StopResult:
        return await in_thread(lambda: self.stop(instance, **options))

    async def cancel_async(self, instance: str, **options: Any) -> StopResult:
        return await in_thread(lambda: self.cancel(instance, **options))

    async def events_async(
        self,
        instance: str,
        *,
        follow: bool = False,
        interval: float = 0.25,
        timeout: float | None = None,
    ) -> AsyncIterator[Event]:
        """`events` as an async iterator: each wait for the journal happens in a worker
        thread, so the event loop goes on meanwhile."""
        iterator = await in_thread(
            lambda: self.events(instance, follow=follow, interval=interval, timeout=timeout)
        )
        done = object()
        try:
            while True:
                event = await in_thread(lambda: next(iterator, done))
                if event is done:
                    return
                yield event  # type: ignore[misc]
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def _follow_events(
    follower: Follower, follow: bool, interval: float, timeout: float | None
) -> Iterator[Event]:
    from workflow_cli.monitor.follow import follow as follow_journal
    from workflow_cli.store.secrets import mask_event, secret_values

    known = secret_values(follower.state.get("params") or {})
    try:
        for event in follower.initial:
            yield mask_event(event, known)
        if not follow:
            return
        for update in follow_journal(follower, interval=interval, duration=timeout):
            for event in update.events:
                yield mask_event(event, known)
    finally:
        follower.close()


def check_runnable(instance_id: str, state: State, *, resume: bool) -> None:
    """Refuse a run the instance's state does not allow: a finished instance, or resuming
    one that never started."""
    if state["state"] in FINAL_INSTANCE_STATES:
        raise StateError(why_not_runnable(instance_id, state["state"]))
    if resume and state["state"] == "created":
        raise UsageError(f"instance {instance_id} has not started; use 'workflow_cli start'")


def status_view(state: State) -> StatusView:
    """The status of one instance as plain data (what ``status --json`` prints)."""
    from workflow_cli.store.status_cache import status_header, task_view

    tasks = {task_id: task_view(task) for task_id, task in state["tasks"].items()}
    return cast(StatusView, {**status_header(state), "tasks": tasks})


def template_info(template: Template) -> TemplateInfo:
    return {
        "name": template.name,
        "description": template.description,
        "source": template.source,
        "parameters": template.parameters_schema(),
        "tasks": builtins.list(template.workflow.get("tasks", {})),
    }
