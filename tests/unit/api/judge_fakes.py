"""A fake judge at hpcbox's own seam (the JudgeFunction / JudgeService interface).

The real JudgeService is tested against these same routes in
tests/integration/judge_api. The "program" is a word saying what it does.
:class:`Harness` is the app around a fake judge (the ``harness`` fixture is in
conftest.py).
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass

from fastapi.testclient import TestClient

from hpcbox.api.app import create_app
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.engine import JobEngine
from hpcbox.judge.model import (
    JudgeResult,
    Submission,
    TestObserver,
    TestResult,
    Verdict,
)
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.judge.queue.queue import JudgeQueue
from hpcbox.judge.store.repository import SubmissionStore


@dataclass(frozen=True)
class FakeLanguage:
    key: str
    name: str
    judge0_id: int | None
    source_file: str
    compile_cmd: tuple[str, ...] | None
    run_cmd: tuple[str, ...]


LANGUAGES = [
    FakeLanguage(
        "python3", "Python (3.11.2)", 71, "script.py", None, ("/usr/bin/python3", "script.py")
    ),
    FakeLanguage("c", "C (GCC 12.2.0)", 50, "main.c", ("/usr/bin/gcc", "main.c"), ("./a.out",)),
    FakeLanguage("native-only", "Native only", None, "x", None, ("x",)),
]


def _strip(data: bytes) -> bytes:
    return b"\n".join(line.rstrip() for line in data.rstrip().split(b"\n"))


class FakeJudge:
    def __init__(self) -> None:
        self.calls: list[Submission] = []
        self.closed = False
        self.lock = threading.Lock()
        #: What the word "gate" waits for after its first test: holds a worker busy.
        self.gate = threading.Event()

    def languages(self) -> list[FakeLanguage]:
        return LANGUAGES

    def pool_occupancy(self) -> dict[str, int]:
        return {"python3": 2, "c": 1}

    def close(self) -> None:
        self.closed = True

    def __call__(
        self, submission: Submission, *, on_test: TestObserver | None = None
    ) -> JudgeResult:
        with self.lock:
            self.calls.append(submission)
        word = submission.source.decode(errors="replace").strip()
        if word == "boom":
            raise RuntimeError("judge broke")
        if word == "ce":
            return JudgeResult(verdict=Verdict.COMPILATION_ERROR, compile_output=b"main.c:1: error")
        results = []
        for i, test in enumerate(submission.tests):
            result = self._run(word, i, test.stdin, test.expected_output)
            results.append(result)
            if on_test:
                on_test(result)
        verdict = next(
            (r.verdict for r in results if r.verdict is not Verdict.ACCEPTED), Verdict.ACCEPTED
        )
        return JudgeResult(verdict=verdict, tests=tuple(results))

    def _run(self, word: str, i: int, stdin: bytes, expected: bytes | None) -> TestResult:
        base = {
            "index": i,
            "cpu_time_s": 0.012,
            "wall_time_s": 0.02,
            "peak_memory_bytes": 3 * 1024 * 1024,
        }
        if word == "gate":  # the first test runs, the others wait for the gate
            if i > 0:
                self.gate.wait(timeout=30)
            word = "echo"
        if word.startswith("sleep:"):
            time.sleep(float(word.split(":")[1]))
            word = "echo"
        if word == "echo":
            ok = expected is None or _strip(stdin) == _strip(expected)
            verdict = Verdict.ACCEPTED if ok else Verdict.WRONG_ANSWER
            return TestResult(verdict=verdict, stdout=stdin, exit_code=0, **base)
        if word == "segv":
            return TestResult(verdict=Verdict.RUNTIME_ERROR, exit_signal=11, **base)
        if word == "fpe":
            return TestResult(verdict=Verdict.RUNTIME_ERROR, exit_signal=8, **base)
        if word == "abrt":
            return TestResult(verdict=Verdict.RUNTIME_ERROR, exit_signal=6, **base)
        if word == "kill":
            return TestResult(verdict=Verdict.RUNTIME_ERROR, exit_signal=9, **base)
        if word == "exit3":
            return TestResult(verdict=Verdict.RUNTIME_ERROR, exit_code=3, stderr=b"oops", **base)
        if word == "tle":
            return TestResult(verdict=Verdict.TIME_LIMIT_EXCEEDED, exit_signal=9, **base)
        if word == "mle":
            return TestResult(verdict=Verdict.MEMORY_LIMIT_EXCEEDED, exit_signal=9, **base)
        if word == "ole":
            return TestResult(verdict=Verdict.OUTPUT_LIMIT_EXCEEDED, stdout=b"y" * 10, **base)
        if word == "bytes":
            return TestResult(verdict=Verdict.ACCEPTED, stdout=b"\xff\xfe", exit_code=0, **base)
        return TestResult(verdict=Verdict.INTERNAL_ERROR, message=f"unknown word {word}", **base)


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


class Harness:
    """The REST app with a real queue and store around a :class:`FakeJudge`."""

    def __init__(
        self,
        settings: Settings,
        config: QueueConfig,
        token: str | None = None,
        judge: FakeJudge | None = None,
    ) -> None:
        self.jobs = JobEngine(settings, scheduling="none")
        self.judge = judge or FakeJudge()
        self.queue = JudgeQueue(SubmissionStore(open_engine(settings)), config, self.judge)
        self.app = create_app(self.jobs, token=token, judge_queue=self.queue)
        self.client = TestClient(self.app)

    def start(self) -> Harness:
        """Start the queue and wait for its judge (the fake answers at once)."""
        self.queue.start()
        assert self.queue.wait_ready(10), "the fake judge did not get ready"
        return self

    def close(self) -> None:
        self.judge.gate.set()
        self.queue.close()
        self.jobs.close()
