"""The build log: every line of an image build's raw output, kept in a file.

A :class:`BuildLog` is a Reporter that writes what it is told (steps, notes
and the tools' raw output, with times) to a file under ``log_dir`` and passes
everything on to the Reporter that shows progress to the user. One file per
build (``images-YYYYmmdd-HHMMSS.log``); the newest :data:`KEEP` are kept.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from hpcbox.core.progress import Reporter, format_elapsed

__all__ = ["KEEP", "BuildLog"]

#: How many build logs are kept; older ones are deleted when a new one starts.
KEEP = 20
_PREFIX = "images-"


class BuildLog:
    """A Reporter that also writes to the current log file (see :meth:`session`)."""

    def __init__(
        self,
        inner: Reporter,
        log_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._log_dir = log_dir
        self._clock = clock
        self._file: TextIO | None = None
        self.path: Path | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[Path]:
        """A new log file for the block (the current one again when already in one)."""
        if self._file is not None and self.path is not None:
            yield self.path
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        path, handle = self._create()
        self._file, self.path = handle, path
        self._prune()
        try:
            yield path
        finally:
            self._file = None
            handle.close()

    def __call__(self, message: str) -> None:
        self._write(f"[{self._stamp()}] {message}")
        self._inner(message)

    @contextlib.contextmanager
    def step(self, title: str, *, waiting_for: str = "") -> Iterator[None]:
        started = time.monotonic()
        self._write(f"[{self._stamp()}] ==> {title}")
        with self._inner.step(title, waiting_for=waiting_for):
            try:
                yield
            except BaseException as exc:
                took = format_elapsed(time.monotonic() - started)
                self._write(f"[{self._stamp()}] <== {title}: failed after {took}: {exc}")
                raise
        took = format_elapsed(time.monotonic() - started)
        self._write(f"[{self._stamp()}] <== {title}: done in {took}")

    def waiting(self, what: str) -> None:
        # The raw line it came from is in the log already.
        self._inner.waiting(what)

    def output(self, line: str) -> None:
        self._write(line)
        self._inner.output(line)

    def _write(self, line: str) -> None:
        if self._file is not None:
            self._file.write(line + "\n")

    def _stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self._clock()))

    def _create(self) -> tuple[Path, TextIO]:
        base = time.strftime("%Y%m%d-%H%M%S", time.localtime(self._clock()))
        for attempt in range(1, 1000):
            suffix = "" if attempt == 1 else f"-{attempt}"
            path = self._log_dir / f"{_PREFIX}{base}{suffix}.log"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            # Line-buffered: what a killed build wrote is on disk.
            return path, open(fd, "w", buffering=1, encoding="utf-8", errors="replace")
        raise FileExistsError(f"no free log file name in {self._log_dir}")

    def _prune(self) -> None:
        logs = sorted(self._log_dir.glob(f"{_PREFIX}*.log"), key=_age_key, reverse=True)
        for old in logs[KEEP:]:
            with contextlib.suppress(OSError):
                old.unlink()


def _age_key(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, path.name
    except OSError:
        return 0.0, path.name
