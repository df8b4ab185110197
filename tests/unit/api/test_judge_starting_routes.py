"""A server whose judge is still starting (its runtime being built) answers every
client at once: 503 with Retry-After and a JSON body on the routes that need the
judge, Judge0's shape under /judge0 and hpcbox's under /v1; the other routes as
usual. The real serve does the same in tests/integration/judge/test_judge_runtime_location.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hpcbox.core.errors import PermanentError
from hpcbox.core.settings import Settings
from hpcbox.judge.queue import queue as judge_queue_mod
from hpcbox.judge.queue.config import QueueConfig
from tests.unit.api.judge_fakes import LANGUAGES, FakeJudge, FakeLanguage, Harness, b64


class _StartingJudge(FakeJudge):
    """A fake judge whose start-up (its first languages()) lasts until ``built``,
    or fails while ``broken``."""

    def __init__(self) -> None:
        super().__init__()
        self.built = threading.Event()
        self.broken = False

    def languages(self) -> list[FakeLanguage]:
        while not self.built.wait(0.01):
            if self.closed:
                raise PermanentError("closed")
        if self.broken:
            raise PermanentError("debootstrap not found; install it: apt-get install debootstrap")
        return LANGUAGES

    def close(self) -> None:
        self.built.set()
        super().close()


@pytest.fixture
def starting(settings: Settings) -> Iterator[Harness]:
    h = Harness(settings, QueueConfig(threads=1, lease_s=5), judge=_StartingJudge())
    h.queue.start()
    yield h
    h.close()


def _judge(h: Harness) -> _StartingJudge:
    assert isinstance(h.judge, _StartingJudge)
    return h.judge


_SUBMISSION = {"source_code": "echo", "language_id": 71, "stdin": "x"}

#: (method, path, json body) of every route that needs the judge.
_NEEDS_JUDGE = [
    ("GET", "/judge0/languages", None),
    ("GET", "/judge0/languages/all", None),
    ("GET", "/judge0/languages/71", None),
    ("POST", "/judge0/submissions", _SUBMISSION),
    ("POST", "/judge0/submissions?wait=true", _SUBMISSION),
    ("POST", "/judge0/submissions/batch", {"submissions": [_SUBMISSION]}),
]


def _timed(client: TestClient, method: str, path: str, body: object) -> tuple[float, object]:
    started = time.monotonic()
    response = client.request(method, path, json=body)
    return time.monotonic() - started, response


@pytest.mark.parametrize(("method", "path", "body"), _NEEDS_JUDGE)
def test_judge0_routes_that_need_the_judge_answer_503_at_once(
    starting: Harness, method: str, path: str, body: object
) -> None:
    took, response = _timed(starting.client, method, path, body)
    assert took < 1.0
    assert response.status_code == 503, response.text  # type: ignore[attr-defined]
    assert response.headers["retry-after"] == "5"  # type: ignore[attr-defined]
    data = response.json()  # type: ignore[attr-defined]
    assert set(data) == {"error"} and data["error"].startswith("the judge is starting")


def test_native_submissions_answer_503_in_hpcbox_shape(starting: Harness) -> None:
    body = {"language": "python3", "source": "echo"}
    took, response = _timed(starting.client, "POST", "/v1/submissions", body)
    assert took < 1.0 and response.status_code == 503  # type: ignore[attr-defined]
    assert response.headers["retry-after"] == "5"  # type: ignore[attr-defined]
    data = response.json()  # type: ignore[attr-defined]
    assert data["error"] == "JudgeNotReadyError"
    assert data["detail"].startswith("the judge is starting")


def test_routes_that_do_not_need_the_judge_answer_as_usual(starting: Harness) -> None:
    client = starting.client
    about = client.get("/judge0/about")
    assert about.status_code == 200 and about.json()["version"] == "1.13.1"
    assert client.get("/judge0/config_info").status_code == 200
    assert client.get("/judge0/statuses").status_code == 200
    assert client.get("/judge0/version").status_code == 200
    assert client.get("/judge0/workers").status_code == 200
    assert client.get("/judge0/statistics").status_code == 200
    assert client.get("/judge0/submissions").json()["submissions"] == []
    assert client.get("/judge0/submissions/nope").status_code == 404
    assert client.get("/v1/submissions").json() == []
    assert client.get("/metrics").status_code == 200
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["judge"] == "starting"


def test_once_ready_everything_works(starting: Harness) -> None:
    client = starting.client
    assert client.get("/judge0/languages").status_code == 503
    _judge(starting).built.set()
    assert starting.queue.wait_ready(5)
    names = {lang["id"] for lang in client.get("/judge0/languages").json()}
    assert names == {71, 50}
    made = client.post(
        "/judge0/submissions?wait=true&base64_encoded=true",
        json={"source_code": b64("echo"), "language_id": 71, "stdin": b64("hi")},
    )
    assert made.status_code == 201 and made.json()["status"]["id"] == 3
    assert client.get("/health").json()["judge"] == "ready"


def test_a_judge_that_cannot_start_says_why(starting: Harness) -> None:
    judge = _judge(starting)
    judge.broken = True
    judge.built.set()
    deadline = time.monotonic() + 5
    while starting.client.get("/health").json()["judge"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    health = starting.client.get("/health").json()
    assert "apt-get install debootstrap" in health["judge_error"]
    response = starting.client.get("/judge0/languages")
    assert response.status_code == 503
    # Until the next try (the first after 30 s).
    first = judge_queue_mod._RESTART_AFTER_S[0]
    assert first - 5 <= int(response.headers["retry-after"]) <= first
    error = response.json()["error"]
    assert error.startswith("the judge could not start: debootstrap not found")
    assert "next try in" in error
