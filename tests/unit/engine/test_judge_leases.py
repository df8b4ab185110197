"""The lease keeper: one thread renews every running claim, each every third of
its lease, and stops when the run ends or the claim is lost."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from hpcbox.judge.queue.runner import _LeaseKeeper
from hpcbox.judge.store.repository import SubmissionStore


class _Store:
    """Records renewals; answers False (claim lost) for the tokens in ``lost``."""

    def __init__(self, lost: frozenset[str] = frozenset()) -> None:
        self.calls: list[tuple[str, str, float]] = []
        self.lost = lost
        self.lock = threading.Lock()

    def renew(self, token: str, claim: str, *, lease_s: float) -> bool:
        with self.lock:
            self.calls.append((token, claim, lease_s))
        return token not in self.lost

    def count(self, token: str) -> int:
        with self.lock:
            return sum(1 for t, _, _ in self.calls if t == token)


def _as_store(fake: _Store) -> SubmissionStore:
    return cast(SubmissionStore, cast(Any, fake))


def test_claims_are_renewed_while_they_run_and_not_after() -> None:
    keeper, store = _LeaseKeeper(), _Store()
    with (
        keeper.holding(_as_store(store), "a", "c1", 0.3),
        keeper.holding(_as_store(store), "b", "c2", 3.0),
    ):
        time.sleep(0.45)
    assert store.count("a") >= 3  # every 0.1 s
    assert store.count("b") == 0  # its first renewal was due after 1 s
    assert ("a", "c1", 0.3) in store.calls
    ended = len(store.calls)
    time.sleep(0.25)
    assert len(store.calls) == ended


def test_a_lost_claim_is_not_renewed_again() -> None:
    keeper, store = _LeaseKeeper(), _Store(lost=frozenset({"gone"}))
    with keeper.holding(_as_store(store), "gone", "c", 0.15):
        time.sleep(0.4)
    assert store.count("gone") == 1


def test_one_thread_serves_every_claim() -> None:
    keeper, store = _LeaseKeeper(), _Store()
    before = threading.active_count()
    holds = [keeper.holding(_as_store(store), f"t{i}", "c", 0.3) for i in range(20)]
    for hold in holds:
        hold.__enter__()
    try:
        assert threading.active_count() <= before + 1
        time.sleep(0.15)
        assert {t for t, _, _ in store.calls} == {f"t{i}" for i in range(20)}
    finally:
        for hold in holds:
            hold.__exit__(None, None, None)
