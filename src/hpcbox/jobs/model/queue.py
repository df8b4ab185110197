"""The local queue's decision: which pending jobs start now, and why the rest wait.

Pure: the engine hands in the queue and the free resources and applies the plan.
Strict first-in first-out, like a one-node SLURM without backfill: a job never
overtakes an earlier one, so a large job cannot starve behind a stream of
small ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["QueuePlan", "QueuedJob", "plan_queue"]


@dataclass(frozen=True)
class QueuedJob:
    job_id: int
    attempt: int
    cpus: int
    memory_bytes: int | None


@dataclass(frozen=True)
class QueuePlan:
    start: tuple[QueuedJob, ...]
    #: SLURM reasons for the jobs left waiting: "Resources" when the job itself
    #: does not fit now, "Priority" when it would fit but an earlier job waits.
    waiting: dict[tuple[int, int], str]


def plan_queue(queue: Sequence[QueuedJob], *, free_cpus: int, free_memory: int | None) -> QueuePlan:
    """Start jobs in order while they fit; ``free_memory`` None means unmetered."""
    start: list[QueuedJob] = []
    waiting: dict[tuple[int, int], str] = {}
    blocked = False
    for job in queue:
        fits = job.cpus <= free_cpus and (
            free_memory is None or (job.memory_bytes or 0) <= free_memory
        )
        if blocked or not fits:
            blocked = True
            waiting[(job.job_id, job.attempt)] = "Resources" if not fits else "Priority"
            continue
        start.append(job)
        free_cpus -= job.cpus
        if free_memory is not None:
            free_memory -= job.memory_bytes or 0
    return QueuePlan(start=tuple(start), waiting=waiting)
