"""The watcher's arithmetic: the sacct plan, the adaptive interval."""

from __future__ import annotations

import pytest

from hpcbox.jobs.backends.slurm.commands import SlurmStatus
from hpcbox.jobs.backends.slurm.poll import PollPlan, next_interval
from hpcbox.jobs.model.states import JobState


def _status(job_id: str, state: JobState | None, native: str = "X") -> SlurmStatus:
    return SlurmStatus(job_id, native, None, None, None, state, None, None, None)


def test_plan_sends_ended_and_missing_jobs_to_one_sacct() -> None:
    reported = {
        "1": _status("1", JobState.PENDING),
        "2": _status("2", JobState.RUNNING),
        "3": _status("3", JobState.COMPLETED),
        "4": _status("4", JobState.CANCELLED),
        "6": _status("6", None),  # a state hpcbox does not know: keep polling
        "99": _status("99", JobState.FAILED),  # not ours: ignored
    }
    plan = PollPlan.after_squeue(["1", "2", "3", "4", "5", "6", "7", "5"], reported)
    assert plan.ended == ("3", "4")
    assert plan.missing == ("5", "7")
    assert plan.sacct_ids == ("3", "4", "5", "7")


def test_plan_with_everything_in_the_queue_needs_no_sacct() -> None:
    plan = PollPlan.after_squeue(["1"], {"1": _status("1", JobState.RUNNING)})
    assert plan.sacct_ids == ()
    assert PollPlan.after_squeue([], {}).sacct_ids == ()


def test_interval_halves_on_change_down_to_the_minimum() -> None:
    assert next_interval(8.0, changed=True, min_s=1.0, max_s=60.0) == 4.0
    assert next_interval(1.5, changed=True, min_s=1.0, max_s=60.0) == 1.0
    assert next_interval(1.0, changed=True, min_s=1.0, max_s=60.0) == 1.0


def test_interval_grows_when_idle_up_to_the_maximum() -> None:
    assert next_interval(4.0, changed=False, min_s=1.0, max_s=60.0) == 6.0
    assert next_interval(50.0, changed=False, min_s=1.0, max_s=60.0) == 60.0
    interval = 1.0
    for _ in range(20):
        interval = next_interval(interval, changed=False, min_s=1.0, max_s=30.0)
    assert interval == 30.0


def test_interval_out_of_bounds_is_brought_inside() -> None:
    assert next_interval(0.01, changed=False, min_s=2.0, max_s=10.0) == 3.0
    assert next_interval(500.0, changed=True, min_s=2.0, max_s=10.0) == 5.0


@pytest.mark.parametrize(("min_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (5.0, 1.0)])
def test_interval_bounds_are_checked(min_s: float, max_s: float) -> None:
    with pytest.raises(ValueError):
        next_interval(1.0, changed=False, min_s=min_s, max_s=max_s)
