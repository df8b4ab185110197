"""The build log: a file per build with every line, passed on to the user's reporter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcbox.clusters.images.buildlog import KEEP, BuildLog
from tests.unit.images.fakes import RecordingReporter

NOON = 1_800_000_000.0  # a fixed time, so file names are known


def test_everything_goes_to_the_file_and_on(tmp_path: Path) -> None:
    inner = RecordingReporter()
    log = BuildLog(inner, tmp_path / "logs", clock=lambda: NOON)
    with log.session() as path:
        log("note")
        with log.step("building x", waiting_for="podman build"):
            log.output("STEP 1/2: RUN true")
            log.waiting("STEP 1/2: RUN true")
        with pytest.raises(RuntimeError), log.step("building y"):
            raise RuntimeError("boom")
    log.output("after the session: not in the file")
    assert path.parent == tmp_path / "logs"
    assert path.name.startswith("images-") and path.suffix == ".log"
    lines = [line.split("] ", 1)[-1] for line in path.read_text().splitlines()]
    assert lines[0] == "note"
    assert lines[1] == "==> building x"
    assert lines[2] == "STEP 1/2: RUN true"
    assert lines[3].startswith("<== building x: done in ")
    assert lines[4] == "==> building y"
    assert lines[5].startswith("<== building y: failed after ") and lines[5].endswith(": boom")
    assert len(lines) == 6
    assert inner.events == [
        ("info", "note"),
        ("step", "building x | podman build"),
        ("output", "STEP 1/2: RUN true"),
        ("waiting", "STEP 1/2: RUN true"),
        ("done", "building x"),
        ("step", "building y | "),
        ("failed", "building y"),
        ("output", "after the session: not in the file"),
    ]
    assert log.path == path


def test_sessions_in_the_same_second_get_their_own_files(tmp_path: Path) -> None:
    log = BuildLog(RecordingReporter(), tmp_path, clock=lambda: NOON)
    with log.session() as first:
        log("one")
        with log.session() as nested:
            assert nested == first
    with log.session() as second:
        log("two")
    assert first != second
    assert "one" in first.read_text() and "two" in second.read_text()


def test_old_logs_are_pruned(tmp_path: Path) -> None:
    for index in range(KEEP + 5):
        old = tmp_path / f"images-2020010{index:03d}.log"
        old.write_text("old")
        os.utime(old, (index, index))
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    log = BuildLog(RecordingReporter(), tmp_path, clock=lambda: NOON)
    with log.session() as path:
        pass
    left = sorted(p.name for p in tmp_path.glob("images-*.log"))
    assert len(left) == KEEP
    assert path.name in left
    assert "images-2020010000.log" not in left  # the oldest went first
    assert other.exists()


def test_a_symlink_in_place_of_the_log_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    log = BuildLog(RecordingReporter(), tmp_path / "logs", clock=lambda: NOON)
    with log.session() as path:
        pass
    path.unlink()
    path.symlink_to(target)
    with log.session() as again:
        log("written")
    assert again != path
    assert target.read_text() == "keep"
