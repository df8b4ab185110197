"""Output comparison (pure): Judge0's exact rule, tokens, and floats with a tolerance."""

from __future__ import annotations

import math

from hpcbox.judge.model import CompareMode

__all__ = ["outputs_match", "same_exact", "same_floats", "same_tokens"]


def _normalise(data: bytes) -> list[bytes]:
    lines = [line.rstrip() for line in data.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def same_exact(expected: bytes, actual: bytes) -> bool:
    """Judge0's rule: equal after stripping trailing whitespace of every line and
    trailing blank lines."""
    return _normalise(expected) == _normalise(actual)


def same_tokens(expected: bytes, actual: bytes) -> bool:
    """Equal as sequences of whitespace-separated tokens."""
    return expected.split() == actual.split()


def _as_float(token: bytes) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value


def same_floats(expected: bytes, actual: bytes, tolerance: float) -> bool:
    """Tokens, where two numeric tokens match if they differ by at most
    ``tolerance``, absolutely or relatively; other tokens must be equal. NaN
    matches only NaN, infinities only themselves."""
    exp, act = expected.split(), actual.split()
    if len(exp) != len(act):
        return False
    for e, a in zip(exp, act, strict=True):
        if e == a:
            continue
        fe, fa = _as_float(e), _as_float(a)
        if fe is None or fa is None:
            return False
        if math.isnan(fe) or math.isnan(fa):
            if not (math.isnan(fe) and math.isnan(fa)):
                return False
            continue
        if not math.isclose(fe, fa, rel_tol=tolerance, abs_tol=tolerance):
            return False
    return True


def outputs_match(mode: CompareMode, expected: bytes, actual: bytes, tolerance: float) -> bool:
    """Compare by ``mode`` (not for ``checker``, which runs a program)."""
    if mode is CompareMode.EXACT:
        return same_exact(expected, actual)
    if mode is CompareMode.TOKENS:
        return same_tokens(expected, actual)
    if mode is CompareMode.FLOAT:
        return same_floats(expected, actual, tolerance)
    raise ValueError(f"{mode} is decided by a checker program, not by comparison")
