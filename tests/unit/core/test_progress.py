"""The progress seam: Reporter, the line-based one, and turning callables into reporters."""

from __future__ import annotations

import itertools

import pytest

from hpcbox.core.progress import LineReporter, Reporter, as_reporter, format_elapsed


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (-3, "0s"), (42.9, "42s"), (60, "1m00s"), (185, "3m05s"), (3720, "1h02m")],
)
def test_format_elapsed(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text


def test_line_reporter_turns_steps_into_lines() -> None:
    lines: list[str] = []
    ticks = itertools.count(0, 65)
    reporter = LineReporter(lines.append, clock=lambda: float(next(ticks)))
    reporter("hello")
    with reporter.step("building base", waiting_for="podman build"):
        reporter.waiting("STEP 1/3: FROM debian")
        reporter.output("raw line")
    with pytest.raises(KeyError), reporter.step("building worker"):
        raise KeyError("x")
    assert lines == [
        "hello",
        "building base: waiting for podman build",
        "  STEP 1/3: FROM debian",
        "building base: done in 1m05s",
        "building worker",
        "building worker: failed after 1m05s",
    ]


def test_line_reporter_shows_raw_output_when_verbose() -> None:
    lines: list[str] = []
    LineReporter(lines.append, verbose=True).output("raw line")
    assert lines == ["raw line"]


def test_as_reporter() -> None:
    lines: list[str] = []
    wrapped = as_reporter(lines.append)
    assert isinstance(wrapped, Reporter)
    wrapped("note")
    wrapped.output("raw")
    assert lines == ["note"]
    reporter = LineReporter(lines.append)
    assert as_reporter(reporter) is reporter
    as_reporter(None)("dropped")
    assert not isinstance(lines.append, Reporter)
