"""A status poll read from a submission's state alone shows exactly what the
full record shows for the same fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.judge0.views import STATE_FIELDS, judge0_json, judge0_state_json
from hpcbox.judge.model import (
    JudgeResult,
    Submission,
    SubmissionState,
    TestCase,
    TestResult,
    Verdict,
)
from hpcbox.judge.store.repository import SubmissionStatus, SubmissionStore

SUB = Submission(language="python3", source=b"print(1)\n", tests=(TestCase(),))
RESULTS = {
    "accepted": JudgeResult(
        verdict=Verdict.ACCEPTED,
        tests=(TestResult(index=0, verdict=Verdict.ACCEPTED, stdout=b"1\n", cpu_time_s=0.01),),
    ),
    "segfault": JudgeResult(
        verdict=Verdict.RUNTIME_ERROR,
        tests=(TestResult(index=0, verdict=Verdict.RUNTIME_ERROR, exit_signal=11, stderr=b"\xff"),),
    ),
    "compile": JudgeResult(verdict=Verdict.COMPILATION_ERROR, compile_output=b"main.c: error"),
}
FIELDS = [("token", "status"), ("status_id",), tuple(sorted(STATE_FIELDS))]


@pytest.fixture
def store(tmp_path: Path) -> SubmissionStore:
    return SubmissionStore(open_engine(Settings(home=tmp_path)))


@pytest.mark.parametrize("fields", FIELDS)
def test_state_json_is_the_records_json(store: SubmissionStore, fields: tuple[str, ...]) -> None:
    queued = store.create(SUB, api="judge0", echo={"language_id": 71})[0].token
    tokens = [queued]
    for result in RESULTS.values():
        token = store.create(SUB, api="judge0", echo={"language_id": 71})[0].token
        claimed = store.claim(token, lease_s=30)
        assert claimed is not None and claimed.claim is not None
        store.finish(token, claimed.claim, result, default_retain_s=60)
        tokens.append(token)
    processing = store.create(SUB, api="judge0", echo={})[0].token
    assert store.claim(processing, lease_s=30) is not None
    tokens.append(processing)
    states = store.states([*tokens, "00000000-0000-4000-8000-000000000000"])
    assert set(states) == set(tokens)
    records = store.get_many(tokens)
    for token in tokens:
        assert judge0_state_json(states[token], fields=fields) == judge0_json(
            records[token], fields=fields
        )


def test_a_status_poll_reads_the_verdict_where_it_decides_the_status() -> None:
    """A finished submission in a polled batch is shown at every poll: where its
    verdict alone decides its status, its stored result is not parsed at all."""
    unparsable = SubmissionStatus(
        "t", SubmissionState.DONE, result_stored="{not json", verdict="accepted"
    )
    shown = judge0_state_json(unparsable, fields=("token", "status"))
    assert shown == {"token": "t", "status": {"id": 3, "description": "Accepted"}}
    # A runtime error's status names its signal: that takes the result.
    crashed = SubmissionStatus(
        "t", SubmissionState.DONE, result_stored="{not json", verdict="runtime_error"
    )
    with pytest.raises(ValueError):
        judge0_state_json(crashed, fields=("status",))
    # So does any field of the outcome.
    with pytest.raises(ValueError):
        judge0_state_json(unparsable, fields=("status", "stdout"))
