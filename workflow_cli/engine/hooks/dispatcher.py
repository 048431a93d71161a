"""Delivering hooks: a thread of the runner's process, tries with a doubling delay, and
a journal record of each outcome."""

from __future__ import annotations

import heapq
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workflow_cli.definition.model import HookSpec
from workflow_cli.engine.hooks.events import hook_body, hook_events, task_of
from workflow_cli.engine.recorder import Reporter
from workflow_cli.errors import WorkflowCliError
from workflow_cli.readonly import readonly_dataclass
from workflow_cli.store import events as ev
from workflow_cli.store.instances import open_journal
from workflow_cli.store.journal import Clock, Event, Journal, Record
from workflow_cli.store.secrets import Masker, mask_url
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

# Deliveries waiting at once; more are recorded as failed rather than held.
MAX_PENDING = 1000
# How long a process whose run is over waits for the deliveries still due.
DRAIN_SECONDS = 60.0
# The longest wait between two tries of one delivery.
MAX_RETRY_DELAY = 60.0


@dataclass(order=True)
class _Delivery:
    due: float
    order: int
    hook: HookSpec = field(compare=False)
    event: str = field(compare=False)
    task: str | None = field(compare=False)
    body: bytes = field(compare=False)
    tries: int = field(default=0, compare=False)
    status: int | None = field(default=None, compare=False)
    error: str = field(default="", compare=False)


@readonly_dataclass
class _Tried:
    ok: bool
    status: int | None
    error: str = ""


class HookDispatcher:
    """A `Reporter` that passes every event on to `inner` and delivers hooks for them
    in a thread of its own."""

    def __init__(
        self,
        workspace: Workspace,
        instance_id: str,
        hooks: tuple[HookSpec, ...],
        *,
        clock: Clock,
        inner: Reporter | None,
        masker: Masker,
        context: Mapping[str, Any],
        environ: Mapping[str, str] = os.environ,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace, self.instance_id, self.hooks = workspace, instance_id, hooks
        self.inner, self.masker, self.context = inner, masker, context
        self.environ, self.monotonic = environ, monotonic
        self.journal: Journal = open_journal(workspace, instance_id, clock)
        self._due: list[_Delivery] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closing = self._abandoned = False
        self._current: _Delivery | None = None
        self._dropped: list[_Delivery] = []
        self._waiting_before: set[str] = set()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- the Reporter side: never waits ------------------------------------------------------

    def on_events(self, events: list[Event], state: State) -> None:
        if self.inner is not None:
            self.inner.on_events(events, state)
        for event in events:
            if self._same_wait(event, state):
                continue
            for name in hook_events(event, state):
                self._submit(name, event, state)

    def _same_wait(self, event: Event, state: State) -> bool:
        """Whether `event` is a wait recorded again by a new run for a task that was
        waiting already (a resume with no decision yet): not a new approval.required.
        A run's start is a batch of its own, so the state then shows who waited before."""
        if event["type"] == "run_started":
            tasks = state["tasks"].items()
            self._waiting_before = {t for t, task in tasks if task["state"] == "waiting"}
        elif event["type"] == "task_waiting" and event.get("task") in self._waiting_before:
            self._waiting_before.discard(event["task"])
            return True
        return False

    def _submit(self, name: str, event: Event, state: State) -> None:
        wanted = [hook for hook in self.hooks if name in hook.events]
        if not wanted:
            return
        body = self.masker.value(hook_body(name, event, state, self.workspace))
        data = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
        task = task_of(event)
        with self._cond:
            for hook in wanted:
                delivery = _Delivery(self.monotonic(), next(self._order), hook, name, task, data)
                if len(self._due) >= MAX_PENDING:  # recorded as failed when the run ends
                    delivery.error = f"not tried: more than {MAX_PENDING} deliveries waited"
                    self._dropped.append(delivery)
                else:
                    heapq.heappush(self._due, delivery)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="hooks", daemon=True)
                self._thread.start()
            self._cond.notify()

    # -- the delivery thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._abandoned or (self._closing and not self._due):
                        return
                    if self._due and self._due[0].due <= self.monotonic():
                        delivery = self._current = heapq.heappop(self._due)
                        break
                    wait = self._due[0].due - self.monotonic() if self._due else None
                    self._cond.wait(wait)
            tried = self._try(delivery)
            delivery.tries += 1
            delivery.status, delivery.error = tried.status, tried.error
            with self._cond:
                self._current = None
                if self._abandoned:
                    return  # close() has recorded it
                if not tried.ok and delivery.tries <= delivery.hook.retry_count:
                    delay = delivery.hook.retry_delay * 2 ** (delivery.tries - 1)
                    delivery.due = self.monotonic() + min(delay, MAX_RETRY_DELAY)
                    heapq.heappush(self._due, delivery)
                    continue
            self._record(delivery, ok=tried.ok)

    def _try(self, delivery: _Delivery) -> _Tried:
        from workflow_cli.definition.expressions import render_value

        hook = delivery.hook
        try:
            rendered = render_value(
                {"command": list(hook.command or ()), "url": hook.url, "headers": hook.headers},
                self.context,
            )
        except WorkflowCliError as exc:
            return _Tried(False, None, self.masker.text(exc.message))
        try:
            if hook.url is not None:
                return self._post(rendered["url"], rendered["headers"], delivery)
            return self._run(rendered["command"], delivery)
        except Exception as exc:  # a delivery must never reach the run
            return _Tried(False, None, self.masker.text(f"{type(exc).__name__}: {exc}"))

    def _post(self, url: str, headers: Mapping[str, str], delivery: _Delivery) -> _Tried:
        # Imported here: urllib (with ssl) is a fifth of a short run's start-up, and most
        # runs post no hook.
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "workflow_cli-hooks",
                "X-Workflow-Event": delivery.event,
                **headers,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=delivery.hook.timeout) as response:
                response.read(65536)
                return _Tried(True, response.status)
        except urllib.error.HTTPError as exc:
            return _Tried(False, exc.code, f"HTTP {exc.code} {exc.reason}")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return _Tried(False, None, self.masker.text(f"cannot reach {mask_url(url)}: {reason}"))

    def _run(self, argv: list[str], delivery: _Delivery) -> _Tried:
        env = {
            **self.environ,
            "WORKFLOW_HOME": str(self.workspace.root),
            "WORKFLOW_INSTANCE": self.instance_id,
            "WORKFLOW_HOOK_EVENT": delivery.event,
        }
        try:
            done = subprocess.run(
                argv,
                input=delivery.body,
                capture_output=True,
                cwd=self.workspace.root,
                env=env,
                timeout=delivery.hook.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return _Tried(False, None, f"timed out after {delivery.hook.timeout:g}s")
        except OSError as exc:
            return _Tried(False, None, f"cannot run {argv[0]}: {exc.strerror or exc}")
        if done.returncode == 0:
            return _Tried(True, 0)
        tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
        error = f"exit code {done.returncode}" + (f": {tail}" if tail else "")
        return _Tried(False, done.returncode, self.masker.text(error))

    def _record(self, delivery: _Delivery, *, ok: bool = False) -> None:
        hook = delivery.hook
        target = mask_url(hook.target) if hook.url is not None else hook.target
        record: Record
        if ok:
            record = ev.hook_delivered(
                hook.name, delivery.event, target, delivery.tries, delivery.status, delivery.task
            )
        else:
            record = ev.hook_failed(
                hook.name,
                delivery.event,
                target,
                delivery.tries,
                delivery.status,
                delivery.error,
                delivery.task,
            )
        try:
            with self._write_lock:
                self.journal.append([self.masker.event(record)])
        except WorkflowCliError:
            pass  # a full disk or a damaged journal: the run itself reports those

    # -- the end of the run ------------------------------------------------------------------

    def close(self, drain: float = DRAIN_SECONDS) -> None:
        """Let the deliveries still due finish (at most `drain` seconds), record the ones
        that could not as failed, and let go of the journal."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(drain)
        with self._cond:
            self._abandoned = True
            self._cond.notify()
            left = [*self._due, *([self._current] if self._current else [])]
            dropped, self._due, self._dropped = self._dropped, [], []
        for delivery in left:
            why = "not delivered before the run's process ended"
            delivery.error = f"{why} (last: {delivery.error})" if delivery.error else why
            self._record(delivery)
        for delivery in dropped:
            self._record(delivery)
        with self._write_lock:
            self.journal.close()
