"""Jobs on a real SLURM cluster over SSH: the cluster hpcbox brought up is a target."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hpcbox.clusters.manager import ClusterManager
from hpcbox.core.settings import Settings
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from tests.integration.cluster.conftest import Up, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def target(bring_up: Up) -> str:
    spec = bring_up(
        {
            "name": "hpcbox-rj",
            "workers": {"count": 2, "cpus": 1, "memory": "512M"},
            "users": [{"name": "erin"}],
        }
    )
    return spec.name


@pytest.fixture
def engine(cluster_settings: Settings, target: str) -> Iterator[JobEngine]:
    eng = JobEngine(cluster_settings, scheduling="thread")
    yield eng
    eng.close(handover=False)


def wait_for(engine: JobEngine, job_id: int, states: set[JobState], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while engine.get(job_id).state not in states:
        assert time.monotonic() < deadline, engine.get(job_id).to_json()
        time.sleep(0.2)


def test_submit_watch_logs(engine: JobEngine, target: str) -> None:
    text = 'it\'s "quoted"; $(not run) ✓'
    spec = parse_job_spec(
        {
            "name": "remote",
            "script": '#!/bin/bash\necho "$GREETING"\nhostname\necho err >&2\nexit 3\n',
            "env": {"GREETING": text},
            "resources": {"memory": "100M", "time_limit": "5m"},
        }
    )
    job = engine.submit(spec, target=target)
    assert job.backend == "slurm"
    assert job.target == target
    wait_for(engine, job.id, {JobState.FAILED, JobState.COMPLETED, JobState.ERROR})
    done = engine.get(job.id)
    assert done.state is JobState.FAILED, done.to_json()
    assert done.current.exit_code == 3
    assert done.current.native_id and done.current.native_id.isdigit()
    out = engine.logs(job.id).data.decode().splitlines()
    assert out[0] == text
    assert out[1].startswith("worker")
    # SLURM itself may append a DNS retry notice while Podman's DNS reloads.
    assert engine.logs(job.id, stream="stderr").data.startswith(b"err\n")


def test_cancel_both_ways_and_rerun(
    engine: JobEngine, manager: ClusterManager, target: str
) -> None:
    long = parse_job_spec({"command": ["sleep", "300"]})
    mine = engine.submit(long, target=target)
    theirs = engine.submit(long, target=target)
    wait_for(engine, mine.id, {JobState.RUNNING})
    wait_for(engine, theirs.id, {JobState.RUNNING})
    my_native = engine.get(mine.id).current.native_id
    assert my_native is not None
    my_native = engine.get(mine.id).current.native_id
    assert my_native is not None
    assert engine.cancel(mine.id).state is JobState.CANCELLED
    # Cancelled on the cluster with scancel: hpcbox sees SLURM's CANCELLED.
    native = engine.get(theirs.id).current.native_id
    assert native is not None
    run(manager, target, ["scancel", native], user="erin")
    wait_for(engine, theirs.id, {JobState.CANCELLED})
    assert engine.get(theirs.id).current.native_state == "CANCELLED"
    squeue = (
        run(manager, target, ["squeue", "-h", "--states=all", "-j", my_native, "-o", "%T"])
        .stdout.decode()
        .strip()
    )
    assert squeue in ("", "CANCELLED"), squeue
    again = engine.rerun(mine.id, script="echo second try")
    assert again.current.number == 2
    wait_for(engine, mine.id, {JobState.COMPLETED})
    assert engine.logs(mine.id).data == b"second try\n"
    assert [a.state for a in engine.get(mine.id).attempts] == [
        JobState.CANCELLED,
        JobState.COMPLETED,
    ]


def test_rest_submit_to_a_target(cluster_settings: Settings, target: str) -> None:
    from tests.integration.api.test_rest import Server

    server = Server(cluster_settings)
    try:
        created = server.client.post("/v1/jobs", json={"command": ["hostname"], "target": target})
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["target"] == target
        assert job["backend"] == "slurm"
        done = server.wait_terminal(job["id"], timeout=90)
        assert done["state"] == "COMPLETED", done
        assert done["native_id"]
        logs = server.client.get(f"/v1/jobs/{job['id']}/logs").json()
        assert logs["data"].strip() in ("worker1", "worker2")
    finally:
        server.stop()
