"""Running one claimed submission: judge it, record each test as it finishes,
keep the claim's lease alive, store the result, send the callback.

Used by the in-process queue's threads and by ``hpcbox worker`` alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator

from hpcbox.judge.judge0.views import judge0_json, native_json
from hpcbox.judge.model import JudgeFunction, JudgeResult, TestResult, Verdict
from hpcbox.judge.queue.callbacks import CallbackSender
from hpcbox.judge.store.repository import SubmissionRecord, SubmissionStore

__all__ = ["callback_body", "run_claimed"]

_log = logging.getLogger(__name__)


def callback_body(record: SubmissionRecord) -> bytes:
    """The JSON a callback carries: Judge0's full submission (base64 texts, as
    Judge0 sends them) for ``/judge0`` submissions, the native JSON otherwise."""
    data = judge0_json(record) if record.api == "judge0" else native_json(record)
    return json.dumps(data, separators=(",", ":")).encode()


class _LeaseKeeper:
    """Renews the lease of every claim this process is running, each every third
    of its lease, from one thread (a thread per submission cost two thread
    hand-offs per submission, which the profile showed under load)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        #: (token, claim) -> (store, lease_s, next renewal on the monotonic clock)
        self._held: dict[tuple[str, str], tuple[SubmissionStore, float, float]] = {}
        self._thread: threading.Thread | None = None
        #: When the keeper thread wakes next by itself (monotonic clock).
        self._wakes_at = 0.0

    @contextlib.contextmanager
    def holding(
        self, store: SubmissionStore, token: str, claim: str, lease_s: float
    ) -> Iterator[None]:
        """Keep ``claim``'s lease alive while the ``with`` block runs."""
        key = (token, claim)
        due = time.monotonic() + lease_s / 3
        with self._cond:
            self._held[key] = (store, lease_s, due)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="hpcbox-judge-leases", daemon=True
                )
                self._thread.start()
            # Woken only when this renewal is due before its next wake-up: with
            # equal leases it never is, and a wake-up per submission costs a
            # thread switch each (seen in the profile under load).
            if due < self._wakes_at:
                self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._held.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [(k, v) for k, v in self._held.items() if v[2] <= now]
                for key, (store, lease_s, _) in due:
                    self._held[key] = (store, lease_s, now + lease_s / 3)
                if not due:
                    soonest = min((v[2] for v in self._held.values()), default=now + 60)
                    self._wakes_at = soonest
                    self._cond.wait(timeout=soonest - now)
                    self._wakes_at = 0.0
                    continue
            for (token, claim), (store, lease_s, _) in due:
                try:
                    if not store.renew(token, claim, lease_s=lease_s):
                        with self._cond:  # lost: nothing left to keep
                            self._held.pop((token, claim), None)
                except Exception:  # a busy database: try again at the next beat
                    _log.warning("lease renewal of %s failed", token, exc_info=True)


_leases = _LeaseKeeper()


def run_claimed(
    store: SubmissionStore,
    judge: JudgeFunction,
    record: SubmissionRecord,
    *,
    lease_s: float,
    retention_s: int,
    callbacks: CallbackSender | None = None,
) -> SubmissionRecord | None:
    """Judge a submission this process has claimed; the finished record, or None
    when the claim was lost meanwhile (another run owns it now).

    Never raises for what the program does; an exception of the judge itself
    becomes an INTERNAL_ERROR result, so that the submission still finishes.
    """
    claim = record.claim
    if claim is None:
        raise ValueError("run_claimed needs a claimed record")

    last = len(record.submission.tests) - 1

    def on_test(test: TestResult) -> None:
        if test.index == last:
            # finish() stores it a moment later with the result; a row of its own
            # first would cost a transaction per submission for nothing.
            return
        try:
            store.add_test(record.token, claim, test)
        except Exception:  # streaming is best effort; the final result has every test
            _log.warning("could not record a test of %s", record.token, exc_info=True)

    with _leases.holding(store, record.token, claim, lease_s):
        try:
            result = judge(record.submission, on_test=on_test)
        except Exception as exc:
            _log.exception("judge failed on %s", record.token)
            result = JudgeResult(
                verdict=Verdict.INTERNAL_ERROR, message=f"internal error: {type(exc).__name__}"
            )
    finished = store.finish(
        record.token, claim, result, default_retain_s=retention_s, tests_streamed=last > 0
    )
    if finished is not None and finished.callback_url and callbacks is not None:
        callbacks.submit(finished.callback_url, callback_body(finished))
    return finished
