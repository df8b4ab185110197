"""Read-only views of jobs and attempts, and their stable JSON form.

The store builds these from its rows; shells only ever see these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hpcbox.core.clock import iso
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import JobState, is_terminal

__all__ = ["Attempt", "Job", "StateEvent"]


@dataclass(frozen=True)
class Attempt:
    """One try at running a job; a rerun adds a new attempt and keeps the old ones."""

    number: int
    spec: JobSpec
    state: JobState
    native_state: str | None
    reason: str | None
    native_id: str | None
    exit_code: int | None
    signal: int | None
    cpu_time: float | None
    peak_memory: int | None
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_dir: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "state": self.state.value,
            "native_state": self.native_state,
            "reason": self.reason,
            "native_id": self.native_id,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cpu_time": self.cpu_time,
            "peak_memory": self.peak_memory,
            "submitted_at": iso(self.submitted_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "spec": self.spec.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class Job:
    """A job as stored: its identity and its attempts, the last one current."""

    id: int
    name: str
    backend: str
    target: str
    created_at: datetime
    attempts: tuple[Attempt, ...]

    @property
    def current(self) -> Attempt:
        return self.attempts[-1]

    @property
    def state(self) -> JobState:
        return self.current.state

    @property
    def spec(self) -> JobSpec:
        return self.current.spec

    @property
    def terminal(self) -> bool:
        return is_terminal(self.state)

    def to_json(self) -> dict[str, Any]:
        """The job's JSON: the fields of shared/DESIGN.md, the current attempt's
        values at top level, and every attempt under ``attempts``."""
        cur = self.current
        return {
            "id": self.id,
            "name": self.name,
            "state": cur.state.value,
            "native_state": cur.native_state,
            "reason": cur.reason,
            "backend": self.backend,
            "target": self.target,
            "native_id": cur.native_id,
            "exit_code": cur.exit_code,
            "signal": cur.signal,
            "cpu_time": cur.cpu_time,
            "peak_memory": cur.peak_memory,
            "submitted_at": iso(cur.submitted_at),
            "started_at": iso(cur.started_at),
            "finished_at": iso(cur.finished_at),
            "created_at": iso(self.created_at),
            "attempt": cur.number,
            "attempts": [attempt.to_json() for attempt in self.attempts],
            "spec": cur.spec.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class StateEvent:
    """One recorded transition of one attempt."""

    job_id: int
    attempt: int
    from_state: JobState | None
    to_state: JobState
    native_state: str | None
    reason: str | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value,
            "native_state": self.native_state,
            "reason": self.reason,
            "at": iso(self.at),
        }
