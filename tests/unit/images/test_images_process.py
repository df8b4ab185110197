"""Running a build tool with its output streamed as progress lines."""

from __future__ import annotations

import sys
import time

import pytest

from hpcbox.clusters.images.process import TAIL_LINES, Milestones, output_sink, run_streamed
from hpcbox.core.errors import PermanentError, TransientError, UnavailableError
from tests.unit.images.fakes import RecordingReporter

PY = sys.executable


def test_lines_are_streamed_stdout_and_stderr_together() -> None:
    lines: list[str] = []
    code = "import sys; print('one'); print('two', file=sys.stderr, flush=True); print('three')"
    run_streamed([PY, "-c", code], output=lines.append, what="t")
    assert sorted(lines) == ["one", "three", "two"]


def test_failure_quotes_the_last_lines() -> None:
    code = "import sys\nfor i in range(100): print(f'line {i}')\nsys.exit(3)"
    with pytest.raises(PermanentError, match="exit 3") as caught:
        run_streamed([PY, "-c", code], output=lambda _: None, what="build x")
    first, _, rest = str(caught.value).partition("\n")
    assert first == "build x failed (exit 3)"
    assert rest.splitlines() == [
        "last output:",
        *(f"line {i}" for i in range(100 - TAIL_LINES, 100)),
    ]


def test_missing_program() -> None:
    with pytest.raises(UnavailableError, match="not installed"):
        run_streamed(["/nonexistent/podman", "build"], output=lambda _: None, what="b")


def test_timeout_kills() -> None:
    started = time.monotonic()
    with pytest.raises(TransientError, match="no end after"):
        run_streamed(
            [PY, "-c", "import time; time.sleep(30)"],
            output=lambda _: None,
            what="t",
            timeout=0.5,
        )
    assert time.monotonic() - started < 10


def test_environment_is_passed() -> None:
    lines: list[str] = []
    run_streamed(
        [PY, "-c", "import os; print(os.environ['CONTAINERS_CONF'])"],
        output=lines.append,
        what="t",
        env={"CONTAINERS_CONF": "/s/podman/containers.conf"},
    )
    assert lines == ["/s/podman/containers.conf"]


def test_milestones_are_steps_commits_pulls_and_debootstrap_stages() -> None:
    watch = Milestones()
    lines = [
        "STEP 3/9: RUN apt-get update     && apt-get install -y munge",
        "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]",
        "[2/3] STEP 1/4: FROM hpcbox/base:0.1.0 AS install",
        "Step 2/5 : RUN make",
        "COMMIT hpcbox/base:0.1.0",
        "Trying to pull docker.io/library/debian:bookworm...",
        "I: Retrieving InRelease",
        "I: Retrieving Packages",
        "I: Validating Packages",
        "I: Retrieving libc6 2.36-9",
        "I: Retrieving bash 5.2",
        "W: an aside",
    ]
    assert [watch(line) for line in lines] == [
        "STEP 3/9: RUN apt-get update && apt-get install -y munge",
        None,
        "[2/3] STEP 1/4: FROM hpcbox/base:0.1.0 AS install",
        "Step 2/5 : RUN make",
        "COMMIT hpcbox/base:0.1.0",
        "Trying to pull docker.io/library/debian:bookworm...",
        "debootstrap: Retrieving InRelease",
        None,
        "debootstrap: Validating Packages",
        "debootstrap: Retrieving libc6 2.36-9",
        None,
        None,
    ]


def test_a_long_milestone_is_clipped() -> None:
    what = Milestones()("STEP 1/2: RUN " + "x" * 500)
    assert what is not None and len(what) == 100 and what.endswith("…")


def test_output_sink_sends_raw_lines_and_waits() -> None:
    reporter = RecordingReporter()
    run_streamed(
        [PY, "-c", "print('STEP 1/1: RUN true'); print('ok')"],
        output=output_sink(reporter),
        what="t",
    )
    assert reporter.events == [
        ("output", "STEP 1/1: RUN true"),
        ("waiting", "STEP 1/1: RUN true"),
        ("output", "ok"),
    ]
