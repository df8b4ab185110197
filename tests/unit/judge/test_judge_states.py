"""The states of a stored submission and their transition table: every legal move,
every other move refused with a clear error, done final, and the stored and wire
values unchanged."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from hpcbox.core.errors import ConflictError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.model import (
    INITIAL_STATE,
    TERMINAL_STATES,
    TRANSITIONS,
    JudgeResult,
    Submission,
    SubmissionState,
    Verdict,
    can_transition,
    check_transition,
    entered_from,
    is_terminal,
)
from hpcbox.judge.store.repository import SubmissionStore

QUEUED, PROCESSING, DONE = SubmissionState.QUEUED, SubmissionState.PROCESSING, SubmissionState.DONE

#: Every legal move, written out once more: the table must say exactly these.
LEGAL = {
    (QUEUED, PROCESSING),  # a claim
    (PROCESSING, PROCESSING),  # a claim again once the lease ran out
    (PROCESSING, DONE),  # a finish
}
ALL_MOVES = list(itertools.product(SubmissionState, repeat=2))


def test_the_values_are_the_stored_and_wire_values() -> None:
    assert [s.value for s in SubmissionState] == ["queued", "processing", "done"]
    assert INITIAL_STATE is QUEUED


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(SubmissionState)
    assert TERMINAL_STATES == {DONE}


@pytest.mark.parametrize(("current", "new"), sorted(LEGAL))
def test_every_legal_move_is_allowed(current: SubmissionState, new: SubmissionState) -> None:
    assert can_transition(current, new)
    check_transition(current, new)  # does not raise
    assert current in entered_from(new)


@pytest.mark.parametrize(("current", "new"), [m for m in ALL_MOVES if m not in LEGAL])
def test_every_other_move_is_refused(current: SubmissionState, new: SubmissionState) -> None:
    assert not can_transition(current, new)
    assert current not in entered_from(new)
    with pytest.raises(ConflictError) as caught:
        check_transition(current, new)
    message = str(caught.value)
    assert f"a {current.value} submission" in message and new.value in message


def test_done_is_final() -> None:
    assert is_terminal(DONE)
    assert not is_terminal(QUEUED) and not is_terminal(PROCESSING)
    assert not any(can_transition(DONE, other) for other in SubmissionState)
    with pytest.raises(ConflictError, match="a done submission is final; it cannot become"):
        check_transition(DONE, PROCESSING)


def test_a_submission_never_goes_back_to_queued() -> None:
    assert entered_from(QUEUED) == frozenset()
    with pytest.raises(ConflictError, match="cannot become queued, only processing or done"):
        check_transition(PROCESSING, QUEUED)


def test_the_store_moves_a_submission_only_as_the_table_says(tmp_path: Path) -> None:
    engine = open_engine(Settings(home=tmp_path))
    try:
        _walk_the_table(SubmissionStore(engine))
    finally:
        engine.dispose()


def _walk_the_table(store: SubmissionStore) -> None:
    record, _ = store.create(Submission(language="python3", source=b"print(1)"), api="native")
    assert record.state is QUEUED
    assert store.get(record.token).state is QUEUED
    claimed = store.claim(record.token, lease_s=-1)  # its lease runs out at once
    assert claimed is not None and claimed.state is PROCESSING
    again = store.claim(record.token, lease_s=30)  # processing -> processing
    assert again is not None and again.state is PROCESSING and again.runs == 2
    assert again.claim is not None
    accepted = JudgeResult(verdict=Verdict.ACCEPTED)
    done = store.finish(record.token, again.claim, accepted, default_retain_s=60)
    assert done is not None and done.state is DONE
    # done is final: neither a claim nor a second finish moves it.
    assert store.claim(record.token, lease_s=30) is None
    wrong = JudgeResult(verdict=Verdict.WRONG_ANSWER)
    assert store.finish(record.token, again.claim, wrong, default_retain_s=60) is None
    assert store.get(record.token).state is DONE
    assert store.states([record.token])[record.token].state is DONE
    assert store.page(offset=0, limit=10, state=DONE)[1] == 1
