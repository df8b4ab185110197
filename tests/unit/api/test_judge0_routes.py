"""The /judge0 routes, per shared/specs/judge0-api.md, over a fake judge at the seam."""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import replace
from unittest import mock

import pytest
from fastapi.testclient import TestClient

from hpcbox.core.settings import Settings
from hpcbox.judge.judge0.mapping import ALL_FIELDS, DEFAULT_FIELDS
from hpcbox.judge.queue.config import QueueConfig
from tests.unit.api.judge_fakes import Harness, b64


def wait_done(client: TestClient, token: str, **params: str) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get(f"/judge0/submissions/{token}", params=params).json()
        if body["status"]["id"] > 2:
            return body
        time.sleep(0.01)
    raise AssertionError("not finished")


def test_async_create_then_get_default_fields(harness: Harness) -> None:
    r = harness.client.post(
        "/judge0/submissions",
        json={"source_code": "echo", "language_id": 71, "stdin": "hi\n", "expected_output": "hi"},
    )
    assert r.status_code == 201
    token = r.json()["token"]
    assert uuid.UUID(token).version == 4 and r.json() == {"token": token}
    body = wait_done(harness.client, token)
    assert set(body) == set(DEFAULT_FIELDS)
    assert body["status"] == {"id": 3, "description": "Accepted"}
    assert body["stdout"] == "hi\n"
    assert body["time"] == "0.012" and body["memory"] == 3072


def test_wait_true_returns_the_finished_submission(harness: Harness) -> None:
    started = time.monotonic()
    r = harness.client.post(
        "/judge0/submissions?wait=true&base64_encoded=true",
        json={"source_code": b64("echo"), "language_id": 71, "stdin": b64("x")},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["status"]["id"] == 3
    assert base64.b64decode(body["stdout"]) == b"x"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("segv", 7), ("fpe", 9), ("abrt", 10), ("exit3", 11), ("kill", 12), ("tle", 5),
        ("ce", 6), ("mle", 12), ("ole", 8), ("boom", 13),
    ],
)  # fmt: skip
def test_status_ids(harness: Harness, word: str, status: int) -> None:
    body = harness.client.post(
        "/judge0/submissions?wait=true&fields=*", json={"source_code": word, "language_id": 50}
    ).json()
    assert body["status"]["id"] == status
    if word == "exit3":
        assert body["exit_code"] == 3 and body["stderr"] == "oops"
        assert body["message"] == "Exited with error status 3"
    if word == "segv":
        assert body["exit_signal"] == 11
    if word == "ce":
        assert body["compile_output"] == "main.c:1: error"


def test_wrong_answer_and_trailing_whitespace(harness: Harness) -> None:
    post = harness.client.post
    wa = post(
        "/judge0/submissions?wait=true",
        json={"source_code": "echo", "language_id": 71, "stdin": "1", "expected_output": "2"},
    ).json()
    assert wa["status"] == {"id": 4, "description": "Wrong Answer"}


def test_fields_selection_and_star(harness: Harness) -> None:
    token = harness.client.post(
        "/judge0/submissions", json={"source_code": "echo", "language_id": 71, "stdin": "a"}
    ).json()["token"]
    wait_done(harness.client, token)
    some = harness.client.get(f"/judge0/submissions/{token}?fields=status,stdin,language_id")
    assert some.json() == {
        "status": {"id": 3, "description": "Accepted"},
        "stdin": "a",
        "language_id": 71,
    }
    every = harness.client.get(f"/judge0/submissions/{token}?fields=*").json()
    assert set(every) == set(ALL_FIELDS)
    assert every["memory_limit"] == 128000 and every["cpu_time_limit"] == 5.0
    assert every["wall_time_limit"] == 10.0 and every["number_of_runs"] == 1
    assert every["language"] == {"id": 71, "name": "Python (3.11.2)"}
    assert every["created_at"].endswith("Z") and every["finished_at"].endswith("Z")
    bad = harness.client.get(f"/judge0/submissions/{token}?fields=stdout,nope")
    assert bad.status_code == 400 and "nope" in bad.json()["error"]


def test_base64_in_and_out_and_non_utf8_output(harness: Harness) -> None:
    r = harness.client.post(
        "/judge0/submissions?base64_encoded=true&wait=true",
        json={"source_code": b64("bytes"), "language_id": 71},
    )
    body = r.json()
    assert base64.b64decode(body["stdout"]) == b"\xff\xfe"
    token = body["token"]
    plain = harness.client.get(f"/judge0/submissions/{token}")
    assert plain.status_code == 400 and "base64_encoded=true" in plain.json()["error"]
    encoded = harness.client.get(f"/judge0/submissions/{token}?base64_encoded=true&fields=*")
    assert base64.b64decode(encoded.json()["source_code"]) == b"bytes"
    # wait=true without base64: refused as Judge0 does, with the token to fetch it by.
    waited = harness.client.post(
        "/judge0/submissions?wait=true", json={"source_code": "bytes", "language_id": 71}
    )
    assert waited.status_code == 400 and "base64_encoded=true" in waited.json()["error"]
    again = waited.json()["token"]
    fetched = harness.client.get(f"/judge0/submissions/{again}?base64_encoded=true")
    assert base64.b64decode(fetched.json()["stdout"]) == b"\xff\xfe"


def test_invalid_base64_is_422(harness: Harness) -> None:
    r = harness.client.post(
        "/judge0/submissions?base64_encoded=true", json={"source_code": "@@@", "language_id": 71}
    )
    assert r.status_code == 422 and "source_code" in r.json()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu_time_limit", 15.1, "must be less than or equal to 15"),
        ("cpu_extra_time", 6, "must be less than or equal to 5"),
        ("wall_time_limit", 21, "must be less than or equal to 20"),
        ("memory_limit", 512001, "must be less than or equal to 512000"),
        ("stack_limit", 128001, "must be less than or equal to 128000"),
        ("max_processes_and_or_threads", 121, "must be less than or equal to 120"),
        ("max_file_size", 4097, "must be less than or equal to 4096"),
        ("number_of_runs", 21, "must be less than or equal to 20"),
        ("compiler_options", "x" * 513, "is too long (maximum is 512 characters)"),
        ("cpu_time_limit", -1, "must be greater than 0"),
        ("enable_network", True, "setting enable_network is not allowed"),
    ],
)
def test_limits_over_maximum_are_422_naming_the_field(
    harness: Harness, field: str, value: object, message: str
) -> None:
    body = {"source_code": "echo", "language_id": 71, field: value}
    r = harness.client.post("/judge0/submissions", json=body)
    assert r.status_code == 422
    assert r.json() == {field: [message]}


def test_maximums_themselves_are_accepted(harness: Harness) -> None:
    body = {
        "source_code": "echo",
        "language_id": 71,
        "cpu_time_limit": 15,
        "cpu_extra_time": 5,
        "wall_time_limit": 20,
        "memory_limit": 512000,
        "stack_limit": 128000,
        "max_processes_and_or_threads": 120,
        "max_file_size": 4096,
        "number_of_runs": 3,
    }
    r = harness.client.post("/judge0/submissions?wait=true&fields=*", json=body)
    assert r.status_code == 201
    got = r.json()
    assert got["memory_limit"] == 512000 and got["number_of_runs"] == 3
    sub = harness.judge.calls[-1]
    assert len(sub.tests) == 3
    assert sub.limits.memory_bytes == 512000 * 1024 and sub.limits.cpu_time_s == 15


def test_unknown_language_and_missing_source(harness: Harness) -> None:
    r = harness.client.post("/judge0/submissions", json={"source_code": "x", "language_id": 9999})
    assert r.status_code == 422
    assert r.json() == {"language_id": ["language with id 9999 doesn't exist"]}
    r = harness.client.post("/judge0/submissions", json={"language_id": 71})
    assert r.status_code == 422 and r.json() == {"source_code": ["can't be blank"]}


def test_unknown_token_is_404(harness: Harness) -> None:
    r = harness.client.get(f"/judge0/submissions/{uuid.uuid4()}")
    assert r.status_code == 404 and "error" in r.json()
    assert harness.client.delete(f"/judge0/submissions/{uuid.uuid4()}").status_code == 404


def test_batches(harness: Harness) -> None:
    r = harness.client.post(
        "/judge0/submissions/batch",
        json={
            "submissions": [
                {"source_code": "echo", "language_id": 71, "stdin": "1"},
                {"source_code": "echo", "language_id": 12345},
                {"source_code": "segv", "language_id": 50},
            ]
        },
    )
    assert r.status_code == 201
    items = r.json()
    assert "token" in items[0] and "token" in items[2]
    assert items[1] == {"language_id": ["language with id 12345 doesn't exist"]}
    tokens = [items[0]["token"], items[2]["token"]]
    for token in tokens:
        wait_done(harness.client, token)
    got = harness.client.get(
        "/judge0/submissions/batch", params={"tokens": ",".join([*tokens, str(uuid.uuid4())])}
    ).json()["submissions"]
    assert [s["status"]["id"] for s in got[:2]] == [3, 7]
    assert got[2] is None
    too_many = {"submissions": [{"source_code": "echo", "language_id": 71}] * 21}
    r = harness.client.post("/judge0/submissions/batch", json=too_many)
    # Judge0's own answers (submissions_controller): 400 for the batch's size.
    assert r.status_code == 400
    assert r.json() == {
        "error": "number of submissions in a batch should be less than or equal to 20"
    }
    r = harness.client.post("/judge0/submissions/batch", json={"submissions": []})
    assert r.status_code == 400
    assert r.json() == {"error": "there should be at least one submission in a batch"}
    # 422 only when no item is valid, each item's errors in place.
    r = harness.client.post(
        "/judge0/submissions/batch", json={"submissions": [{"language_id": 71}]}
    )
    assert r.status_code == 422 and r.json() == [{"source_code": ["can't be blank"]}]
    assert harness.client.get("/judge0/submissions/batch").status_code == 400
    r = harness.client.get("/judge0/submissions/batch", params={"tokens": ",".join(["x"] * 21)})
    assert r.status_code == 400 and "less than or equal to 20" in r.json()["error"]


def test_queue_full_is_503(settings: Settings) -> None:
    h = Harness(settings, QueueConfig(threads=1, max_queue_size=2))  # not started: nothing runs
    try:
        body = {"source_code": "echo", "language_id": 71}
        assert h.client.post("/judge0/submissions", json=body).status_code == 201
        assert h.client.post("/judge0/submissions", json=body).status_code == 201
        r = h.client.post("/judge0/submissions", json=body)
        assert r.status_code == 503 and r.json() == {"error": "queue is full"}
        batch = h.client.post("/judge0/submissions/batch", json={"submissions": [body]})
        assert batch.status_code == 503
        assert h.client.get("/judge0/config_info").json()["max_queue_size"] == 2
        queued = h.client.get(
            f"/judge0/submissions/{h.queue.store.page(offset=0, limit=1)[0][0].token}"
        )
        assert queued.json()["status"] == {"id": 1, "description": "In Queue"}
        workers = h.client.get("/judge0/workers").json()
        assert workers[0]["size"] == 2
    finally:
        h.close()


def test_delete(harness: Harness) -> None:
    token = harness.client.post(
        "/judge0/submissions?wait=true", json={"source_code": "echo", "language_id": 71}
    ).json()["token"]
    r = harness.client.delete(f"/judge0/submissions/{token}")
    assert r.status_code == 200 and r.json()["token"] == token
    assert harness.client.get(f"/judge0/submissions/{token}").status_code == 404


def test_list_paged(harness: Harness) -> None:
    for _ in range(3):
        harness.client.post("/judge0/submissions", json={"source_code": "echo", "language_id": 71})
    r = harness.client.get("/judge0/submissions?page=1&per_page=2").json()
    assert len(r["submissions"]) == 2
    assert r["meta"]["total_count"] == 3 and r["meta"]["total_pages"] == 2
    assert r["meta"]["next_page"] == 2


def test_information_routes(harness: Harness) -> None:
    c = harness.client
    langs = c.get("/judge0/languages").json()
    assert langs == [{"id": 50, "name": "C (GCC 12.2.0)"}, {"id": 71, "name": "Python (3.11.2)"}]
    one = c.get("/judge0/languages/50").json()
    assert one["source_file"] == "main.c" and one["compile_cmd"].startswith("/usr/bin/gcc")
    assert c.get("/judge0/languages/46").status_code == 404
    statuses = c.get("/judge0/statuses").json()
    assert len(statuses) == 14 and statuses[0] == {"id": 1, "description": "In Queue"}
    assert c.get("/judge0/about").json()["version"] == "1.13.1"
    assert "hpcbox_version" in c.get("/judge0/about").json()
    assert c.get("/judge0/version").text == "1.13.1"
    info = c.get("/judge0/config_info").json()
    keys = [
        "allow_enable_network",
        "allow_enable_per_process_and_thread_memory_limit",
        "allow_enable_per_process_and_thread_time_limit",
        "allowed_languages_for_compile_options",
        "callbacks_max_tries",
        "callbacks_timeout",
        "cpu_extra_time",
        "cpu_time_limit",
        "enable_additional_files",
        "enable_batched_submissions",
        "enable_callbacks",
        "enable_command_line_arguments",
        "enable_compiler_options",
        "enable_network",
        "enable_per_process_and_thread_memory_limit",
        "enable_per_process_and_thread_time_limit",
        "enable_submission_delete",
        "enable_wait_result",
        "maintenance_mode",
        "max_cpu_extra_time",
        "max_cpu_time_limit",
        "max_extract_size",
        "max_file_size",
        "max_max_file_size",
        "max_max_processes_and_or_threads",
        "max_memory_limit",
        "max_number_of_runs",
        "max_processes_and_or_threads",
        "max_queue_size",
        "max_stack_limit",
        "max_submission_batch_size",
        "max_wall_time_limit",
        "memory_limit",
        "number_of_runs",
        "redirect_stderr_to_stdout",
        "stack_limit",
        "submission_cache_duration",
        "use_docs_as_homepage",
        "wall_time_limit",
    ]
    assert set(keys) <= set(info)
    assert info["cpu_time_limit"] == 5 and info["max_memory_limit"] == 512000
    assert c.get("/judge0/system_info").status_code == 200
    assert c.get("/judge0/workers").json()[0]["available"] == 2
    c.post("/judge0/submissions?wait=true", json={"source_code": "echo", "language_id": 71})
    stats = c.get("/judge0/statistics").json()
    assert stats["submissions"]["total"] == 1
    assert stats["languages"][0]["language"] == {"id": 71, "name": "Python (3.11.2)"}


def test_metrics(harness: Harness) -> None:
    harness.client.post(
        "/judge0/submissions?wait=true", json={"source_code": "echo", "language_id": 71}
    )
    text = harness.client.get("/metrics").text
    assert 'hpcbox_judge_queue_depth{state="queued"} 0.0' in text
    assert 'hpcbox_judge_latency_seconds{language="python3",quantile="0.5"}' in text
    assert 'hpcbox_judge_pool_ready{language="python3"} 2.0' in text


def test_x_auth_token(settings: Settings) -> None:
    h = Harness(settings, QueueConfig(threads=1), token="s3cret")
    try:
        assert h.client.get("/judge0/languages").status_code == 401
        assert (
            h.client.get("/judge0/languages", headers={"X-Auth-Token": "nope"}).status_code == 401
        )
        ok = h.client.get("/judge0/languages", headers={"X-Auth-Token": "s3cret"})
        assert ok.status_code == 200
        bearer = h.client.get("/judge0/statuses", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 200
        assert h.client.get("/v1/submissions").status_code == 401
    finally:
        h.close()


def test_config_maximums_are_configurable(settings: Settings) -> None:
    h = Harness(settings, replace(QueueConfig(threads=1), max_queue_size=7))
    try:
        assert h.client.get("/judge0/config_info").json()["max_queue_size"] == 7
    finally:
        h.close()


def test_http_requests_counted_by_route_template_and_status(harness: Harness) -> None:
    c = harness.client
    c.get("/judge0/submissions/no-such-token")
    c.get("/judge0/languages")
    c.get("/no/such/route")
    text = c.get("/metrics").text
    # The route's template, not the token: one series however many submissions.
    assert (
        'hpcbox_http_requests_total{method="GET",route="/judge0/submissions/{token}",'
        'status="404"} 1.0' in text
    )
    assert 'route="/judge0/languages",status="200"} 1.0' in text
    assert 'hpcbox_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'hpcbox_http_request_seconds_count{route="/judge0/languages"} 1.0' in text


def test_default_judging_threads_are_four_per_cpu_capped() -> None:
    from hpcbox.core.settings import JudgeSettings
    from hpcbox.judge.queue import config as judge_queue_config

    def threads(env: dict[str, str]) -> int:
        return QueueConfig.from_settings(JudgeSettings.from_env(env)).threads

    assert threads({}) == judge_queue_config.default_threads()
    with mock.patch.object(judge_queue_config.os, "cpu_count", return_value=2):
        assert judge_queue_config.default_threads() == 8
    with mock.patch.object(judge_queue_config.os, "cpu_count", return_value=64):
        assert judge_queue_config.default_threads() == 32
    with mock.patch.object(judge_queue_config.os, "cpu_count", return_value=None):
        assert judge_queue_config.default_threads() == 4
    assert threads({"HPCBOX_JUDGE_THREADS": "3"}) == 3


def test_empty_outputs_are_null_as_in_judge0(harness: Harness) -> None:
    r = harness.client.post(
        "/judge0/submissions?wait=true&fields=*",
        json={"source_code": "echo", "language_id": 71, "stdin": "hi"},
    )
    got = r.json()
    assert got["stdout"] == "hi" and got["status"]["id"] == 3
    assert got["stderr"] is None and got["compile_output"] is None and got["message"] is None
    assert got["stdin"] == "hi"  # inputs are shown as given


def test_source_over_8_mib_is_refused() -> None:
    from hpcbox.judge.judge0.mapping import Judge0Config, Judge0ValidationError, parse_request
    from hpcbox.judge.model import MAX_SOURCE_BYTES

    body = {"source_code": "x" * (MAX_SOURCE_BYTES + 1), "language_id": 71}
    with pytest.raises(Judge0ValidationError) as err:
        parse_request(body, encoded=False, languages={71: "python3"}, config=Judge0Config())
    assert err.value.errors == {
        "source_code": [f"is too long (maximum is {MAX_SOURCE_BYTES} bytes)"]
    }
    at_most = {"source_code": "x" * MAX_SOURCE_BYTES, "language_id": 71}
    parse_request(at_most, encoded=False, languages={71: "python3"}, config=Judge0Config())


def test_paging_arguments_as_judge0_reads_them(harness: Harness) -> None:
    c = harness.client
    for _ in range(3):
        c.post("/judge0/submissions?wait=true", json={"source_code": "echo", "language_id": 71})
    for page, shown in (("0", "0"), ("-1", "-1"), ("abc", "0")):
        r = c.get("/judge0/submissions", params={"page": page})
        assert r.status_code == 400 and r.json() == {"error": f"invalid page: {shown}"}
    r = c.get("/judge0/submissions", params={"per_page": "-3"})
    assert r.status_code == 400 and r.json() == {"error": "invalid per_page: -3"}
    r = c.get("/judge0/submissions", params={"per_page": "0"})
    assert r.status_code == 200 and r.json()["meta"]["total_pages"] == 1
    r = c.get("/judge0/submissions", params={"per_page": "2", "page": "2"})
    assert len(r.json()["submissions"]) == 1 and r.json()["meta"]["prev_page"] == 1


def test_undecodable_output_only_matters_when_asked_for(harness: Harness) -> None:
    token = harness.client.post(
        "/judge0/submissions", json={"source_code": "bytes", "language_id": 71}
    ).json()["token"]
    wait_done(harness.client, token, fields="status")
    assert harness.client.get(f"/judge0/submissions/{token}").status_code == 400
    r = harness.client.get(f"/judge0/submissions/{token}", params={"fields": "token,status"})
    assert r.status_code == 200 and r.json() == {
        "token": token,
        "status": {"id": 3, "description": "Accepted"},
    }
