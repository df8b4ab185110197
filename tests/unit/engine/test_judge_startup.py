"""The queue prepares its judge in the background: until it is ready, what needs the
judge fails at once with JudgeNotReadyError (never waits for a build of minutes),
queued submissions wait, and a failed start is tried again. A fake judge at
hpcbox's own seam (JudgeBackend) stands for a build that takes its time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.model import JudgeResult, Submission, SubmissionState, TestObserver, Verdict
from hpcbox.judge.queue import queue as judge_queue_mod
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.judge.queue.queue import (
    JudgeNotReadyError,
    JudgeQueue,
    JudgeReadiness,
    StartupTracker,
)
from hpcbox.judge.store.repository import SubmissionStore
from tests.unit.api.judge_fakes import LANGUAGES, FakeLanguage

_SUB = Submission(language="python3", source=b"print(1)\n")


class _SlowStartJudge:
    """languages() blocks until ``built`` is set (a build under way), or fails
    ``failures`` times first; close() cancels a start as the real one does."""

    def __init__(self, *, failures: int = 0, startup: StartupTracker | None = None) -> None:
        self.built = threading.Event()
        self.closed = threading.Event()
        self.failures = failures
        self.starts = 0
        self.judged: list[Submission] = []
        self.startup = startup

    def languages(self) -> list[FakeLanguage]:
        self.starts += 1
        if self.failures:
            self.failures -= 1
            raise PermanentError("debootstrap failed (exit status 1):\nE: no mirror")
        if self.startup is not None:
            with self.startup.step("building the judge runtime", waiting_for="debootstrap"):
                self.startup.waiting("debootstrap: downloading packages")
                self._wait_built()
        else:
            self._wait_built()
        return LANGUAGES

    def _wait_built(self) -> None:
        while not self.built.wait(0.01):
            if self.closed.is_set():
                raise PermanentError("the judge service is closed")

    def __call__(
        self, submission: Submission, *, on_test: TestObserver | None = None
    ) -> JudgeResult:
        self.judged.append(submission)
        return JudgeResult(verdict=Verdict.ACCEPTED)

    def pool_occupancy(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self.closed.set()


def _store(tmp_path: Path) -> SubmissionStore:
    return SubmissionStore(open_engine(Settings(home=tmp_path)))


def _fails_at_once(call: object) -> JudgeNotReadyError:
    started = time.monotonic()
    with pytest.raises(JudgeNotReadyError) as caught:
        call()  # type: ignore[operator]
    assert time.monotonic() - started < 0.5, "a request waited for the judge"
    return caught.value


def test_before_the_judge_is_ready_its_users_fail_at_once(tmp_path: Path) -> None:
    judge = _SlowStartJudge()
    queue = JudgeQueue(_store(tmp_path), QueueConfig(threads=1), judge).start()
    try:
        assert queue.status().readiness is JudgeReadiness.STARTING
        error = _fails_at_once(queue.languages)
        assert error.retry_after == 5.0 and "the judge is starting" in error.message
        _fails_at_once(lambda: queue.submit(_SUB, api="v1"))
        assert not queue.wait_ready(0.05)
        judge.built.set()
        assert queue.wait_ready(5)
        assert queue.status().readiness is JudgeReadiness.READY
        assert [lang.key for lang in queue.languages()] == [lang.key for lang in LANGUAGES]
        _, created = queue.submit(_SUB, api="v1")
        assert created and queue.wait_ready(0)
    finally:
        judge.built.set()
        queue.close()
    assert judge.starts == 1  # the languages found at start-up are kept


def test_queued_submissions_wait_for_the_judge_instead_of_failing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    # Queued before this server started (a restart): stored, not judged yet.
    record, _ = store.create(_SUB, api="v1")
    judge = _SlowStartJudge()
    queue = JudgeQueue(store, QueueConfig(threads=2), judge).start()
    try:
        time.sleep(0.3)
        assert store.get(record.token).state == SubmissionState.QUEUED and judge.judged == []
        judge.built.set()
        deadline = time.monotonic() + 10
        while store.get(record.token).state != SubmissionState.DONE and time.monotonic() < deadline:
            time.sleep(0.02)
        done = store.get(record.token)
        assert done.state == SubmissionState.DONE and done.result is not None
        assert done.result.verdict is Verdict.ACCEPTED
    finally:
        judge.built.set()
        queue.close()


def test_a_failed_start_is_reported_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(judge_queue_mod, "_RESTART_AFTER_S", (0.3, 0.3))
    judge = _SlowStartJudge(failures=1)
    judge.built.set()
    queue = JudgeQueue(_store(tmp_path), QueueConfig(threads=1), judge).start()
    try:
        deadline = time.monotonic() + 5
        while queue.status().readiness is JudgeReadiness.STARTING:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        status = queue.status()
        if status.readiness is JudgeReadiness.FAILED:  # else the retry already worked
            # Only the first line: a build's output stays in the log.
            assert status.message == "debootstrap failed (exit status 1):"
            error = _fails_at_once(queue.languages)
            assert "could not start: debootstrap failed" in error.message
            assert "next try in" in error.message and error.retry_after >= 5.0
        assert queue.wait_ready(5)
        assert judge.starts == 2
        assert queue.status().message == ""
    finally:
        queue.close()


def test_close_during_a_start_does_not_wait_for_it(tmp_path: Path) -> None:
    judge = _SlowStartJudge()
    queue = JudgeQueue(_store(tmp_path), QueueConfig(threads=2), judge).start()
    time.sleep(0.05)
    started = time.monotonic()
    queue.close()
    assert time.monotonic() - started < 3
    assert judge.closed.is_set()


def test_without_start_the_judge_starts_on_demand(tmp_path: Path) -> None:
    judge = _SlowStartJudge()
    judge.built.set()
    queue = JudgeQueue(_store(tmp_path), QueueConfig(threads=1), judge)
    assert queue.status().readiness is JudgeReadiness.ON_DEMAND
    assert queue.wait_ready(0)
    assert len(queue.languages()) == len(LANGUAGES)
    queue.close()


def test_clients_are_told_what_the_start_up_is_doing(tmp_path: Path) -> None:
    tracker = StartupTracker()
    judge = _SlowStartJudge(startup=tracker)
    queue = JudgeQueue(_store(tmp_path), QueueConfig(threads=1), judge, startup=tracker).start()
    try:
        deadline = time.monotonic() + 5
        while "downloading" not in tracker.doing():
            assert time.monotonic() < deadline
            time.sleep(0.005)
        error = _fails_at_once(queue.languages)
        assert (
            "building the judge runtime, waiting for debootstrap: downloading packages"
            in error.message
        )
        judge.built.set()
        assert queue.wait_ready(5)
        assert tracker.doing() == ""
    finally:
        judge.built.set()
        queue.close()


def test_the_tracker_follows_nested_steps() -> None:
    tracker = StartupTracker()
    assert tracker.doing() == ""
    with tracker.step("outer", waiting_for="a"):
        assert tracker.doing() == "outer, waiting for a"
        with tracker.step("inner"):
            assert tracker.doing() == "inner"
            tracker.waiting("b")
            assert tracker.doing() == "inner, waiting for b"
        assert tracker.doing() == "outer, waiting for a"
        with pytest.raises(RuntimeError), tracker.step("failing"):
            raise RuntimeError("x")
        assert tracker.doing() == "outer, waiting for a"
    assert tracker.doing() == ""
