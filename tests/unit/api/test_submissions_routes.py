"""The native /v1/submissions routes over a fake judge at the JudgeFunction seam
(the real JudgeService behind the same routes: tests/integration/judge_api)."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from hpcbox.core.settings import Settings
from hpcbox.judge.queue.config import QueueConfig
from tests.unit.api.judge_fakes import Harness, b64

URL = "/v1/submissions"


def wait_done(h: Harness, token: str, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body: dict[str, Any] = h.client.get(f"{URL}/{token}", params=params).json()
        if body["state"] == "done":
            return body
        time.sleep(0.01)
    raise AssertionError(f"{token} not finished")


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def submit(h: Harness, source: str, **body: Any) -> dict[str, Any]:
    r = h.client.post(URL, json={"language": "c", "source": source, **body})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_many_tests_are_compiled_once_with_a_result_each(harness: Harness) -> None:
    tests = [{"stdin": f"{n}\n", "expected_output": f"{n}"} for n in range(5)]
    tests[3]["expected_output"] = "wrong"
    r = harness.client.post(URL, json={"language": "c", "source": "echo", "tests": tests})
    assert r.status_code == 201
    created = r.json()
    token = created["token"]
    assert uuid.UUID(token) and r.headers["location"] == f"{URL}/{token}"
    assert created["tests_total"] == 5 and created["language"] == "c"
    body = wait_done(harness, token)
    assert len(harness.judge.calls) == 1  # one judgement: compiled once for all tests
    assert [t.stdin for t in harness.judge.calls[0].tests] == [f"{n}\n".encode() for n in range(5)]
    assert body["verdict"] == "wrong_answer"  # the first failing test's verdict
    assert [t["index"] for t in body["tests"]] == [0, 1, 2, 3, 4]
    assert [t["verdict"] for t in body["tests"]] == ["accepted"] * 3 + ["wrong_answer", "accepted"]
    first = body["tests"][0]
    assert first["stdout"] == "0\n" and first["exit_code"] == 0
    assert first["cpu_time_s"] == 0.012 and first["wall_time_s"] == 0.02
    assert first["peak_memory_bytes"] == 3 * 1024 * 1024
    assert body["started_at"] and body["finished_at"] and body["runs"] == 1


@pytest.mark.parametrize(
    ("word", "verdict", "extra"),
    [
        ("echo", "accepted", {"exit_code": 0}),
        ("mle", "memory_limit_exceeded", {"exit_signal": 9}),
        ("ole", "output_limit_exceeded", {"stdout": "y" * 10}),
        ("tle", "time_limit_exceeded", {"exit_signal": 9}),
        ("segv", "runtime_error", {"exit_signal": 11}),
        ("exit3", "runtime_error", {"exit_code": 3, "stderr": "oops"}),
    ],
)
def test_exact_verdicts(harness: Harness, word: str, verdict: str, extra: dict[str, Any]) -> None:
    r = harness.client.post(f"{URL}?wait=true", json={"language": "c", "source": word})
    assert r.status_code == 201
    body = r.json()
    assert body["state"] == "done" and body["verdict"] == verdict
    (test,) = body["tests"]
    assert test["verdict"] == verdict
    assert {key: test[key] for key in extra} == extra


def test_compilation_and_internal_errors(harness: Harness) -> None:
    ce = harness.client.post(f"{URL}?wait=true", json={"language": "c", "source": "ce"}).json()
    assert ce["verdict"] == "compilation_error" and ce["tests"] == []
    assert ce["compile_output"] == "main.c:1: error"
    broke = harness.client.post(f"{URL}?wait=true", json={"language": "c", "source": "boom"})
    assert broke.json()["verdict"] == "internal_error"
    assert "judge broke" not in json.dumps(broke.json()["tests"])


def test_per_test_results_by_polling_as_they_finish(harness: Harness) -> None:
    token = submit(harness, "gate", tests=[{"stdin": "a"}, {"stdin": "b"}, {"stdin": "c"}])["token"]
    poll = f"{URL}/{token}/tests"
    # The gate holds the judge after test 0: its result is there before the others run.
    until(lambda: harness.client.get(poll).json()["tests"], "test 0")
    partial = harness.client.get(poll).json()
    assert partial["state"] == "processing" and partial["done"] is False
    assert partial["verdict"] is None
    assert [(t["index"], t["stdout"]) for t in partial["tests"]] == [(0, "a")]
    shown = harness.client.get(f"{URL}/{token}").json()
    assert shown["state"] == "processing" and [t["index"] for t in shown["tests"]] == [0]
    harness.judge.gate.set()
    wait_done(harness, token)
    rest = harness.client.get(poll, params={"after": 0}).json()
    assert rest["done"] is True and rest["verdict"] == "accepted"
    assert [(t["index"], t["stdout"]) for t in rest["tests"]] == [(1, "b"), (2, "c")]
    assert harness.client.get(poll, params={"after": 2}).json()["tests"] == []
    assert harness.client.get(poll, params={"after": -2}).status_code == 422


def test_per_test_results_by_server_sent_events(harness: Harness) -> None:
    token = submit(harness, "gate", tests=[{"stdin": "a"}, {"stdin": "b"}, {"stdin": "c"}])["token"]

    def release_after_first_test() -> None:
        until(lambda: harness.queue.store.tests(token), "test 0")
        time.sleep(0.05)  # let the stream send test 0 while the others wait
        harness.judge.gate.set()

    releaser = threading.Thread(target=release_after_first_test)
    releaser.start()
    try:
        r = harness.client.get(f"{URL}/{token}/events")
    finally:
        releaser.join()
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [name for name, _ in events] == ["test", "test", "test", "done"]
    assert [data["index"] for _, data in events[:3]] == [0, 1, 2]
    assert [data["stdout"] for _, data in events[:3]] == ["a", "b", "c"]
    done = events[-1][1]
    assert done["token"] == token and done["verdict"] == "accepted"
    # A finished submission replays every test, then done; base64 on request.
    again = sse_events(harness.client.get(f"{URL}/{token}/events?base64=true").text)
    assert [base64.b64decode(d["stdout"]) for n, d in again if n == "test"] == [b"a", b"b", b"c"]


def test_base64_in_and_out(harness: Harness) -> None:
    r = harness.client.post(
        f"{URL}?wait=true",
        json={
            "language": "c",
            "source": b64("echo"),
            "tests": [{"stdin": b64(b"\x00\xff\n"), "expected_output": b64(b"\x00\xff")}],
            "base64": True,
        },
    )
    body = r.json()
    assert body["verdict"] == "accepted"
    assert base64.b64decode(body["tests"][0]["stdout"]) == b"\x00\xff\n"
    assert harness.judge.calls[-1].source == b"echo"
    token = body["token"]
    plain = harness.client.get(f"{URL}/{token}").json()
    assert plain["tests"][0]["stdout"] == "\x00\ufffd\n"  # invalid UTF-8 replaced
    encoded = harness.client.get(f"{URL}/{token}?base64=true").json()
    assert base64.b64decode(encoded["tests"][0]["stdout"]) == b"\x00\xff\n"


def test_hostile_text_is_judged_verbatim(harness: Harness) -> None:
    stdin = "☃ 𝄞\u202e\x00\r\nline\n" + "z" * 1_000_000
    body = submit(harness, "echo", tests=[{"stdin": stdin}], compiler_options="; rm -rf / $(id)")
    done = wait_done(harness, body["token"])
    assert done["tests"][0]["stdout"] == stdin
    assert harness.judge.calls[-1].compiler_options == "; rm -rf / $(id)"


def test_idempotency_key(harness: Harness) -> None:
    body = {"language": "c", "source": "echo", "tests": [{"stdin": "1"}]}
    key = {"Idempotency-Key": "exam-42/alice"}
    first = harness.client.post(URL, json=body, headers=key)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = harness.client.post(URL, json=body, headers=key)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["token"] == first.json()["token"]
    other = harness.client.post(URL, json={**body, "tests": [{"stdin": "2"}]}, headers=key)
    assert other.status_code == 409
    assert "idempotency" in json.dumps(other.json()).lower()
    # Without a key, the same body makes a new submission every time.
    assert submit(harness, "echo")["token"] != submit(harness, "echo")["token"]
    wait_done(harness, first.json()["token"])
    assert harness.client.get(URL).headers["x-total-count"] == "3"
    long_key = harness.client.post(URL, json=body, headers={"Idempotency-Key": "k" * 256})
    assert long_key.status_code == 422


def test_an_exam_runs_ahead_of_practice(settings: Settings) -> None:
    h = Harness(settings, QueueConfig(threads=1, lease_s=5))
    h.start()
    try:
        blocker = submit(h, "gate", tests=[{}, {}])["token"]
        # The only judging thread is now held by the blocker.
        until(lambda: h.client.get(f"{URL}/{blocker}").json()["state"] == "processing", "claim")
        practice = [submit(h, "echo", tests=[{"stdin": f"p{n}"}])["token"] for n in range(3)]
        exam = submit(h, "echo", tests=[{"stdin": "exam"}], priority=9)
        assert exam["priority"] == 9 and exam["state"] == "queued"
        h.judge.gate.set()
        for token in [*practice, exam["token"]]:
            wait_done(h, token)
        order = [call.tests[0].stdin for call in h.judge.calls]
        assert order == [b"", b"exam", b"p0", b"p1", b"p2"]
        started = {
            t: datetime.fromisoformat(h.client.get(f"{URL}/{t}").json()["started_at"])
            for t in [*practice, exam["token"]]
        }
        assert started[exam["token"]] <= min(started[t] for t in practice)
    finally:
        h.close()


def test_retention(harness: Harness) -> None:
    kept = wait_done(harness, submit(harness, "echo")["token"])
    finished = datetime.fromisoformat(kept["finished_at"])
    assert datetime.fromisoformat(kept["expires_at"]) - finished == timedelta(days=7)
    short = wait_done(harness, submit(harness, "echo", retention_s=0)["token"])
    assert short["expires_at"] == short["finished_at"]
    hour = wait_done(harness, submit(harness, "echo", retention_s=3600)["token"])
    assert datetime.fromisoformat(hour["expires_at"]) - datetime.fromisoformat(
        hour["finished_at"]
    ) == timedelta(hours=1)
    time.sleep(0.01)
    assert harness.queue.store.purge() == 1
    assert harness.client.get(f"{URL}/{short['token']}").status_code == 404
    assert harness.client.get(f"{URL}/{kept['token']}").status_code == 200
    too_long = harness.client.post(
        URL, json={"language": "c", "source": "echo", "retention_s": 91 * 24 * 3600}
    )
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["body", "retention_s"]


def test_unknown_tokens_are_404(harness: Harness) -> None:
    token = str(uuid.uuid4())
    for path in (f"{URL}/{token}", f"{URL}/{token}/tests", f"{URL}/{token}/events"):
        r = harness.client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"] == "NotFoundError"
    assert harness.client.delete(f"{URL}/{token}").status_code == 404
    assert harness.client.get(f"{URL}/not-a-token").status_code == 404


def test_delete(harness: Harness) -> None:
    token = wait_done(harness, submit(harness, "echo")["token"])["token"]
    r = harness.client.delete(f"{URL}/{token}")
    assert r.status_code == 200 and r.json()["token"] == token
    assert harness.client.get(f"{URL}/{token}").status_code == 404


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"language": "cobol", "source": "x"}, ["body", "language"]),
        ({"language": "c", "source": ""}, ["body", "source"]),
        ({"language": "c"}, ["body", "source"]),
        ({"language": "c", "source": "@@@", "base64": True}, ["body", "source"]),
        ({"language": "c", "source": b64("x"), "base64": True, "tests": [{"stdin": "a"}]},
         ["body", "tests", "0", "stdin"]),
        ({"language": "c", "source": "x", "tests": []}, ["body", "tests"]),
        ({"language": "c", "source": "x", "tests": [{}] * 1001}, ["body", "tests"]),
        ({"language": "c", "source": "x", "tests": [{"stdinn": "a"}]},
         ["body", "tests", 0, "stdinn"]),
        ({"language": "c", "source": "x", "priority": 10}, ["body", "priority"]),
        ({"language": "c", "source": "x", "priority": -1}, ["body", "priority"]),
        ({"language": "c", "source": "x", "limits": {"memory_bytes": 512_001 * 1024}},
         ["body", "limits", "memory_bytes"]),
        ({"language": "c", "source": "x", "limits": {"cpu_time_s": 16}},
         ["body", "limits", "cpu_time_s"]),
        ({"language": "c", "source": "x", "limits": {"cpu_time_s": 0}},
         ["body", "limits", "cpu_time_s"]),
        ({"language": "c", "source": "x", "compare": "checker"}, ["body", "checker"]),
        ({"language": "c", "source": "x", "compare": "fuzzy"}, ["body", "compare"]),
        ({"language": "c", "source": "x", "callback_url": "file:///etc/passwd"},
         ["body", "callback_url"]),
        ({"language": "c", "source": "x", "checker": {"language": "cobol", "source": "y"},
          "compare": "checker"}, ["body", "language"]),
        ({"language": "c", "source": "x", "compiler_options": "o" * 513},
         ["body", "compiler_options"]),
        ({"language": "c", "source": "x", "compiler_options": "-DX='unclosed"},
         ["body", "compiler_options"]),
        ({"language": "c", "source": "x", "command_line_arguments": '"a'},
         ["body", "command_line_arguments"]),
        ({"language": "c", "source": "x", "unknown": 1}, ["body", "unknown"]),
    ],
)  # fmt: skip
def test_invalid_requests_are_422_naming_the_field(
    harness: Harness, body: dict[str, Any], loc: list[str | int]
) -> None:
    r = harness.client.post(URL, json=body)
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["detail"]] == [loc]
    assert harness.judge.calls == []


def test_lone_surrogates_are_422_not_a_crash(harness: Harness) -> None:
    # "\ud800" is valid JSON but no UTF-8: found by this test (each was a 500: in
    # to_submission, in hashing the body, or in rendering FastAPI's 422 echoing it).
    for body, loc in (
        ({"language": "c", "source": "\ud800"}, ["body", "source"]),
        ({"language": "c", "source": "x", "tests": [{"stdin": "a\udfff"}]},
         ["body", "tests", "0", "stdin"]),
        ({"language": "\ud800", "source": "x"}, ["body", "language"]),
        ({"language": "c", "source": "x", "compiler_options": "\ud800"},
         ["body", "compiler_options"]),
        ({"language": "c", "source": "x", "callback_url": "\ud800"}, ["body", "callback_url"]),
        ({"language": "c", "source": "x", "unknown\ud800": 1}, ["body"]),
    ):  # fmt: skip
        raw = json.dumps(body)  # escaped as \ud800: httpx's json= cannot encode it
        r = harness.client.post(URL, content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        assert [d["loc"] for d in r.json()["detail"]] == [loc]


def test_list_filters_and_pages(harness: Harness) -> None:
    tokens = [wait_done(harness, submit(harness, "echo")["token"])["token"] for _ in range(3)]
    page = harness.client.get(URL, params={"limit": 2})
    assert page.headers["x-total-count"] == "3"
    assert [s["token"] for s in page.json()] == tokens[::-1][:2]  # newest first
    rest = harness.client.get(URL, params={"limit": 2, "offset": 2}).json()
    assert [s["token"] for s in rest] == [tokens[0]]
    assert harness.client.get(URL, params={"state": "queued"}).json() == []
    assert harness.client.get(URL, params={"state": "nope"}).status_code == 422


def test_bearer_token_when_configured(settings: Settings) -> None:
    h = Harness(settings, QueueConfig(threads=1), token="s3cret")
    h.start()
    try:
        body = {"language": "c", "source": "echo"}
        assert h.client.post(URL, json=body).status_code == 401
        wrong = h.client.post(URL, json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert "s3cret" not in wrong.text
        ok = {"Authorization": "Bearer s3cret"}
        made = h.client.post(f"{URL}?wait=true", json=body, headers=ok)
        assert made.status_code == 201 and made.json()["verdict"] == "accepted"
        token = made.json()["token"]
        for path in (URL, f"{URL}/{token}", f"{URL}/{token}/tests", f"{URL}/{token}/events"):
            assert h.client.get(path).status_code == 401, path
            assert h.client.get(path, headers=ok).status_code == 200, path
        assert h.client.delete(f"{URL}/{token}").status_code == 401
        assert h.client.delete(f"{URL}/{token}", headers=ok).status_code == 200
        # Judge0's X-Auth-Token is for /judge0 only.
        assert h.client.get(URL, headers={"X-Auth-Token": "s3cret"}).status_code == 401
    finally:
        h.close()


def test_queue_full_is_503(settings: Settings) -> None:
    h = Harness(settings, QueueConfig(threads=1, max_queue_size=1))  # not started
    try:
        assert h.client.post(URL, json={"language": "c", "source": "echo"}).status_code == 201
        full = h.client.post(URL, json={"language": "c", "source": "echo"})
        assert full.status_code == 503 and full.headers["retry-after"] == "1"
    finally:
        h.close()
