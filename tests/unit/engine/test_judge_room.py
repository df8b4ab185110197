"""check_room: the queue's fill level is counted in the store when it may be near
full, and a recent count stands in for a new one while the queue is far from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.errors import TransientError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.model import Submission
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.judge.queue.queue import JudgeQueue
from hpcbox.judge.store.repository import SubmissionStore
from tests.unit.engine.test_judge_waiters import _SlowJudge

_SUB = Submission(language="python3", source=b"print(1)\n")


class _CountingStore(SubmissionStore):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.counts = 0

    def count_queued(self) -> int:
        self.counts += 1
        return super().count_queued()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _queue(tmp_path: Path, size: int) -> tuple[JudgeQueue, _CountingStore, _Clock]:
    # Not started: nothing is judged, so every submission stays queued.
    store = _CountingStore(open_engine(Settings(home=tmp_path)))
    clock = _Clock()
    queue = JudgeQueue(store, QueueConfig(max_queue_size=size), _SlowJudge(0), clock=clock)
    return queue, store, clock


def test_far_from_full_one_count_a_second_serves(tmp_path: Path) -> None:
    queue, store, clock = _queue(tmp_path, 100)
    for _ in range(40):
        queue.submit(_SUB, api="judge0")
    assert store.counts == 1
    clock.now += 1.0  # the count is too old now
    queue.submit(_SUB, api="judge0")
    assert store.counts == 2


def test_near_full_every_submission_is_counted_and_the_limit_is_exact(tmp_path: Path) -> None:
    queue, store, _ = _queue(tmp_path, 10)
    for _ in range(10):
        queue.submit(_SUB, api="judge0")
    with pytest.raises(TransientError, match="queue is full"):
        queue.submit(_SUB, api="judge0")
    with pytest.raises(TransientError):
        queue.check_room(1)
    assert store.count_queued() == 10
    # Past half full, each one was counted in the store.
    assert store.counts >= 7


def test_other_processes_submissions_are_seen_within_a_second(tmp_path: Path) -> None:
    queue, _, clock = _queue(tmp_path, 4)
    other, _, _ = _queue(tmp_path, 4)  # another server sharing the database
    queue.submit(_SUB, api="judge0")
    for _ in range(3):
        other.submit(_SUB, api="judge0")
    clock.now += 1.0
    with pytest.raises(TransientError):
        queue.submit(_SUB, api="judge0")
