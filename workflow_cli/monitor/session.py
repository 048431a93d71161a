"""Monitoring around one run: resource sampling and health refreshes.

Usage (what ``run``, ``start`` and ``resume`` do)::

    with monitored_run(workspace, instance_id, clock, reporter) as monitored:
        outcome = lifecycle.run(workspace, instance_id, clock=clock, reporter=monitored)

On entry a `ResourceSampler` starts on the runner's process tree with the instance's
interval and thresholds; a rise to a critical threshold takes an automatic checkpoint
(``kind="resource"``). The reporter handed back passes every event on to `reporter`
and, at most once per ``refresh_interval`` seconds, rescores the instance from the
runner's own state and rewrites ``monitoring/instances/ID.json``. On exit the sampler
takes a last sample and stops, the instance is scored once more from disk, and the
workspace summary (``health.json``, ``metrics.prom``) is rewritten.

Monitoring never stops a run: a failure while sampling or writing a report is kept in
the reporter's ``errors`` for the caller to show.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from workflow_cli.errors import WorkflowCliError
from workflow_cli.monitor.health import instance_health
from workflow_cli.monitor.health.inputs import HealthInputs, gather_inputs
from workflow_cli.monitor.health.record import build_record, read_instance_record, save_record
from workflow_cli.monitor.resources import Crossing, ResourceSampler, merge_peaks
from workflow_cli.store.instances import load_state, open_journal
from workflow_cli.store.journal import Clock, Event
from workflow_cli.store.runlock import runner_alive
from workflow_cli.store.state import State
from workflow_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from workflow_cli.engine.runner import Reporter

DEFAULT_REFRESH_INTERVAL = 1.0


class HealthReporter:
    """A reporter that passes events on and keeps the instance's health record fresh.

    It runs in the runner's turn (`engine.turns`), so a refresh is cheap: the state is
    the runner's own, and what else scoring needs was read once when the run began."""

    def __init__(
        self,
        workspace: Workspace,
        instance_id: str,
        clock: Clock,
        inner: Reporter | None,
        *,
        inputs: HealthInputs | None = None,
        sampler: ResourceSampler | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.instance_id = instance_id
        self.clock = clock
        self.inner = inner
        self.inputs = inputs
        self.sampler = sampler
        self.refresh_interval = refresh_interval
        self.monotonic = monotonic
        self.refreshes = 0
        self.errors: list[str] = []
        self._last = monotonic()
        self._base_peaks = dict(inputs.peaks) if inputs else {}

    def on_events(self, events: list[Event], state: State) -> None:
        if self.inner is not None:
            self.inner.on_events(events, state)
        if self.inputs is None:
            return
        # The runs read from the journal before the run began go on with this run's.
        self.inputs.runs.add(events)
        now = self.monotonic()
        if now - self._last >= self.refresh_interval:
            self._last = now
            self.refresh(state)

    def refresh(self, state: State) -> None:
        """Rescore from `state` and rewrite the record (errors are kept, not raised)."""
        inputs = self.inputs
        if inputs is None:
            return
        if self.sampler is not None:
            offset, peaks = self.sampler.progress
            inputs.resources_offset = offset
            inputs.peaks = merge_peaks(self._base_peaks, [])
            for key, value in peaks.items():
                if key == "samples":
                    inputs.peaks["samples"] = self._base_peaks.get("samples", 0) + value
                elif value > inputs.peaks.get(key, float("-inf")):
                    inputs.peaks[key] = value
        try:
            record = build_record(state, inputs, now=self.clock(), runner_alive=True)
            save_record(self.workspace, record, clock=self.clock)
            self.refreshes += 1
        except (OSError, WorkflowCliError) as exc:
            self.errors.append(f"health record: {exc}")


@contextmanager
def monitored_run(
    workspace: Workspace,
    instance_id: str,
    clock: Clock,
    reporter: Reporter | None = None,
    *,
    pid: int | None = None,
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
    monotonic: Callable[[], float] = time.monotonic,
    write_summary: bool = True,
    on_critical: Callable[[Crossing], None] | None = None,
) -> Iterator[HealthReporter]:
    """Sample resources and keep the health record fresh while the ``with`` block runs
    the instance (see the module docstring). `pid` is the runner's process (default:
    this one). `on_critical` replaces the automatic checkpoint on a critical crossing.

    Settings that do not make sense (a bad ``workflow_cli.yaml``) raise before the run.
    When another runner already holds the instance, nothing is monitored: the run itself
    will refuse to start."""
    if runner_alive(workspace.instance_dir(instance_id)):
        yield HealthReporter(workspace, instance_id, clock, reporter, monotonic=monotonic)
        return
    state = load_state(open_journal(workspace, instance_id, clock))
    previous = read_instance_record(workspace, instance_id)
    inputs = gather_inputs(workspace, instance_id, state, previous=previous)

    def checkpoint(crossing: Crossing) -> None:
        from workflow_cli.engine.control import take_checkpoint

        take_checkpoint(
            workspace,
            instance_id,
            kind="resource",
            label=f"{crossing.metric} {crossing.value:.0%} >= {crossing.level} "
            f"{crossing.threshold:.0%}",
            clock=clock,
        )

    sampler = ResourceSampler(
        workspace,
        instance_id,
        clock=clock,
        interval=inputs.settings.sample_interval,
        thresholds=inputs.settings.thresholds,
        pid=pid,
        on_critical=on_critical or checkpoint,
    )
    monitored = HealthReporter(
        workspace,
        instance_id,
        clock,
        reporter,
        inputs=inputs,
        sampler=sampler,
        refresh_interval=refresh_interval,
        monotonic=monotonic,
    )
    sampler.start()
    try:
        yield monitored
    finally:
        sampler.stop()
        monitored.errors.extend(sampler.errors)
        try:
            record = instance_health(workspace, instance_id, clock)
            if write_summary:
                from workflow_cli.monitor.summary import measure_machine, workspace_health

                # The sampler's last CPU figure spares the summary measuring it again.
                cpu = ((sampler.last or {}).get("machine") or {}).get("cpu")
                machine = measure_machine(workspace, cpu=cpu)
                scored = {instance_id: record}  # not scored twice
                workspace_health(workspace, clock, machine=machine, scored=scored)
        except (OSError, WorkflowCliError) as exc:
            monitored.errors.append(f"health report: {exc}")
