"""The REST API against issue 2 (item 7) and docs/jobs.md, on a real ``hpcbox serve``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hpcbox.jobs.model.spec import parse_job_spec
from tests.contract.conftest import (
    JOB_FIELDS,
    TERMINAL,
    Server,
    cleanup_home,
    eventually,
    new_home,
    processes_with,
    require_sandbox,
)

pytestmark = pytest.mark.integration

ORDER = {"NEW": 0, "PENDING": 1, "RUNNING": 2, **dict.fromkeys(TERMINAL, 3)}


def assert_job_json(job: dict[str, Any]) -> None:
    missing = [field for field in JOB_FIELDS if field not in job]
    assert not missing, f"job JSON lacks {missing}: {job}"


def test_post_answers_201_with_the_job_and_get_list_agree(shared_server: Server) -> None:
    resp = shared_server.client.post(
        "/v1/jobs", json={"name": "rest-hello", "script": "echo hello from rest\n"}
    )
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert_job_json(job)
    assert job["name"] == "rest-hello"
    assert job["state"] in {"NEW", "PENDING", "RUNNING", "COMPLETED"}
    assert job["backend"] == "local"
    done = shared_server.wait_state(job["id"], TERMINAL)
    assert_job_json(done)
    assert done["state"] == "COMPLETED"
    assert done["exit_code"] == 0
    assert done["started_at"] and done["finished_at"]
    listed = shared_server.client.get("/v1/jobs").json()
    assert job["id"] in [j["id"] for j in listed]
    for item in listed:
        assert_job_json(item)


def test_time_limit_and_memory_forms(shared_server: Server) -> None:
    times = {90: 5400, "90": 5400, "10m": 600, "1:30:00": 5400, "2-00:00:00": 172800}
    memories = {"512M": 512 * 1024**2, "2G": 2 * 1024**3, "1024K": 1024 * 1024}
    for value, seconds in times.items():
        job = shared_server.submit({"command": ["true"], "resources": {"time_limit": value}})
        spec = parse_job_spec(job["spec"])
        assert spec.resources.time_limit == seconds, value
        # The spec a job shows is a valid body that means the same thing.
        again = shared_server.submit(job["spec"])
        assert parse_job_spec(again["spec"]) == spec
    for value, size in memories.items():
        job = shared_server.submit({"command": ["true"], "resources": {"memory": value}})
        assert parse_job_spec(job["spec"]).resources.memory == size, value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"script": "true", "resources": {"memory": "lots"}}, "memory"),
        ({"script": "true", "resources": {"time_limit": "soon"}}, "time_limit"),
        ({"script": "true", "resources": {"time_limit": -5}}, "time_limit"),
        ({"script": "true", "resources": {"cpus_per_task": 0}}, "cpus_per_task"),
        ({"script": "true", "resources": {"cpus_per_task": 64}}, "cpus_per_task"),
        ({"script": "true", "resources": {"ntasks": "two"}}, "ntasks"),
        ({"script": "true", "resources": {"nodes": 0}}, "nodes"),
        ({"script": "true", "env": {"1BAD": "x"}}, "env"),
        ({"script": "true", "workdir": "relative/dir"}, "workdir"),
        ({"script": "true", "scirpt": "typo"}, "scirpt"),
        ({"script": "true", "command": ["true"]}, ""),
        ({"name": "nothing to run"}, ""),
    ],
)
def test_invalid_specs_answer_422_with_field_messages(
    shared_server: Server, body: dict[str, Any], field: str
) -> None:
    before = len(shared_server.client.get("/v1/jobs", params={"limit": 10000}).json())
    resp = shared_server.client.post("/v1/jobs", json=body)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail
    for entry in detail:
        assert entry["msg"]
        assert isinstance(entry["loc"], list)
    if field:
        assert any(field in map(str, entry["loc"]) for entry in detail), detail
    after = len(shared_server.client.get("/v1/jobs", params={"limit": 10000}).json())
    assert after == before, "an invalid spec must not be queued"


def test_malformed_bodies_answer_422(shared_server: Server) -> None:
    client = shared_server.client
    not_json = client.post(
        "/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert client.post("/v1/jobs", json=["script", "true"]).status_code == 422
    assert client.get("/v1/jobs/abc").status_code == 422


def test_unknown_ids_answer_404(shared_server: Server) -> None:
    client = shared_server.client
    for method, path in [
        ("GET", "/v1/jobs/987654"),
        ("DELETE", "/v1/jobs/987654"),
        ("POST", "/v1/jobs/987654/rerun"),
        ("GET", "/v1/jobs/987654/logs"),
        ("GET", "/v1/jobs/987654/events"),
    ]:
        resp = client.request(method, path)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.text)


def test_delete_cancels_the_whole_tree_and_keeps_finished_jobs(shared_server: Server) -> None:
    marker = f"hpcbox-contract-rest-{uuid.uuid4().hex}"
    script = (
        f"(setsid bash -c 'exec -a {marker}-a sleep 300' >/dev/null 2>&1 &)\n"
        f"(bash -c '(exec -a {marker}-b sleep 300) &' >/dev/null 2>&1 &)\n"
        "echo started\n"
        f"exec -a {marker}-c sleep 300\n"
    )
    job = shared_server.submit({"script": script})
    assert eventually(lambda: len(processes_with(marker)) >= 3, timeout=20), "daemons started"
    resp = shared_server.client.delete(f"/v1/jobs/{job['id']}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "CANCELLED"
    assert eventually(lambda: not processes_with(marker), timeout=10), processes_with(marker)
    assert shared_server.job(job["id"])["state"] == "CANCELLED"

    finished = shared_server.submit({"command": ["true"]})
    shared_server.wait_state(finished["id"], {"COMPLETED"})
    assert shared_server.client.delete(f"/v1/jobs/{finished['id']}").status_code < 300
    assert shared_server.job(finished["id"])["state"] == "COMPLETED", "states only move forward"


def test_rerun_only_from_a_terminal_state(shared_server: Server) -> None:
    client = shared_server.client
    job = shared_server.submit({"script": "echo first; sleep 60"})
    shared_server.wait_state(job["id"], {"RUNNING"})
    refused = client.post(f"/v1/jobs/{job['id']}/rerun")
    assert refused.status_code == 409, refused.text
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 200
    resp = client.post(f"/v1/jobs/{job['id']}/rerun", json={"script": "echo second"})
    assert resp.status_code in (200, 201), resp.text
    assert len(resp.json()["attempts"]) == 2
    done = shared_server.wait_state(job["id"], TERMINAL)
    assert done["state"] == "COMPLETED"
    assert [a["state"] for a in done["attempts"]] == ["CANCELLED", "COMPLETED"]
    logs = client.get(f"/v1/jobs/{job['id']}/logs").json()
    assert logs["data"] == "second\n"
    # Plain rerun (no body) from a terminal state.
    again = client.post(f"/v1/jobs/{job['id']}/rerun")
    assert again.status_code in (200, 201), again.text
    assert len(shared_server.wait_state(job["id"], TERMINAL)["attempts"]) == 3


def test_logs_from_an_offset(shared_server: Server) -> None:
    client = shared_server.client
    job = shared_server.submit(
        {"script": "printf 'hello world\\n'\nprintf 'oops' >&2\nsleep 1.5\nprintf 'late\\n'\n"}
    )
    shared_server.wait_state(job["id"], {"RUNNING"})
    url = f"/v1/jobs/{job['id']}/logs"

    def early() -> dict[str, Any] | None:
        chunk: dict[str, Any] = client.get(url).json()
        return chunk if chunk["data"] == "hello world\n" else None

    running = eventually(early, timeout=10)
    assert running, "output is readable while the job runs"
    assert running["eof"] is False
    shared_server.wait_state(job["id"], {"COMPLETED"})
    chunk = client.get(url, params={"offset": 6}).json()
    assert chunk["data"] == "world\nlate\n"
    assert chunk["offset"] == 6
    assert chunk["next_offset"] == 17
    assert chunk["eof"] is True
    end = client.get(url, params={"offset": 17}).json()
    assert end["data"] == ""
    assert end["eof"] is True
    err = client.get(url, params={"stream": "stderr"}).json()
    assert err["data"] == "oops"
    raw = client.get(url, params={"offset": 12}, headers={"Accept": "text/plain"})
    assert raw.status_code == 200
    assert raw.content == b"late\n"
    assert client.get(url, params={"stream": "stdin"}).status_code == 422
    assert client.get(url, params={"offset": -1}).status_code == 422


def test_health_metrics_and_openapi(shared_server: Server) -> None:
    client = shared_server.client
    health = client.get("/health")
    assert health.status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    families = list(text_string_to_metric_families(metrics.text))
    assert families, "Prometheus text format"
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    doc = spec.json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "post" in paths["/v1/jobs"] and "get" in paths["/v1/jobs"]
    one = [p for p in paths if p.startswith("/v1/jobs/{") and p.endswith("}")]
    assert one and {"get", "delete"} <= set(paths[one[0]])
    assert any(p.endswith("/rerun") for p in paths)
    assert any(p.endswith("/logs") for p in paths)


def test_pending_resources_then_submission_order(shared_server: Server) -> None:
    big = shared_server.submit({"script": "sleep 60", "resources": {"cpus_per_task": 2}})
    shared_server.wait_state(big["id"], {"RUNNING"})
    second = shared_server.submit({"script": "sleep 0.5", "resources": {"cpus_per_task": 2}})
    third = shared_server.submit({"command": ["true"], "resources": {"cpus_per_task": 1}})
    shown = shared_server.wait_state(second["id"], {"PENDING"})
    assert shown["reason"] == "Resources"
    assert shown["native_state"] == "PENDING"
    assert shared_server.job(third["id"])["state"] == "PENDING", "the queue is FIFO"
    assert shared_server.client.delete(f"/v1/jobs/{big['id']}").status_code == 200
    second_done = shared_server.wait_state(second["id"], {"COMPLETED"})
    third_done = shared_server.wait_state(third["id"], {"COMPLETED"})
    assert third_done["started_at"] >= second_done["started_at"]


def test_list_paging_state_filter_and_events(shared_server: Server) -> None:
    client = shared_server.client
    ids = [shared_server.submit({"command": ["true"]})["id"] for _ in range(3)]
    for job_id in ids:
        shared_server.wait_state(job_id, {"COMPLETED"})
    page = client.get("/v1/jobs", params={"limit": 2})
    assert page.status_code == 200
    first = [j["id"] for j in page.json()]
    assert first == sorted(first, reverse=True) and len(first) == 2
    nxt = page.headers.get("X-Next-Before")
    assert nxt == str(first[-1])
    rest = [j["id"] for j in client.get("/v1/jobs", params={"limit": 2, "before": nxt}).json()]
    assert rest and max(rest) < min(first)
    completed = client.get("/v1/jobs", params={"state": "COMPLETED", "limit": 10000}).json()
    assert {j["state"] for j in completed} == {"COMPLETED"}
    assert set(ids) <= {j["id"] for j in completed}

    events = client.get(f"/v1/jobs/{ids[0]}/events")
    assert events.status_code == 200
    states = [e.get("to_state") or e.get("state") for e in events.json()]
    assert states[-1] == "COMPLETED"
    assert "RUNNING" in states
    ranks = [ORDER[s] for s in states]
    assert ranks == sorted(ranks), f"states only move forward: {states}"


def test_bearer_token_required_when_set_even_on_a_non_loopback_address() -> None:
    require_sandbox()
    home = new_home()
    token = f"tok-{uuid.uuid4().hex}"
    # With a token, listening on every address is allowed; /v1 then needs the token.
    srv = Server(home, token=token, host="0.0.0.0")
    try:
        url = f"{srv.url}/v1/jobs"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.post(url, json={"command": ["true"]}).status_code == 401
        assert srv.client.get("/v1/jobs").status_code == 200
        job = srv.submit({"script": "echo authorised"})
        assert srv.wait_state(job["id"], TERMINAL)["state"] == "COMPLETED"
        assert httpx.get(f"{url}/{job['id']}").status_code == 401
        assert httpx.delete(f"{url}/{job['id']}").status_code == 401
    finally:
        srv.close()
        log = (home / "serve.log").read_text()
        cleanup_home(home)
    assert token not in log, "the token must not reach the logs"
