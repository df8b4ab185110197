"""RichReporter: a live status line per step on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hpcbox.cli.output import RichReporter, print_error_detail
from hpcbox.core.errors import PermanentError
from hpcbox.core.progress import Reporter


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=100, color_system=None), buffer


def test_is_a_reporter_and_a_plain_callable() -> None:
    out, buffer = console(False)
    reporter = RichReporter(out)
    assert isinstance(reporter, Reporter)
    reporter("a [bold]note[/]")  # markup in a message is shown, not applied
    assert buffer.getvalue() == "> a [bold]note[/]\n"


def test_plain_lines_when_not_a_terminal() -> None:
    out, buffer = console(False)
    reporter = RichReporter(out)
    with reporter.step("building hpcbox/base", waiting_for="podman build"):
        reporter.waiting("STEP 2/4: RUN apt-get update")
        reporter.output("Get:1 http://deb.debian.org/debian bookworm InRelease")
    with pytest.raises(RuntimeError), reporter.step("building hpcbox/jupyter"):
        raise RuntimeError
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "> building hpcbox/base: waiting for podman build"
    assert lines[1] == "    STEP 2/4: RUN apt-get update"
    assert lines[2].startswith("✓ building hpcbox/base: done in ")
    assert lines[3] == "> building hpcbox/jupyter"
    assert lines[4].startswith("✗ building hpcbox/jupyter: failed after ")
    assert len(lines) == 5  # raw output is not shown without verbose


def test_verbose_shows_raw_output_once() -> None:
    out, buffer = console(False)
    reporter = RichReporter(out, verbose=True)
    reporter.output("E: [red]Unable to locate package")
    reporter.output("STEP 2/4: RUN make")
    reporter.waiting("STEP 2/4: RUN make")  # the raw line said it already
    assert buffer.getvalue() == "E: [red]Unable to locate package\nSTEP 2/4: RUN make\n"


def test_a_live_step_on_a_terminal() -> None:
    out, buffer = console(True)
    reporter = RichReporter(out, verbose=True)
    with reporter.step("building hpcbox/base", waiting_for="podman build"):
        reporter.waiting("STEP 2/4: RUN apt-get update")
        with reporter.step("nested step"):
            reporter.output("raw line")
        assert reporter._progress is not None  # the outer step is still live
    assert reporter._progress is None
    text = buffer.getvalue()
    # The live line: spinner, the step, elapsed time, what it waits for.
    assert "building hpcbox/base" in text and "0:00:0" in text
    assert "STEP 2/4: RUN apt-get update" in text
    assert "raw line" in text
    assert "✓ nested step: done in 0s" in text
    assert "✓ building hpcbox/base: done in 0s" in text


def test_print_error_detail_keeps_the_first_line_in_the_error() -> None:
    out, buffer = console(False)
    error = PermanentError("build x failed (exit 1) (full log: /l.log)\nlast output:\nE: broken")
    print_error_detail(error, out)
    assert str(error) == "build x failed (exit 1) (full log: /l.log)"
    assert buffer.getvalue() == "last output:\nE: broken\n"
    one_line = PermanentError("just this")
    print_error_detail(one_line, out)
    assert str(one_line) == "just this"
