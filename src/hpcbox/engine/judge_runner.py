"""Running one claimed submission: judge it, record each test as it finishes,
keep the claim's lease alive, store the result, send the callback.

Used by the in-process queue's threads and by ``hpcbox worker`` alike.
"""

from __future__ import annotations

import json
import logging
import threading

from hpcbox.core.judge import JudgeFunction, JudgeResult, TestResult, Verdict
from hpcbox.engine.judge_callbacks import CallbackSender
from hpcbox.engine.judge_views import judge0_json, native_json
from hpcbox.store.submissions import SubmissionRecord, SubmissionStore

__all__ = ["callback_body", "run_claimed"]

_log = logging.getLogger(__name__)


def callback_body(record: SubmissionRecord) -> bytes:
    """The JSON a callback carries: Judge0's full submission (base64 texts, as
    Judge0 sends them) for ``/judge0`` submissions, the native JSON otherwise."""
    data = judge0_json(record) if record.api == "judge0" else native_json(record)
    return json.dumps(data, separators=(",", ":")).encode()


class _Heartbeat:
    """Renews the claim's lease every third of it while the judge runs."""

    def __init__(self, store: SubmissionStore, token: str, claim: str, lease_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, token, claim, lease_s), daemon=True
        )

    def _run(self, store: SubmissionStore, token: str, claim: str, lease_s: float) -> None:
        while not self._stop.wait(lease_s / 3):
            try:
                if not store.renew(token, claim, lease_s=lease_s):
                    return
            except Exception:  # a busy database: try again at the next beat
                _log.warning("lease renewal of %s failed", token, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


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

    with _Heartbeat(store, record.token, claim, lease_s):
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
