"""Progress of long steps: the seam between work that takes minutes and whoever watches it.

Code that runs something long (a Debian bootstrap, an image build, a cluster
bring-up) reports through a :class:`Reporter`: informative lines, steps with a
title and what each is waiting for now, and the raw output of the tools it
runs. What the user sees is the shell's business — a rich status line with a
spinner and the elapsed time on a terminal, plain lines in a log — and the
core decides nothing about it: this module does no I/O and imports no UI
library.

A Reporter is also a plain ``progress(line)`` callable, so it can be handed to
code that only knows about lines; :func:`as_reporter` goes the other way and
turns such a callable into a Reporter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

__all__ = ["LineReporter", "Reporter", "as_reporter", "format_elapsed"]


@runtime_checkable
class Reporter(Protocol):
    """Where long-running work says what it is doing."""

    def __call__(self, message: str) -> None:
        """An informative line for the user."""

    def step(self, title: str, *, waiting_for: str = "") -> AbstractContextManager[None]:
        """A long step, shown (with its elapsed time) while the block runs.

        Steps may nest. Leaving the block by an exception marks the step failed
        and lets the exception through.
        """

    def waiting(self, what: str) -> None:
        """What the innermost running step waits for now (a sub-step, a lock, a mirror)."""

    def output(self, line: str) -> None:
        """One line of a tool's raw output: kept in logs, shown only when asked for."""


def format_elapsed(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a status line."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class LineReporter:
    """A Reporter over a plain ``say(line)`` callable, for logs and for callers without a UI.

    Steps become a line when they start and one when they end (with the time
    they took); what a step waits for becomes an indented line; raw tool output
    goes to ``say`` only when ``verbose``.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        verbose: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._say = say
        self._verbose = verbose
        self._clock = clock

    def __call__(self, message: str) -> None:
        self._say(message)

    @contextlib.contextmanager
    def step(self, title: str, *, waiting_for: str = "") -> Iterator[None]:
        started = self._clock()
        self._say(f"{title}: waiting for {waiting_for}" if waiting_for else title)
        try:
            yield
        except BaseException:
            self._say(f"{title}: failed after {format_elapsed(self._clock() - started)}")
            raise
        self._say(f"{title}: done in {format_elapsed(self._clock() - started)}")

    def waiting(self, what: str) -> None:
        self._say(f"  {what}")

    def output(self, line: str) -> None:
        if self._verbose:
            self._say(line)


def as_reporter(progress: Reporter | Callable[[str], None] | None) -> Reporter:
    """``progress`` itself when it is a Reporter; a quiet-output LineReporter over a callable."""
    if isinstance(progress, Reporter):
        return progress
    if progress is None:
        return LineReporter(lambda _: None)
    return LineReporter(progress)
