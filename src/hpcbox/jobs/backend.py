"""What the engine needs from a job backend.

A backend turns one attempt of a job into running work somewhere and reports
how it ended. It does no bookkeeping of its own: the engine owns the store and
the state machine, and a backend answers only from what it is handed (the job,
and the re-attach data it returned at launch), so any fresh process can pick up
where another left off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import JobState

__all__ = ["Backend", "Finished", "Launched"]


@dataclass(frozen=True)
class Launched:
    """A started attempt: its re-attach data, native id and run directory."""

    handle: Mapping[str, Any]
    native_id: str
    run_dir: str


@dataclass(frozen=True)
class Finished:
    """How an attempt ended, already mapped to hpcbox's states."""

    state: JobState
    native_state: str
    reason: str
    exit_code: int | None
    signal: int | None
    cpu_time: float | None
    peak_memory: int | None


class Backend(Protocol):
    """A place jobs run. Plugins register under the ``hpcbox.backends`` entry point."""

    name: str

    def validate(self, spec: JobSpec) -> None:
        """Raise :class:`~hpcbox.core.errors.InvalidInputError` when ``spec`` cannot run here."""

    def launch(self, job: Job) -> Launched:
        """Start the job's current attempt; return once it is started."""

    def was_started(self, job: Job) -> bool:
        """True when a launch of the job's current attempt may have begun.

        Answered from the backend's own traces (not the store), so that a
        process killed in the middle of :meth:`launch` can be followed by one
        that never starts the same attempt twice.
        """

    def abandon(self, job: Job) -> None:
        """Stop whatever a launch of the current attempt left running; safe to repeat."""

    def poll(self, job: Job, handle: Mapping[str, Any], *, timed_out: bool) -> Finished | None:
        """None while the attempt runs; how it ended once it has."""

    def kill(self, handle: Mapping[str, Any]) -> None:
        """Stop the attempt's whole process tree; safe to repeat."""

    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        """Where the attempt's ``stdout`` or ``stderr`` is written."""
