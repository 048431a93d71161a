"""The Dask executor: attempts of agents run on the workers of a Dask cluster.

``--executor dask://HOST:PORT`` connects to a running scheduler, ``--executor
local-dask`` starts a `LocalCluster` for the run; the workspace's ``executor`` setting
gives the default. The coordinator (the runner) keeps the journal and checkpoints, and
runs everything else: approvals, condition checks, file operations, HTTP calls (and
HTTP agents), mailbox agents and child workflows. What goes to a worker is a task spec
— plain data: the agent's name, the rendered parameters, the timeout, where to log —
and the worker runs the agent as it would run here (a command in a process group of
its own).

Each attempt is one Dask task with a key of its own. On the coordinator a thread
submits it and waits; the result comes back with the worker's address, goes into the
journal, and only then is the future released (`release`). A worker that dies under an
attempt makes Dask run the task again elsewhere: that second execution finds the
attempt's claim (a file in the instance's folder, written by the first worker, removed
only once the future is let go of) already taken, runs nothing, and reports the attempt
lost (the coordinator ends the process group the dead worker left on this machine,
records ``task_lost`` and starts a new attempt). Cancel and stop reach the worker that took the
attempt out of band (``Client.run`` of `cancel_on_worker`), which raises the attempt's
cancel flag there: the agent's process group is killed.

The workspace folder must be reachable at the same path on the workers (commands run
in it and write the task's log in it). Outputs above ``output_limit`` characters of
JSON are written to a file (in the instance's folder, or under ``shared_folder``) and
the journal keeps its path and SHA-256 digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workflow_cli.engine.actions.base import Action, ActionFailed, AwaitDecision, TaskCall
from workflow_cli.engine.attempt import AttemptLost, Ended, abandoned, run_call
from workflow_cli.engine.executor import AttemptKey, ThreadExecutor, Work
from workflow_cli.engine.executor_choice import CONNECT_TIMEOUT, DaskSettings
from workflow_cli.errors import ExecutorError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store.files import read_text
from workflow_cli.store.workspace import Workspace

# How long past its timeout an attempt on a worker may run before the coordinator gives
# up on it (its agent enforces the timeout; this is the backstop).
TIMEOUT_GRACE = 2.0
# How often the coordinator looks at an attempt's cancel flag while it waits.
_CANCEL_POLL = 0.1
# How often the coordinator checks that the worker running an attempt is still there.
_LOSS_CHECK = 1.0
# How long the coordinator waits, after a cancel, for the attempt to end on its worker.
_END_WAIT = 10.0
# Attempts of one task lost with their workers in one run before losing one more is
# counted as a failure of the task (then its retry policy decides).
MAX_LOST = 3
# The kinds of declared agents that run on the workers.
WORKER_KINDS = frozenset({"command", "python"})


def _dask() -> Any:
    """Dask's ``distributed`` (installed with the ``dask`` extra), loaded on first use."""
    import importlib

    return importlib.import_module("distributed")


@readonly_dataclass
class RemoteAttempt:
    """The work of an attempt on a worker. It keeps its own time (its timeout counts from
    when a worker takes it, not while it waits in the cluster's queue), so the runner
    sets it no deadline of its own (`AttemptPool.prepare`)."""

    run: Callable[[], Ended]
    keeps_time: bool = True

    def __call__(self) -> Ended:
        return self.run()


class DaskExecutor:
    """Runs attempts of agents on a Dask cluster, everything else on coordinator threads."""

    def __init__(self, settings: DaskSettings) -> None:
        try:
            distributed = _dask()
        except ImportError as exc:
            raise ExecutorError(
                "the Dask executor needs Dask: pip install 'workflow_cli[dask]'"
            ) from exc
        self.settings = settings
        self.cluster: Any = None
        if settings.address is None:
            import logging

            try:
                self.cluster = distributed.LocalCluster(
                    n_workers=settings.local_workers,
                    threads_per_worker=2,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            except Exception as exc:  # workers that cannot start: no cluster to run on
                raise ExecutorError(f"the local Dask cluster did not start: {exc}") from exc
        target = settings.address or self.cluster.scheduler_address
        try:
            self.client = distributed.Client(
                target, timeout=settings.connect_timeout, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            raise ExecutorError(f"cannot reach the Dask scheduler at {target}: {exc}") from exc
        self.threads = ThreadExecutor("dask")
        # Futures (and specs) of attempts whose results are not on disk yet.
        self._held: dict[AttemptKey, tuple[Any, dict[str, Any]]] = {}
        self._lost: Counter[str] = Counter()
        self._live: tuple[float, set[str] | None] = (-_LOSS_CHECK, None)
        self._lock = threading.Lock()

    @property
    def scheduler_address(self) -> str:
        return str(self.client.scheduler.address)

    def submit(self, work: Work) -> None:
        self.threads.submit(work)

    def attempt_work(self, action: Action, call: TaskCall | ActionFailed) -> Callable[[], Ended]:
        """Commands, Python callables and built-in agents run on a worker; every other
        action and agent (HTTP endpoints, mailboxes) here, on a coordinator thread."""
        if isinstance(call, ActionFailed) or not runs_on_worker(action, call):
            return lambda: run_call(action, call)
        return RemoteAttempt(lambda: run_call(action, call, self._invoke))

    def release(self, attempts: list[AttemptKey]) -> None:
        with self._lock:
            held = [self._held.pop(key, None) for key in attempts]
        for future, spec in filter(None, held):
            _let_go(future)
            self._forget(spec)

    def shutdown(self) -> None:
        self.threads.shutdown()
        with contextlib.suppress(Exception):  # a cluster already gone has nothing to close
            self.client.close(timeout=CONNECT_TIMEOUT)
        self._close_cluster()

    def _close_cluster(self) -> None:
        if self.cluster is not None:
            with contextlib.suppress(Exception):
                self.cluster.close(timeout=CONNECT_TIMEOUT)

    # -- one attempt, from the coordinator ------------------------------------------------

    def _invoke(self, action: Action, call: TaskCall) -> tuple[Any, str | None]:
        """Submit the attempt's spec and wait for its reply, watching its cancel flag,
        its worker and (from when a worker took it) its timeout."""
        spec = task_spec(call, self.settings)
        try:
            future = self.client.submit(run_task_spec, spec, key=spec["key"], pure=False)
        except Exception as exc:  # the scheduler went away: the attempt never started
            return self._lost_attempt(call, "", f"the Dask scheduler could not take it: {exc}")
        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        worker: str | None = None  # the worker that took it, once it has
        deadline: float | None = None  # its timeout (and a grace), from when it was taken
        check_at = time.monotonic() + _LOSS_CHECK
        while not done.wait(_CANCEL_POLL):
            now = time.monotonic()
            if call.cancel.is_set():  # stop or cancel: the worker kills the agent
                return self._end_early(spec, future, done, worker), worker
            if deadline is not None and now >= deadline:  # the agent did not end it itself
                self._end_early(spec, future, done, worker)
                return abandoned(call.timeout or 0.0, 0.0).result, worker
            if now >= check_at:  # its worker gone: lost, even when no other worker is free
                check_at = now + _LOSS_CHECK  # to run it again and notice
                if worker is None and (worker := self._claimant(spec)) and call.timeout:
                    deadline = now + call.timeout + TIMEOUT_GRACE
                live = self._live_workers()
                if worker and live is not None and worker not in live:
                    _let_go(future, cancel=True)  # its claim stays: should Dask run it
                    return self._lost_attempt(call, worker, "its Dask worker died")  # again
        try:
            reply: dict[str, Any] = future.result()
        except Exception as exc:  # KilledWorker, a lost scheduler, a cancelled future
            _let_go(future)
            self._forget(spec)
            return self._lost_attempt(call, "", f"{type(exc).__name__}: {exc}")
        with self._lock:  # until its result is on disk: then `release` lets go of both
            self._held[(call.task_id, call.attempt)] = (future, spec)
        worker = reply.get("worker")
        if "lost" in reply:  # run again by Dask after its first worker died
            return self._lost_attempt(call, reply["lost"], "its Dask worker died")
        return result_of(reply), worker

    def _end_early(
        self, spec: Mapping[str, Any], future: Any, done: threading.Event, worker: str | None
    ) -> Any:
        """End the attempt: a worker that takes it from now on runs nothing (the cancel
        mark), and the worker that took it already raises its cancel flag, which kills
        its agent; give that a moment, then let go of it."""
        with contextlib.suppress(OSError):
            Path(spec["claim"] + _CANCELLED).touch(mode=0o600)
        worker = worker or self._claimant(spec)  # read after the mark: see take_claim
        if worker:
            with contextlib.suppress(Exception):  # the worker is gone: so is the agent
                self.client.run(cancel_on_worker, spec["key"], workers=[worker])
            done.wait(_END_WAIT)
        _let_go(future, cancel=True)
        self._forget(spec)
        return ActionFailed("interrupted on its Dask worker", kind="interrupted")

    def _lost_attempt(self, call: TaskCall, worker: str, reason: str) -> tuple[Any, None]:
        """An attempt lost with its worker: the agent it left on this machine is ended,
        and it runs again — unless its task has lost too many already."""
        from workflow_cli.engine.agents import kill_orphan_agents

        folder = call.workspace.instance_dir(call.instance_id)
        kill_orphan_agents(folder, task=call.task_id, attempt=call.attempt)
        with self._lock:
            self._lost[call.task_id] += 1
            lost = self._lost[call.task_id]
        if lost > MAX_LOST:
            return ActionFailed(f"{reason} ({lost} attempts lost)", kind="worker_lost"), None
        return AttemptLost(worker, reason), None

    def _claimant(self, spec: Mapping[str, Any]) -> str | None:
        """The worker that took the attempt (None: none yet)."""
        try:
            return read_text(spec["claim"]) or None
        except OSError:
            return None

    def _live_workers(self) -> set[str] | None:
        """The workers the scheduler has now (None: it cannot be asked now); asked at
        most once per check interval for all the attempts out."""
        with self._lock:
            asked_at, live = self._live
            if time.monotonic() - asked_at < _LOSS_CHECK / 2:
                return live
        try:
            live = set(self.client.scheduler_info(n_workers=-1)["workers"])
        except Exception:
            live = None
        with self._lock:
            self._live = (time.monotonic(), live)
        return live

    def _forget(self, spec: Mapping[str, Any]) -> None:
        """Drop the attempt's claim (and its cancel mark)."""
        Path(spec["claim"]).unlink(missing_ok=True)
        Path(spec["claim"] + _CANCELLED).unlink(missing_ok=True)


def runs_on_worker(action: Action, call: TaskCall) -> bool:
    """Whether an attempt runs on a Dask worker: an agent task whose agent is a command,
    a Python callable or a built-in one (HTTP and mailbox agents wait on the world and
    on the journal: they stay with the coordinator)."""
    if action.name != "agent_task" or not call.agent_id:
        return False
    from workflow_cli.engine.agents import builtin_agents, load_agents

    declared = load_agents(call.workspace).get(call.agent_id)
    if declared is None:
        return call.agent_id in builtin_agents()
    return declared.kind in WORKER_KINDS


def _let_go(future: Any, *, cancel: bool = False) -> None:
    """Release a future (cancel it first: its task is not to run); a client already
    closed has let go of it."""
    with contextlib.suppress(Exception):
        if cancel:
            future.cancel()
        future.release()


# -- what goes to a worker and comes back ----------------------------------------------------


def task_spec(call: TaskCall, settings: DaskSettings) -> dict[str, Any]:
    """One attempt as plain data: all a worker needs to run the task's agent."""
    masker = getattr(call.log, "masker", None)
    token = f"{time.time_ns():x}"
    key = f"workflow_cli-{call.instance_id}-{call.task_id}-{call.attempt}-{token}"
    return {
        "key": key,
        "claim": str(claim_path(call, token)),
        "workspace": str(call.workspace.root),
        "instance": call.instance_id,
        "task": call.task_id,
        "attempt": call.attempt,
        "agent": call.agent_id,
        "parameters": call.parameters,
        "timeout": call.timeout,
        "log": str(call.log_path),
        "secrets": sorted(masker.known) if masker is not None else [],
        "output_limit": settings.output_limit,
        "shared_folder": str(settings.shared_folder) if settings.shared_folder else None,
    }


def claim_path(call: TaskCall, token: str) -> Path:
    """Where the worker that takes an attempt writes its address: the attempt's claim,
    in the instance's folder (which the workers share)."""
    instance = call.workspace.instance_dir(call.instance_id)
    folder = call.workspace.private_folder(instance / "claims")
    return folder / f"{call.task_id}.{call.attempt}.{token}"


def take_claim(path: Path, address: str) -> str | None:
    """Claim an attempt for the worker at `address`; None when it is ours now, else the
    address of the worker that claimed it first (a second execution by Dask after that
    worker died; "" when it left no address)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            return read_text(path)
        except OSError:
            return ""
    with os.fdopen(fd, "w", encoding="utf-8") as claim:
        claim.write(address)
    return None


def result_of(reply: Mapping[str, Any]) -> Any:
    """What a worker's reply means: the output, an `ActionFailed` or an `AwaitDecision`."""
    if "failed" in reply:
        failed = reply["failed"]
        return ActionFailed(
            failed["message"],
            kind=failed["kind"],
            retryable=failed["retryable"],
            details=failed["details"],
        )
    if "await" in reply:
        return AwaitDecision(reply["await"])
    return reply.get("output")


def run_task_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """On a worker: run one attempt of an agent from its spec; a plain-data reply with
    the worker's address. A second execution of the same attempt (its first worker
    died) runs nothing and replies ``lost``."""
    distributed = _dask()

    from workflow_cli.engine.actions import get_action
    from workflow_cli.engine.actions.base import invoke_action
    from workflow_cli.engine.attempt import TaskLog
    from workflow_cli.engine.executor import CancelFlag
    from workflow_cli.store.secrets import Masker

    address = str(distributed.get_worker().address)
    cancel = CancelFlag()
    _RUNNING[spec["key"]] = cancel  # before the claim: a cancel comes once it is seen
    first = take_claim(Path(spec["claim"]), address)
    if first is not None or Path(spec["claim"] + _CANCELLED).exists():
        _RUNNING.pop(spec["key"], None)
        if first is None:  # ended before it began: the coordinator has let go of it
            failed = {"message": "cancelled", "kind": "interrupted", "retryable": False}
            return {"failed": {**failed, "details": {}}, "worker": address}
        return {"lost": first, "worker": address}
    masker = Masker(frozenset(spec["secrets"]))
    log_path = Path(spec["log"])
    call = TaskCall(
        workspace=Workspace(Path(spec["workspace"])),
        instance_id=spec["instance"],
        task_id=spec["task"],
        attempt=spec["attempt"],
        agent_id=spec["agent"],
        parameters=spec["parameters"],
        timeout=spec["timeout"],
        log=TaskLog(log_path, masker if masker else None),
        log_path=log_path,
        cancel=cancel,
    )
    spill = OutputFiles(spec["output_limit"], spec["shared_folder"], masker)
    try:
        result = invoke_action(get_action("agent_task"), call, spill=spill)
    finally:
        _RUNNING.pop(spec["key"], None)
        call.log.close()
    if isinstance(result, ActionFailed):
        failed = {
            "message": result.message,
            "kind": result.kind,
            "retryable": result.retryable,
            "details": result.details,
        }
        return {"failed": failed, "worker": address}
    if isinstance(result, AwaitDecision):
        return {"await": result.waiting_for, "worker": address}
    return {"output": result, "worker": address}


# The cancel mark beside an attempt's claim: a worker that takes the attempt after it
# was ended (stop, cancel, timeout) runs nothing. The worker takes the claim before it
# looks for the mark, the coordinator reads the claim after it sets the mark: one of
# them sees the other.
_CANCELLED = ".cancelled"

# On a worker: the cancel flags of the attempts running there, by their Dask key.
_RUNNING: dict[str, Any] = {}


def cancel_on_worker(key: str) -> bool:
    """On a worker (through ``Client.run``): raise the cancel flag of attempt `key`, so
    that its agent's process group is killed; False when it is not running there."""
    flag = _RUNNING.get(key)
    if flag is None:
        return False
    flag.raise_for("cancel")
    return True


@readonly_dataclass
class OutputFiles:
    """Outputs above `limit` characters of JSON, kept as files: in the instance's
    ``outputs/`` folder, or under `shared_folder`/INSTANCE/."""

    limit: int
    shared_folder: str | None
    masker: Any = None

    def store(self, call: TaskCall, text: str) -> dict[str, Any]:
        import json

        from workflow_cli.store.files import write_atomic

        if self.masker:
            text = json.dumps(self.masker.stored(json.loads(text)))
        data = text.encode("utf-8")
        if self.shared_folder:
            folder = Path(self.shared_folder) / call.instance_id
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            instance = call.workspace.instance_dir(call.instance_id)
            folder = call.workspace.private_folder(instance / "outputs")
        path = folder / f"{call.task_id}.{call.attempt}.json"
        write_atomic(path, data)
        root = call.workspace.root
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        return {
            "output_file": shown,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
