"""The Python API (docs/jobs.md "Python"; issue 2, items 2 and 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
)
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from tests.contract.conftest import (
    JOB_FIELDS,
    cleanup_home,
    eventually,
    new_home,
    require_sandbox,
    settings_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def api_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    require_sandbox()
    home = new_home()
    monkeypatch.setenv("HPCBOX_HOME", str(home))
    monkeypatch.setenv("HPCBOX_CPUS", "2")
    monkeypatch.setenv("HPCBOX_AGENT_IDLE_SECONDS", "2")
    yield home
    cleanup_home(home)


def test_documented_example_runs(api_home: Path) -> None:
    with JobEngine() as engine:
        job = engine.submit(parse_job_spec({"script": "echo hi", "resources": {"memory": "1G"}}))
        job = engine.wait(job.id, timeout=60)
        assert job.state.value == "COMPLETED"
        assert engine.logs(job.id).data == b"hi\n"
        data = job.to_json()
        assert all(field in data for field in JOB_FIELDS)
    assert (api_home / "hpcbox.db").exists(), "the store lives under $HPCBOX_HOME"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 5400),
        ("90", 5400),
        ("10m", 600),
        ("1:30:00", 5400),
        ("2-00:00:00", 172800),
        # Further forms docs/jobs.md lists.
        ("30s", 30),
        ("10:00", 600),
        ("2-12", 2 * 86400 + 12 * 3600),
    ],
)
def test_time_limit_forms(value: object, seconds: int) -> None:
    spec = parse_job_spec({"command": ["true"], "resources": {"time_limit": value}})
    assert spec.resources.time_limit == seconds


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512M", 512 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1024K", 1024 * 1024),
        # A bare number is megabytes, as in SLURM (docs/jobs.md).
        ("512", 512 * 1024**2),
        (512, 512 * 1024**2),
    ],
)
def test_memory_forms(value: object, size: int) -> None:
    spec = parse_job_spec({"script": "true", "resources": {"memory": value}})
    assert spec.resources.memory == size


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"script": "true", "resources": {"memory": "lots"}}, "memory"),
        ({"script": "true", "resources": {"time_limit": "soon"}}, "time_limit"),
        ({"script": "true", "resources": {"cpus_per_task": 0}}, "cpus_per_task"),
        ({"script": "true", "resources": {"ntasks": 0}}, "ntasks"),
        ({"script": "true", "resources": {"nodes": 0}}, "nodes"),
        ({"script": "true", "env": {"NOT VALID": "x"}}, "env"),
        ({"script": "true", "workdir": "relative"}, "workdir"),
        ({"command": []}, "command"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_job_spec(data)
    assert isinstance(info.value, HpcboxError)
    assert field in str(info.value)


def test_script_xor_command() -> None:
    for data in ({"name": "x"}, {"script": "true", "command": ["true"]}):
        with pytest.raises(InvalidInputError):
            parse_job_spec(data)


def test_engine_errors_are_hpcbox_errors(api_home: Path) -> None:
    with JobEngine(settings_for(api_home, memory_bytes=1024**3), scheduling="thread") as engine:
        with pytest.raises(NotFoundError):
            engine.get(123456)
        with pytest.raises(NotFoundError):
            engine.cancel(123456)
        # Asking for more than the machine has is refused at submission.
        with pytest.raises(InvalidInputError) as info:
            engine.submit(parse_job_spec({"script": "true", "resources": {"memory": "2G"}}))
        assert "memory" in str(info.value)
        with pytest.raises(InvalidInputError):
            engine.submit(parse_job_spec({"script": "true", "resources": {"cpus_per_task": 3}}))

        big = engine.submit(parse_job_spec({"script": "sleep 60", "resources": {"memory": "768M"}}))
        assert eventually(lambda: engine.get(big.id).state.value == "RUNNING", timeout=15)
        with pytest.raises(ConflictError):
            engine.rerun(big.id)
        # Memory is a queue resource too: 768M of 1G are taken.
        small = engine.submit(parse_job_spec({"script": "true", "resources": {"memory": "512M"}}))
        assert eventually(lambda: engine.get(small.id).current.reason == "Resources", timeout=5)
        assert engine.get(small.id).state.value == "PENDING"
        engine.cancel(big.id)
        assert engine.wait(small.id, timeout=20).state.value == "COMPLETED"
    for error in (ConflictError, NotFoundError, InvalidInputError):
        assert issubclass(error, HpcboxError)


def test_closing_the_engine_hands_active_jobs_to_an_agent(api_home: Path) -> None:
    with JobEngine() as engine:
        job = engine.submit(parse_job_spec({"command": ["bash", "-c", "sleep 1; echo later"]}))
        queued = engine.submit(parse_job_spec({"command": ["echo", "queued"]}))
    # Nobody but the agent started by close() is left to schedule these.
    reader = JobEngine(settings_for(api_home), scheduling="none")
    try:
        assert reader.wait(job.id, timeout=20).state.value == "COMPLETED"
        assert reader.wait(queued.id, timeout=20).state.value == "COMPLETED"
        assert reader.logs(job.id).data == b"later\n"
        assert reader.logs(queued.id).data == b"queued\n"
    finally:
        reader.close(handover=False)
