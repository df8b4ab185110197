from __future__ import annotations

from hpcbox.jobs.model.queue import QueuedJob, plan_queue

G = 1024**3


def job(i: int, cpus: int = 1, mem: int | None = None) -> QueuedJob:
    return QueuedJob(job_id=i, attempt=1, cpus=cpus, memory_bytes=mem)


def test_starts_in_order_while_cpus_last() -> None:
    plan = plan_queue([job(1), job(2), job(3)], free_cpus=2, free_memory=None)
    assert [j.job_id for j in plan.start] == [1, 2]
    assert plan.waiting == {(3, 1): "Resources"}


def test_memory_is_a_limit_too() -> None:
    plan = plan_queue([job(1, mem=3 * G), job(2, mem=2 * G)], free_cpus=8, free_memory=4 * G)
    assert [j.job_id for j in plan.start] == [1]
    assert plan.waiting == {(2, 1): "Resources"}


def test_strict_fifo_never_overtakes() -> None:
    plan = plan_queue([job(1, cpus=4), job(2, cpus=1)], free_cpus=2, free_memory=None)
    assert plan.start == ()
    assert plan.waiting == {(1, 1): "Resources", (2, 1): "Priority"}


def test_empty_queue() -> None:
    plan = plan_queue([], free_cpus=0, free_memory=0)
    assert plan.start == ()
    assert plan.waiting == {}
