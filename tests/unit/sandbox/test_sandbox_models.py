"""Value objects: ids, limits, requests, handles, outcomes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.isolation.ids import validate_group_path, validate_safe_id
from hpcbox.infra.isolation.limits import cpu_quota_us
from hpcbox.jobs.backends.local.sandbox import LaunchRequest, ResourceLimits, RunHandle, RunOutcome


@pytest.mark.parametrize("good", ["a", "run-1", "A_b.c", "x" * 128, "..."])
def test_safe_ids(good: str) -> None:
    assert validate_safe_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "x" * 129, "é", "a\n", 5, None])
def test_unsafe_ids(bad: object) -> None:
    with pytest.raises(InvalidInputError):
        validate_safe_id(bad)


def test_group_paths() -> None:
    assert validate_group_path("hpcbox/r1") == "hpcbox/r1"
    assert validate_group_path("a.b/..c/.d") == "a.b/..c/.d"
    assert validate_group_path("x" * 128 + "/y") == "x" * 128 + "/y"
    bad_paths = ("", "/hpcbox", "hpcbox/", "a/../b", "a//b", "a/./b", "..", "a/..", ".")
    hostile = ("a\nb", "a/b\n", "x" * 129, "a/é", "a b", "a;b", "$(id)", 7, None)
    for bad in (*bad_paths, *hostile):
        with pytest.raises(InvalidInputError):
            validate_group_path(bad)


def test_limits_validation() -> None:
    ResourceLimits(cpus=0.01, memory_bytes=1, pids=1)
    ResourceLimits(cpus=2)
    for kwargs in (
        {"cpus": 0},
        {"cpus": 0.001},
        {"cpus": float("inf")},
        {"cpus": float("nan")},
        {"cpus": True},
        {"cpus": "1"},
        {"memory_bytes": 0},
        {"memory_bytes": 1.5},
        {"pids": -1},
        {"pids": True},
    ):
        with pytest.raises(InvalidInputError):
            ResourceLimits(**kwargs)


def test_cpu_quota() -> None:
    assert cpu_quota_us(1.5) == 150_000
    assert cpu_quota_us(0.25) == 25_000
    assert cpu_quota_us(0.01) == 1_000


def _req(**over: Any) -> LaunchRequest:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "argv": ["/bin/true"],
        "env": {"PATH": "/bin"},
        "workdir": "/w",
        "stdout_path": "/w/out",
        "stderr_path": "/w/err",
        "status_path": "/w/status",
        "limits": ResourceLimits(),
    }
    fields.update(over)
    return LaunchRequest(**fields)


def test_request_accepts_hostile_but_valid_values() -> None:
    _req(argv=["x", "", "a\nb", "☃", "$(id)"], env={"A-B.c": "x\ny", "E": ""})


@pytest.mark.parametrize(
    "over",
    [
        {"run_id": "../x"},
        {"argv": []},
        {"argv": [""]},
        {"argv": ["a\0b"]},
        {"argv": "true"},
        {"env": {"A=B": "1"}},
        {"env": {"": "1"}},
        {"env": {"A": "\0"}},
        {"env": {"A": 1}},
        {"workdir": "relative"},
        {"stdout_path": ""},
        {"limits": None},
    ],
)
def test_request_rejects(over: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        _req(**over)


def test_handle_round_trip_through_json() -> None:
    handle = RunHandle(
        run_id="r1",
        pid=1234,
        start_ticks=987654321,
        status_path="/runs/1/status.json",
        cgroup="hpcbox/r1",
        started_at=1700000000.25,
    )
    data = json.loads(json.dumps(handle.to_dict()))
    assert RunHandle.from_dict(data) == handle


@pytest.mark.parametrize(
    "over",
    [
        {"run_id": "a/b"},
        {"pid": "12"},
        {"pid": True},
        {"start_ticks": -1},
        {"cgroup": "../../etc"},
        {"status_path": ""},
        {"started_at": "now"},
    ],
)
def test_handle_from_bad_dict(over: dict[str, object]) -> None:
    data: dict[str, object] = {
        "run_id": "r1",
        "pid": 1,
        "start_ticks": 2,
        "status_path": "/s",
        "cgroup": "hpcbox/r1",
        "started_at": 3,
    }
    data.update(over)
    with pytest.raises(InvalidInputError):
        RunHandle.from_dict(data)


def test_handle_from_dict_missing_field() -> None:
    with pytest.raises(InvalidInputError, match="pid"):
        RunHandle.from_dict({"run_id": "r1"})


def test_outcome_round_trip() -> None:
    outcome = RunOutcome(
        exit_code=None,
        signal=9,
        cpu_time_s=1.25,
        peak_memory_bytes=10,
        oom_killed=True,
        wall_time_s=3.0,
    )
    assert RunOutcome.from_dict(json.loads(json.dumps(outcome.to_dict()))) == outcome
    with pytest.raises(InvalidInputError):
        RunOutcome.from_dict({**outcome.to_dict(), "oom_killed": 1})
