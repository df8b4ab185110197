"""PSI/J JobSpec and states -> hpcbox's, without running anything."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hpcbox.jobs.model.job import Attempt, Job
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from tests.conftest import require


@pytest.fixture
def psij_mod() -> Any:
    require(importlib.util.find_spec("psij") is not None, "psij-python is not installed")
    import psij

    return psij


def test_resources_and_attributes_map(psij_mod: Any, tmp_path: Any) -> None:
    from hpcbox.psij.executor import to_hpcbox_spec

    spec = psij_mod.JobSpec(
        executable="/bin/app",
        arguments=["-n", 3],
        name="app",
        directory=tmp_path,
        environment={"A": "1", "B": 2},
        resources=psij_mod.ResourceSpecV1(
            process_count=8, processes_per_node=4, cpu_cores_per_process=2, memory=2 * 1024**3
        ),
        attributes=psij_mod.JobAttributes(duration=timedelta(seconds=89.2), queue_name="debug"),
    )
    h = to_hpcbox_spec(spec)
    assert h.command == ["/bin/app", "-n", "3"]
    assert h.name == "app"
    assert h.workdir == str(tmp_path)
    assert h.env == {"A": "1", "B": "2"}
    r = h.resources
    assert (r.nodes, r.ntasks, r.cpus_per_task) == (2, 8, 2)
    assert r.memory == 1024**3  # per node
    assert r.time_limit == 90
    assert r.partition == "debug"


def test_defaults(psij_mod: Any) -> None:
    from hpcbox.psij.executor import to_hpcbox_spec

    h = to_hpcbox_spec(psij_mod.JobSpec(executable="true"))
    assert h.command == ["true"]
    assert h.resources.nodes == 1 and h.resources.ntasks == 1
    assert h.resources.time_limit == 600  # PSI/J's default duration, 10 minutes


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"pre_launch": "/x.sh"}, "pre_launch"),
        ({"inherit_environment": False}, "inherit_environment"),
        ({"attributes": {"account": "acct"}}, "account"),
        ({"resources": {"gpu_cores_per_process": 1}}, "gpu"),
    ],
)
def test_unsupported_is_refused(psij_mod: Any, kwargs: dict[str, Any], word: str) -> None:
    from hpcbox.psij.executor import to_hpcbox_spec

    if "attributes" in kwargs:
        kwargs = {"attributes": psij_mod.JobAttributes(**kwargs["attributes"])}
    if "resources" in kwargs:
        kwargs = {"resources": psij_mod.ResourceSpecV1(**kwargs["resources"])}
    with pytest.raises(psij_mod.InvalidJobException, match=word):
        to_hpcbox_spec(psij_mod.JobSpec(executable="true", **kwargs))


def test_invalid_for_hpcbox_is_invalid_job(psij_mod: Any) -> None:
    from hpcbox.psij.executor import to_hpcbox_spec

    with pytest.raises(psij_mod.InvalidJobException, match=r"env"):
        to_hpcbox_spec(psij_mod.JobSpec(executable="true", environment={"1BAD": "x"}))


def _job(state: JobState, exit_code: int | None = None, reason: str | None = None) -> Job:
    now = datetime.now(UTC)
    attempt = Attempt(
        number=1,
        spec=parse_job_spec({"command": ["true"]}),
        state=state,
        native_state=state.value,
        reason=reason,
        native_id=None,
        exit_code=exit_code,
        signal=None,
        cpu_time=None,
        peak_memory=None,
        submitted_at=now,
        started_at=None,
        finished_at=None,
        run_dir=None,
    )
    return Job(id=7, name="j", backend="local", target="local", created_at=now, attempts=(attempt,))


@pytest.mark.parametrize(
    ("state", "exit_code", "expected"),
    [
        (JobState.NEW, None, "QUEUED"),
        (JobState.PENDING, None, "QUEUED"),
        (JobState.RUNNING, None, "ACTIVE"),
        (JobState.COMPLETED, 0, "COMPLETED"),
        (JobState.COMPLETED, 3, "FAILED"),
        (JobState.CANCELLED, None, "CANCELED"),
        (JobState.FAILED, 1, "FAILED"),
        (JobState.TIMEOUT, None, "FAILED"),
        (JobState.OUT_OF_MEMORY, 137, "FAILED"),
        (JobState.NODE_FAIL, None, "FAILED"),
        (JobState.ERROR, None, "FAILED"),
    ],
)
def test_states_map(psij_mod: Any, state: JobState, exit_code: int | None, expected: str) -> None:
    from hpcbox.psij.executor import psij_status

    status = psij_status(_job(state, exit_code, reason="why"))
    assert status.state.name == expected
    assert status.metadata["hpcbox_state"] == state.value
    assert status.metadata["nativeId"] == "7"
    if expected == "FAILED":
        assert status.exit_code == exit_code
        assert state.value in (status.message or "") and "why" in (status.message or "")
