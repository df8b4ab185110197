"""wait=true: a request waiting for a submission judged in this process is handed
the finished record when its run ends, without reading the store over and over."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.model import JudgeResult, Submission, SubmissionState, TestObserver, Verdict
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.judge.queue.queue import JudgeQueue
from hpcbox.judge.store.repository import SubmissionRecord, SubmissionStore
from tests.unit.api.judge_fakes import LANGUAGES, FakeLanguage

_SUB = Submission(language="python3", source=b"print(1)\n")


class _SlowJudge:
    """Accepts every submission after ``seconds``; released early by ``go``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.go = threading.Event()

    def __call__(
        self, submission: Submission, *, on_test: TestObserver | None = None
    ) -> JudgeResult:
        self.go.wait(self.seconds)
        return JudgeResult(verdict=Verdict.ACCEPTED)

    def languages(self) -> list[FakeLanguage]:
        return LANGUAGES

    def pool_occupancy(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


class _CountingStore(SubmissionStore):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gets = 0

    def get(self, token: str) -> SubmissionRecord:
        self.gets += 1
        return super().get(token)


def _queue(tmp_path: Path, judge: _SlowJudge, threads: int) -> tuple[JudgeQueue, _CountingStore]:
    store = _CountingStore(open_engine(Settings(home=tmp_path)))
    queue = JudgeQueue(store, QueueConfig(threads=threads), judge)
    queue.start()
    assert queue.wait_ready(10)
    return queue, store


def test_a_waiter_is_handed_the_record_when_its_run_ends(tmp_path: Path) -> None:
    judge = _SlowJudge(seconds=30)
    queue, store = _queue(tmp_path, judge, threads=1)
    try:
        record = queue.submit(_SUB, api="judge0")[0]

        async def wait() -> tuple[SubmissionRecord, float]:
            waiting = asyncio.ensure_future(queue.wait_async(record.token, timeout=60))
            await asyncio.sleep(0.3)  # listed, first read done: the run is still going
            released = time.monotonic()
            judge.go.set()
            done = await waiting
            return done, time.monotonic() - released

        done, after = asyncio.run(wait())
        assert done.state == SubmissionState.DONE and done.result is not None
        assert done.result.verdict == Verdict.ACCEPTED
        # Handed over at once (the store's first re-read would have come 0.25 s
        # after the first read, the next ones 0.5 and 1 s apart).
        assert after < 0.2
        assert store.gets <= 4
        assert not queue._waiters  # nothing left listed
    finally:
        judge.go.set()
        queue.close()


def test_a_waiter_times_out_with_the_record_as_it_is(tmp_path: Path) -> None:
    judge = _SlowJudge(seconds=0)
    queue, _ = _queue(tmp_path, judge, threads=0)  # nobody runs it
    try:
        record = queue.submit(_SUB, api="judge0")[0]
        start = time.monotonic()
        seen = asyncio.run(queue.wait_async(record.token, timeout=0.3))
        assert seen.state == SubmissionState.QUEUED
        assert 0.3 <= time.monotonic() - start < 2
        assert not queue._waiters
    finally:
        queue.close()


def test_a_run_that_ended_before_the_wait_shows_in_the_first_read(tmp_path: Path) -> None:
    judge = _SlowJudge(seconds=0)
    queue, store = _queue(tmp_path, judge, threads=1)
    try:
        record = queue.submit(_SUB, api="judge0")[0]
        deadline = time.monotonic() + 10
        while store.get(record.token).state != SubmissionState.DONE and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = asyncio.run(queue.wait_async(record.token, timeout=5))
        assert seen.state == SubmissionState.DONE
    finally:
        queue.close()


def test_a_waiter_listed_before_its_submission_reads_nothing(tmp_path: Path) -> None:
    """wait=true on /judge0: the waiter is listed under a token made before the
    submission is stored, so even a run that ends at once is handed over."""
    judge = _SlowJudge(seconds=0)
    queue, store = _queue(tmp_path, judge, threads=1)
    try:

        async def submit_and_wait() -> SubmissionRecord:
            with queue.waiter("5f0c4b1e-8f6a-4e59-9d43-0c2a4f1b7e21") as waiter:
                queue.submit(_SUB, api="judge0", token=waiter.token)
                return await waiter.wait(30, read_first=False)

        done = asyncio.run(submit_and_wait())
        assert (
            done.state == SubmissionState.DONE
            and done.token == "5f0c4b1e-8f6a-4e59-9d43-0c2a4f1b7e21"
        )
        # Handed over, not found by reading (one read at most, should the run take
        # longer than the first 0.25 s between reads on a loaded machine).
        assert store.gets <= 1
        assert not queue._waiters
    finally:
        queue.close()
