"""A box supervisor's result line, read as the untrusted input it is.

The supervisor is PID 1 of the box, so a program that took it over could write
anything on the result pipe. The host believes the line for one thing only: how
the program ended. Times and memory come from the host and the cgroup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["MAX_REPORT_BYTES", "Report", "parse_report"]

#: Longest result line accepted from a box's supervisor (a real one is < 30 KiB).
MAX_REPORT_BYTES = 64 * 1024


@dataclass(frozen=True)
class Report:
    """How the program ended, as its supervisor said."""

    exit_code: int | None = None
    signal: int | None = None
    exec_error: str | None = None


def parse_report(line: bytes) -> Report:
    """A supervisor's result line, validated as the untrusted input it is.

    Exactly one of ``exit_code`` (0-255) and ``signal`` (1-64), and ``exec_error``
    a string if present; other keys are ignored (times and memory come from the
    host and the cgroup). Raise ValueError saying what is wrong.
    """
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, nesting
        raise ValueError(f"result report is not JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise ValueError("result report is not a JSON object")
    code, sig, err = obj.get("exit_code"), obj.get("signal"), obj.get("exec_error")
    if (code is None) == (sig is None):
        raise ValueError("result report needs exactly one of exit_code and signal")
    if code is not None and not _int_in(code, 0, 255):
        raise ValueError("result report has an invalid exit_code")
    if sig is not None and not _int_in(sig, 1, 64):
        raise ValueError("result report has an invalid signal")
    if err is not None and not isinstance(err, str):
        raise ValueError("result report has an invalid exec_error")
    return Report(exit_code=code, signal=sig, exec_error=err)


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
