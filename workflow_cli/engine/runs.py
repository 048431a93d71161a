"""What a run is given (`RunOptions`) and what it comes to (`RunOutcome`)."""

from __future__ import annotations

from workflow_cli.errors import ExitCode, exit_code_for
from workflow_cli.readonly import readonly_dataclass


@readonly_dataclass
class RunOptions:
    max_workers: int = 4
    poll_interval: float = 0.2
    state_cache_interval: float = 1.0
    checkpoint_interval: int | None = None  # overrides the definition's
    use_cache: bool = True  # read and write the result cache (run --no-cache: neither)
    handle_signals: bool = True  # SIGINT/SIGTERM stop the run (when on the main thread)


@readonly_dataclass
class RunOutcome:
    instance_id: str
    state: str
    reason: str | None = None
    needs_person: bool = False  # paused on a failure: retry, skip, rollback or cancel

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(self.state, needs_person=self.needs_person)
