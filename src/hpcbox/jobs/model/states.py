"""Job states and the transition table: the one place that decides.

States follow SLURM's vocabulary. Within one attempt a job only moves forward::

    NEW ──> PENDING ──> RUNNING ──> COMPLETED | FAILED | CANCELLED | TIMEOUT
     │         │                      | OUT_OF_MEMORY | NODE_FAIL | ERROR
     └─────────┴──> CANCELLED | ERROR | FAILED (and, for remote backends whose polls
                    can miss RUNNING, any terminal state)

A rerun starts a new attempt, which begins again at NEW; the previous attempt's
history is kept.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "JobState",
    "can_transition",
    "is_terminal",
]


class JobState(StrEnum):
    """A job's state as hpcbox reports it; the backend's own state is kept beside it."""

    NEW = "NEW"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    ERROR = "ERROR"


TERMINAL_STATES: frozenset[JobState] = frozenset(
    {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.OUT_OF_MEMORY,
        JobState.NODE_FAIL,
        JobState.ERROR,
    }
)
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.NEW, JobState.PENDING, JobState.RUNNING})

# Remote schedulers are polled, so a short job can go from PENDING straight to a
# terminal state between two polls; the table allows it rather than inventing a
# RUNNING that nobody observed.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.NEW: frozenset({JobState.PENDING}) | TERMINAL_STATES,
    JobState.PENDING: frozenset({JobState.RUNNING}) | TERMINAL_STATES,
    JobState.RUNNING: TERMINAL_STATES,
    **{state: frozenset() for state in TERMINAL_STATES},
}


def is_terminal(state: JobState) -> bool:
    """True when the attempt is over and its state will not change again."""
    return state in TERMINAL_STATES


def can_transition(current: JobState, new: JobState) -> bool:
    """True when ``current -> new`` is allowed within one attempt.

    Staying in the same state is allowed (a native state or reason may change
    while hpcbox's state does not).
    """
    return new == current or new in TRANSITIONS[current]
