"""How stored submissions look to clients: hpcbox's native JSON and Judge0's.

Shared by the REST shell (answers) and the worker shell (callbacks), which must
not import each other.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from hpcbox.core.clock import iso
from hpcbox.judge.judge0.mapping import (
    ALL_FIELDS,
    OUTCOME_FIELDS,
    StoredView,
    render_submission,
    status_of_verdict,
)
from hpcbox.judge.model import SubmissionState, TestResult
from hpcbox.judge.store.repository import SubmissionRecord, SubmissionStatus

__all__ = ["STATE_FIELDS", "judge0_json", "judge0_state_json", "native_json", "result_json"]

#: Judge0 fields shown without the submission's stored input fields.
_WITHOUT_ECHO = OUTCOME_FIELDS | {"token", "status", "status_id", "created_at", "finished_at"}
#: Judge0 fields shown from a submission's state and result alone (a status poll).
STATE_FIELDS = OUTCOME_FIELDS | {"token", "status", "status_id"}


def _text(data: bytes, encoded: bool) -> str:
    if encoded:
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", errors="replace")


def result_json(test: TestResult, *, encoded: bool = False) -> dict[str, Any]:
    """One test's result (``stdout``/``stderr`` base64 when ``encoded``; otherwise
    UTF-8 with invalid bytes replaced)."""
    return {
        "index": test.index,
        "verdict": test.verdict.value,
        "stdout": _text(test.stdout, encoded),
        "stderr": _text(test.stderr, encoded),
        "exit_code": test.exit_code,
        "exit_signal": test.exit_signal,
        "cpu_time_s": test.cpu_time_s,
        "wall_time_s": test.wall_time_s,
        "peak_memory_bytes": test.peak_memory_bytes,
        "message": test.message,
    }


def native_json(
    record: SubmissionRecord,
    *,
    tests: Sequence[TestResult] | None = None,
    encoded: bool = False,
) -> dict[str, Any]:
    """A submission as ``/v1/submissions`` shows it. ``tests`` (the results so far)
    replace the final ones while it runs."""
    result = record.result
    shown = result.tests if result is not None else tuple(tests or ())
    return {
        "token": record.token,
        "state": record.state.value,
        "language": record.language,
        "priority": record.priority,
        "verdict": None if result is None else result.verdict.value,
        "compile_output": None if result is None else _text(result.compile_output, encoded),
        "message": None if result is None else result.message,
        "tests_total": len(record.submission.tests),
        "tests": [result_json(t, encoded=encoded) for t in shown],
        "runs": record.runs,
        "created_at": iso(record.created_at),
        "started_at": iso(record.started_at),
        "finished_at": iso(record.finished_at),
        "expires_at": iso(record.expires_at),
    }


def judge0_json(
    record: SubmissionRecord,
    *,
    fields: Sequence[str] = ALL_FIELDS,
    encoded: bool = True,
    language_names: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """A submission as Judge0 shows it.

    See :func:`hpcbox.judge.judge0.mapping.render_submission`.
    """
    # The stored input fields are decoded only when one of them is shown.
    echo = (record.echo or {}) if not set(fields) <= _WITHOUT_ECHO else {}
    lang_id = echo.get("language_id")
    view = StoredView(
        token=record.token,
        state=record.state,
        echo=echo,
        # Decoded only when it can be shown (see SubmissionRecord).
        result=record.result if record.state == SubmissionState.DONE else None,
        created_at=iso(record.created_at),
        finished_at=iso(record.finished_at),
        language_name=(language_names or {}).get(lang_id) if isinstance(lang_id, int) else None,
    )
    return render_submission(view, fields=fields, encoded=encoded)


def judge0_state_json(
    state: SubmissionStatus, *, fields: Sequence[str], encoded: bool = True
) -> dict[str, Any]:
    """What :func:`judge0_json` shows for ``fields`` within :data:`STATE_FIELDS`,
    from the submission's state and result alone (its verdict alone, where that
    decides its status and no field of the outcome is asked for: a finished
    submission in a polled batch is shown again at every poll)."""
    status = None
    done = state.state == SubmissionState.DONE
    if done and not set(fields) & OUTCOME_FIELDS:
        status = status_of_verdict(state.verdict)
    view = StoredView(
        token=state.token,
        state=state.state,
        echo={},
        result=state.result if done and status is None else None,
        created_at=None,
        finished_at=None,
        status=status,
    )
    return render_submission(view, fields=fields, encoded=encoded)
