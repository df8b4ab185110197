from __future__ import annotations

import itertools

from hpcbox.jobs.model.states import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    JobState,
    can_transition,
    is_terminal,
)

ORDER = {JobState.NEW: 0, JobState.PENDING: 1, JobState.RUNNING: 2}


def _rank(state: JobState) -> int:
    return ORDER.get(state, 3)


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert ACTIVE_STATES | TERMINAL_STATES == set(JobState)
    assert not ACTIVE_STATES & TERMINAL_STATES


def test_transitions_only_move_forward() -> None:
    for current, new in itertools.product(JobState, repeat=2):
        if can_transition(current, new) and current != new:
            assert _rank(new) > _rank(current), (current, new)


def test_terminal_states_are_final() -> None:
    for state in TERMINAL_STATES:
        assert is_terminal(state)
        assert all(not can_transition(state, other) for other in JobState if other != state)


def test_expected_paths() -> None:
    assert can_transition(JobState.NEW, JobState.PENDING)
    assert can_transition(JobState.PENDING, JobState.RUNNING)
    assert can_transition(JobState.RUNNING, JobState.OUT_OF_MEMORY)
    assert can_transition(JobState.PENDING, JobState.CANCELLED)
    assert not can_transition(JobState.RUNNING, JobState.PENDING)
    assert not can_transition(JobState.COMPLETED, JobState.RUNNING)
