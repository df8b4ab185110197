"""Every SLURM job state, long form and compact code, mapped to hpcbox's states.

The list is written out here rather than taken from the module, so that a
state dropped from the table fails a test.
"""

from __future__ import annotations

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.backends.slurm.states import (
    NATIVE_STATES,
    TERMINAL_NATIVE,
    UnknownSlurmStateError,
    map_state,
    normalise_state,
)
from hpcbox.jobs.model.states import JobState

P, R = JobState.PENDING, JobState.RUNNING
EXPECTED = [
    ("PENDING", "PD", P),
    ("CONFIGURING", "CF", P),
    ("REQUEUED", "RQ", P),
    ("REQUEUE_FED", "RF", P),
    ("REQUEUE_HOLD", "RH", P),
    ("RESV_DEL_HOLD", "RD", P),
    ("RUNNING", "R", R),
    ("COMPLETING", "CG", R),
    ("STAGE_OUT", "SO", R),
    ("SIGNALING", "SI", R),
    ("SUSPENDED", "S", R),
    ("STOPPED", "ST", R),
    ("RESIZING", "RS", R),
    ("COMPLETED", "CD", JobState.COMPLETED),
    ("FAILED", "F", JobState.FAILED),
    ("SPECIAL_EXIT", "SE", JobState.FAILED),
    ("CANCELLED", "CA", JobState.CANCELLED),
    ("PREEMPTED", "PR", JobState.CANCELLED),
    ("TIMEOUT", "TO", JobState.TIMEOUT),
    ("DEADLINE", "DL", JobState.TIMEOUT),
    ("OUT_OF_MEMORY", "OOM", JobState.OUT_OF_MEMORY),
    ("NODE_FAIL", "NF", JobState.NODE_FAIL),
    ("BOOT_FAIL", "BF", JobState.NODE_FAIL),
    ("REVOKED", "RV", JobState.ERROR),
]
ACTIVE = {JobState.PENDING, JobState.RUNNING}


@pytest.mark.parametrize(("long", "code", "state"), EXPECTED)
def test_every_state_and_code(long: str, code: str, state: JobState) -> None:
    assert map_state(long) is state
    assert map_state(code) is state
    assert map_state(long.lower()) is state
    assert normalise_state(code) == long
    assert (long in TERMINAL_NATIVE) == (code in TERMINAL_NATIVE) == (state not in ACTIVE)


def test_the_table_has_nothing_untested() -> None:
    tested = {name for long, code, _ in EXPECTED for name in (long, code)}
    assert set(NATIVE_STATES) - tested == {"POWER_UP_NODE"}
    assert map_state("POWER_UP_NODE") is JobState.PENDING


@pytest.mark.parametrize(
    ("native", "name", "state"),
    [
        ("CANCELLED by 1000", "CANCELLED", JobState.CANCELLED),
        ("CANCELLED by 0", "CANCELLED", JobState.CANCELLED),
        ("CANCELL+", "CANCELLED", JobState.CANCELLED),
        ("OUT_OF_ME+", "OUT_OF_MEMORY", JobState.OUT_OF_MEMORY),
        ("  RUNNING \n", "RUNNING", JobState.RUNNING),
        ("PENDING,CONFIGURING", "PENDING", JobState.PENDING),
        ("RUNNING,COMPLETING", "RUNNING", JobState.RUNNING),
    ],
)
def test_decorated_states(native: str, name: str, state: JobState) -> None:
    assert normalise_state(native) == name
    assert map_state(native) is state


@pytest.mark.parametrize("native", ["", "?", "LAUNCH_FAILED", "REQUEUE+", "RUNNINGX", "by 1000"])
def test_unknown_states_raise_a_named_error(native: str) -> None:
    with pytest.raises(UnknownSlurmStateError) as caught:
        map_state(native)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.native == native.strip()
    assert "unknown SLURM job state" in str(caught.value)
