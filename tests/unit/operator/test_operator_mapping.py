"""SlurmJob spec <-> hpcbox values: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.model.job import Attempt, Job
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from hpcbox.operator import mapping
from hpcbox.operator.mapping import Decision
from hpcbox.operator.resource import ObjectRef

REF = ObjectRef("jobs", "hello", "uid-1")
SPEC = {
    "target": {"host": "login.example.org", "port": 2222, "user": "alice", "secretName": "s"},
    "scriptCode": "echo hi",
    "resources": {
        "nodes": 2,
        "ntasks": 4,
        "cpusPerTask": 2,
        "memory": "1G",
        "time": "00:10:00",
        "partition": "debug",
    },
    "env": {"A": "b"},
}


def job_with(
    state: JobState,
    *,
    number: int = 1,
    started: datetime | None = None,
    finished: datetime | None = None,
    exit_code: int | None = None,
) -> Job:
    attempt = Attempt(
        number=number,
        spec=parse_job_spec({"script": "true", "resources": {"partition": "debug"}}),
        state=state,
        native_state=state.value,
        reason="None",
        native_id="42",
        exit_code=exit_code,
        signal=None,
        cpu_time=None,
        peak_memory=None,
        submitted_at=datetime(2026, 1, 1, tzinfo=UTC),
        started_at=started,
        finished_at=finished,
        run_dir=None,
    )
    return Job(
        id=7,
        name="hello",
        backend="slurm",
        target="t",
        created_at=attempt.submitted_at,
        attempts=(attempt,),
    )


def test_connection_and_target() -> None:
    conn = mapping.connection(SPEC)
    assert conn == mapping.Connection("login.example.org", 2222, "alice", "s", None)
    target = mapping.target_spec("jobs", conn, None)
    assert (target.host, target.port, target.user) == ("login.example.org", 2222, "alice")
    assert target.name.startswith("k8s-") and target.key_path is None
    # Same connection, same namespace: one shared target (one SSH link, one squeue per poll).
    assert mapping.target_spec("jobs", conn, None).name == target.name
    assert mapping.target_spec("other", conn, None).name != target.name


def test_user_from_the_prototype_secret_and_errors() -> None:
    conn = mapping.connection({"target": {"host": "h", "secretName": "s"}})
    assert conn.port == 22 and conn.user is None
    assert mapping.target_spec("ns", conn, "bob").user == "bob"
    with pytest.raises(InvalidInputError, match=r"spec\.target\.user"):
        mapping.target_spec("ns", conn, None)
    with pytest.raises(InvalidInputError, match=r"spec\.target\.host"):
        mapping.connection({"target": {"secretName": "s"}})
    with pytest.raises(InvalidInputError, match=r"spec\.target\.port"):
        mapping.connection({"target": {"host": "h", "secretName": "s", "port": 0}})
    bad = mapping.connection({"target": {"host": "h;rm", "secretName": "s", "user": "u"}})
    with pytest.raises(InvalidInputError, match=r"spec\.target\.host"):
        mapping.target_spec("ns", bad, None)


def test_credentials_from_secret_never_show_the_secret() -> None:
    creds, user = mapping.credentials_from_secret(
        {"ssh-privatekey": b"KEYTEXT", "known_hosts": b"h ssh-ed25519 AAAA\n"}, secret_name="s"
    )
    assert (creds.key_data, creds.password, user) == ("KEYTEXT", None, None)
    assert creds.known_hosts == "h ssh-ed25519 AAAA\n"
    assert "KEYTEXT" not in repr(creds)
    creds, user = mapping.credentials_from_secret(
        {"user": b"alice\n", "passwd": b"s3cret\n"}, secret_name="s"
    )
    assert (creds.password, user) == ("s3cret", "alice")
    assert "s3cret" not in repr(creds)
    with pytest.raises(InvalidInputError, match="Secret s") as info:
        mapping.credentials_from_secret({"user": b"alice"}, secret_name="s")
    assert "alice" not in str(info.value)
    with pytest.raises(InvalidInputError, match="UTF-8"):
        mapping.credentials_from_secret({"passwd": b"\xff"}, secret_name="s")


def test_job_spec() -> None:
    spec = mapping.job_spec(REF, SPEC, "echo hi")
    assert spec.name == "hello" and spec.script == "echo hi"
    res = spec.resources
    assert (res.nodes, res.ntasks, res.cpus_per_task, res.partition) == (2, 4, 2, "debug")
    assert res.memory == 1024**3 and res.time_limit == 600
    assert spec.env == {"A": "b", mapping.UID_ENV: "uid-1"}
    with pytest.raises(InvalidInputError, match=r"spec\.resources\.memory"):
        mapping.job_spec(REF, {**SPEC, "resources": {"memory": "lots"}}, "x")
    with pytest.raises(InvalidInputError, match=r"spec\.resources.*bogus"):
        mapping.job_spec(REF, {**SPEC, "resources": {"bogus": 1}}, "x")
    with pytest.raises(InvalidInputError, match=r"spec\.scriptCode"):
        mapping.job_spec(REF, SPEC, "   ")


def test_script_ref() -> None:
    assert mapping.script_ref({"scriptCode": "x"}) == "x"
    assert mapping.script_ref({"scriptConfigMap": {"name": "cm"}}) == mapping.ScriptRef(
        "cm", "script"
    )
    with pytest.raises(InvalidInputError, match="exactly one"):
        mapping.script_ref({"scriptCode": "x", "scriptConfigMap": {"name": "cm"}})
    with pytest.raises(InvalidInputError, match="exactly one"):
        mapping.script_ref({})


def test_decide_update() -> None:
    edited = {**SPEC, "scriptCode": "echo two"}
    moved = {**SPEC, "target": {**SPEC["target"], "host": "other"}}  # type: ignore[dict-item]
    running, done = job_with(JobState.RUNNING), job_with(JobState.FAILED)
    assert mapping.decide_update(None, SPEC, edited) is Decision.CREATE
    assert mapping.decide_update(done, SPEC, edited) is Decision.RERUN
    assert mapping.decide_update(running, SPEC, edited) is Decision.REFUSE_ACTIVE
    assert mapping.decide_update(done, SPEC, moved) is Decision.REFUSE_TARGET
    assert mapping.decide_update(running, SPEC, dict(SPEC)) is Decision.NOTHING


def test_status_of() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    target = mapping.target_spec("jobs", mapping.connection(SPEC), None)
    running = job_with(JobState.RUNNING, started=start)
    status = mapping.status_of(running, REF, target=target, now=start + timedelta(seconds=3725))
    assert status["state"] == "RUNNING" and status["elapsed"] == "01:02:05"
    assert status["jobId"] == "42" and status["user"] == "alice" and status["partition"] == "debug"
    assert status["reason"] is None and status["attempts"] == 1 and status["hpcboxJob"] == 7
    done = job_with(
        JobState.COMPLETED,
        started=start,
        finished=start + timedelta(days=1, seconds=5),
        exit_code=0,
    )
    status = mapping.status_of(done, REF, target=target, now=start)
    assert status["elapsed"] == "1-00:00:05" and status["exitCode"] == 0
    assert "kubectl logs hello" in status["message"]
    lost = mapping.status_of(running, REF, target=target, now=start, unreachable="timed out")
    assert "timed out" in lost["message"] and lost["state"] == "RUNNING"
    assert (
        mapping.status_of(job_with(JobState.PENDING), REF, target=target, now=start)["elapsed"]
        is None
    )
