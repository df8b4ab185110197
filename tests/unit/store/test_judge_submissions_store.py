"""The submission repository against real SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import ConflictError, NotFoundError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.model import (
    JudgeResult,
    Submission,
    SubmissionState,
    TestCase,
    TestResult,
    Verdict,
)
from hpcbox.judge.store.repository import SubmissionStore

SUB = Submission(language="python3", source=b"print(1)\n\xff", tests=(TestCase(stdin=b"\x00"),))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, home: Path) -> Iterator[SubmissionStore]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = open_engine(Settings(home=home, database_url=url))
    yield SubmissionStore(engine)
    engine.dispose()


def _result(verdict: Verdict = Verdict.ACCEPTED) -> JudgeResult:
    return JudgeResult(
        verdict=verdict,
        tests=(TestResult(index=0, verdict=verdict, stdout=b"1\n\xfe", cpu_time_s=0.01),),
    )


def test_create_and_read_back_bytes_exactly(store: SubmissionStore) -> None:
    record, created = store.create(SUB, api="v1", priority=3, echo={"a": 1})
    assert created
    assert len(record.token) == 36 and record.token.count("-") == 4
    assert record.state == SubmissionState.QUEUED and record.priority == 3 and record.runs == 0
    again = store.get(record.token)
    assert again.submission == SUB
    assert again.echo == {"a": 1}
    with pytest.raises(NotFoundError):
        store.get("00000000-0000-4000-8000-000000000000")


def test_idempotency_key_returns_the_first_submission(store: SubmissionStore) -> None:
    first, created = store.create(SUB, api="v1", idempotency_key="k1", request_hash="h")
    second, created_again = store.create(SUB, api="v1", idempotency_key="k1", request_hash="h")
    assert created and not created_again
    assert second.token == first.token
    with pytest.raises(ConflictError):
        store.create(SUB, api="v1", idempotency_key="k1", request_hash="other")


def test_claim_order_is_priority_then_fifo(store: SubmissionStore) -> None:
    low1 = store.create(SUB, api="v1", priority=0)[0].token
    high = store.create(SUB, api="v1", priority=5)[0].token
    low2 = store.create(SUB, api="v1", priority=0)[0].token
    order = []
    while (rec := store.claim_next(lease_s=30)) is not None:
        order.append(rec.token)
        assert rec.state == SubmissionState.PROCESSING and rec.runs == 1
    assert order == [high, low1, low2]


def test_a_claim_is_exclusive_until_its_lease_runs_out(store: SubmissionStore) -> None:
    token = store.create(SUB, api="judge0")[0].token
    first = store.claim(token, lease_s=0.3)
    assert first is not None and first.claim
    assert store.claim(token, lease_s=30) is None  # live lease: nobody else runs it
    assert store.add_test(token, first.claim, TestResult(index=0, verdict=Verdict.ACCEPTED))
    time.sleep(0.4)
    assert store.expired() == [token]
    second = store.claim(token, lease_s=30)
    assert second is not None and second.runs == 2 and second.claim != first.claim
    assert store.tests(token) == []  # the re-run starts from the first test
    # The dead worker's claim can no longer write anything.
    assert not store.add_test(token, first.claim, TestResult(index=0, verdict=Verdict.ACCEPTED))
    assert store.finish(token, first.claim, _result(), default_retain_s=60) is None
    assert not store.renew(token, first.claim, lease_s=30)
    assert store.renew(token, second.claim or "", lease_s=30)
    done = store.finish(token, second.claim or "", _result(), default_retain_s=60)
    assert done is not None and done.state == SubmissionState.DONE
    assert done.result == _result()
    assert store.tests(token) == list(_result().tests)
    assert store.claim(token, lease_s=30) is None  # done stays done


def test_concurrent_claims_run_each_submission_once(store: SubmissionStore) -> None:
    tokens = {store.create(SUB, api="v1")[0].token for _ in range(20)}
    won: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while (rec := store.claim_next(lease_s=30)) is not None:
            with lock:
                won.append(rec.token)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == sorted(tokens)


def test_tests_are_visible_as_they_finish(store: SubmissionStore) -> None:
    token = store.create(SUB, api="v1")[0].token
    rec = store.claim(token, lease_s=30)
    assert rec is not None and rec.claim
    for i in range(3):
        store.add_test(token, rec.claim, TestResult(index=i, verdict=Verdict.ACCEPTED))
    assert [t.index for t in store.tests(token)] == [0, 1, 2]
    assert [t.index for t in store.tests(token, after=0)] == [1, 2]


def test_retention_purges_only_expired_finished(store: SubmissionStore) -> None:
    keep = store.create(SUB, api="v1")[0].token
    short = store.create(SUB, api="v1", retain_s=0)[0].token
    for token in (keep, short):
        rec = store.claim(token, lease_s=30)
        assert rec is not None and rec.claim
        store.finish(token, rec.claim, _result(), default_retain_s=3600)
    queued = store.create(SUB, api="v1")[0].token
    assert store.purge(now=utcnow() + timedelta(seconds=1)) == 1
    assert {r.token for r in store.page(offset=0, limit=10)[0]} == {keep, queued}
    with pytest.raises(NotFoundError):
        store.tests(short)


def test_page_counts_delete_and_statistics(store: SubmissionStore) -> None:
    tokens = [store.create(SUB, api="judge0")[0].token for _ in range(5)]
    page, total = store.page(offset=1, limit=2)
    assert total == 5 and [r.token for r in page] == [tokens[3], tokens[2]]
    assert store.count_queued() == 5
    gone = store.delete(tokens[0])
    assert gone.token == tokens[0]
    with pytest.raises(NotFoundError):
        store.delete(tokens[0])
    rec = store.claim_next(lease_s=30)
    assert rec is not None and rec.claim
    store.finish(rec.token, rec.claim, _result(Verdict.WRONG_ANSWER), default_retain_s=60)
    assert store.count_by_state() == {SubmissionState.QUEUED: 3, SubmissionState.DONE: 1}
    stats = store.statistics()
    assert stats == {"total": 4, "languages": {"python3": 4}, "verdicts": {"wrong_answer": 1}}
    latencies = store.recent_latencies(since=utcnow() - timedelta(minutes=1))
    assert len(latencies) == 1 and latencies[0][0] == "python3"
    assert store.get_many([tokens[1], "nope"]).keys() == {tokens[1]}


def test_a_batch_is_stored_in_order_and_claimed_first_in_first_out(store: SubmissionStore) -> None:
    other = Submission(language="c", source=b"int main(){}", tests=(TestCase(),))
    records = store.create_many(
        [(SUB, {"i": 0}, None), (other, None, "http://cb.example/x"), (SUB, {"i": 2}, None)],
        api="judge0",
    )
    assert [r.state for r in records] == [SubmissionState.QUEUED] * 3
    assert len({r.token for r in records}) == 3
    stored = store.get_many([r.token for r in records])
    assert stored[records[0].token].echo == {"i": 0}
    assert stored[records[1].token].submission == other
    assert stored[records[1].token].callback_url == "http://cb.example/x"
    claimed = [store.claim_next(lease_s=30) for _ in range(3)]
    assert [c.token for c in claimed if c] == [r.token for r in records]
    assert store.create_many([], api="judge0") == []


def test_a_claim_and_a_finish_answer_the_row_as_stored(store: SubmissionStore) -> None:
    token = store.create(SUB, api="v1", echo={"a": 1})[0].token
    claimed = store.claim_next(lease_s=30)
    assert claimed is not None and claimed.claim is not None
    again = store.get(token)
    assert (claimed.state, claimed.runs, claimed.claim) == (again.state, again.runs, again.claim)
    assert claimed.started_at == again.started_at and claimed.echo == {"a": 1}
    done = store.finish(token, claimed.claim, _result(), default_retain_s=60, tests_streamed=False)
    stored = store.get(token)
    assert done is not None and done.state == stored.state == SubmissionState.DONE
    assert done.result == stored.result and done.finished_at == stored.finished_at
    assert done.expires_at == stored.expires_at
    assert [t.index for t in store.tests(token)] == [0]
