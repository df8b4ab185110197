"""The watcher's arithmetic: what to ask after squeue, how long to wait, how fast to go.

Pure: no clock is read here. Callers pass the time (a monotonic clock's
seconds) and keep the returned values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hpcbox.jobs.backends.slurm.commands import SlurmStatus
from hpcbox.jobs.model.states import is_terminal

__all__ = ["PollPlan", "next_interval"]


@dataclass(frozen=True)
class PollPlan:
    """Which active jobs of a target need sacct after one squeue.

    ``missing``: squeue does not list them -- they left the queue long enough
    ago that slurmctld forgot them (or, with a single id, squeue failed with
    "Invalid job id"). ``ended``: squeue lists them in a terminal state, which
    is final, but squeue has no exit code. Both go to one sacct call
    (:attr:`sacct_ids`); without accounting, the exit-code file is next.
    """

    ended: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def sacct_ids(self) -> tuple[str, ...]:
        """The ids for the one sacct call of this poll (none: skip it)."""
        return self.ended + self.missing

    @classmethod
    def after_squeue(
        cls, active_ids: Sequence[str], reported: Mapping[str, SlurmStatus]
    ) -> PollPlan:
        """The plan for ``active_ids`` given squeue's answer ``reported`` (by job id).

        A job whose native state hpcbox does not know (``state`` None) is
        neither: it stays in the queue as far as the watcher is concerned.
        """
        ended = []
        missing = []
        for job_id in dict.fromkeys(active_ids):
            status = reported.get(job_id)
            if status is None:
                missing.append(job_id)
            elif status.state is not None and is_terminal(status.state):
                ended.append(job_id)
        return cls(ended=tuple(ended), missing=tuple(missing))


def next_interval(current: float, *, changed: bool, min_s: float, max_s: float) -> float:
    """The poll interval after one that took ``current`` seconds.

    Halves toward ``min_s`` when the poll saw a change (more are likely
    soon: jobs start and end in waves), else grows by half toward ``max_s``.
    ``current`` outside the bounds is first brought inside them. Raises
    :class:`ValueError` unless ``0 < min_s <= max_s``.
    """
    if not 0 < min_s <= max_s:
        raise ValueError(f"need 0 < min_s <= max_s, got min_s={min_s}, max_s={max_s}")
    current = min(max(current, min_s), max_s)
    return max(min_s, current / 2) if changed else min(max_s, current * 1.5)
