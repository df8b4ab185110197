"""Run a build tool (podman, debootstrap, tar) and stream its raw output line by line.

Commands are argv lists, never shell strings. Output goes line by line to the
``output`` callback while the command runs, and the last lines are kept for
the error raised when it fails. :func:`output_sink` makes such a callback out
of a :class:`~hpcbox.core.progress.Reporter`: every line goes to its raw
output, and the lines that mark a new phase (a Containerfile step, a
debootstrap stage) also say what the current step waits for.
"""

from __future__ import annotations

import collections
import re
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence

from hpcbox.core.errors import PermanentError, TransientError, UnavailableError
from hpcbox.core.progress import Reporter

__all__ = ["TAIL_LINES", "Milestones", "Output", "output_sink", "run_streamed"]

#: Where a command's output lines go, one at a time.
Output = Callable[[str], None]

#: Lines of output quoted in the error when a command fails (the log has them all).
TAIL_LINES = 12
#: The longest "waiting for" text kept from one output line.
_WIDTH = 100
#: ``STEP 3/9: RUN ...`` (podman, with ``[1/2] `` in multi-stage builds) and
#: ``Step 3/9 : RUN ...`` (Docker's classic builder).
_STEP = re.compile(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+ ?: ", re.IGNORECASE)


def run_streamed(
    argv: Sequence[str],
    *,
    output: Output,
    what: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Run ``argv``, sending each output line (stdout and stderr) to ``output``.

    Raises UnavailableError when the program is missing, TransientError when
    ``timeout`` seconds pass (the command is killed), PermanentError when it
    exits non-zero (its first line says what failed, the next ones are the
    command's last lines of output).
    """
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except FileNotFoundError as exc:
        raise UnavailableError(f"{what}: {argv[0]} is not installed") from exc
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        stdout = proc.stdout
        if stdout is None:  # pragma: no cover - stdout=PIPE always sets it
            raise PermanentError(f"{what}: no output pipe")
        with stdout:
            for raw in stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                output(line)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        raise TransientError(f"{what}: no end after {timeout:.0f}s; killed")
    if code != 0:
        last = "\n".join(tail)
        raise PermanentError(f"{what} failed (exit {code})\nlast output:\n{last}")


class Milestones:
    """Picks out of a build tool's raw output the lines that start a new phase.

    Called with each line, it returns what the work waits for from now on, or
    None for a line within the current phase: a Containerfile step (podman's
    and Docker's), an image commit, a pull's attempt, a debootstrap stage
    (``I: Retrieving ...`` for the first package it retrieves, not for each).
    """

    def __init__(self) -> None:
        self._stage = ""

    def __call__(self, line: str) -> str | None:
        text = " ".join(line.split())
        if _STEP.match(text) or text.startswith(("COMMIT ", "Trying to pull ")):
            return _clip(text)
        if text.startswith("I: "):
            stage = text[3:].split(" ", 1)[0]
            if stage != self._stage:
                self._stage = stage
                return _clip(f"debootstrap: {text[3:]}")
        return None


def output_sink(reporter: Reporter) -> Output:
    """An ``output`` callback that feeds ``reporter``: raw lines, and milestones as waits."""
    milestones = Milestones()

    def feed(line: str) -> None:
        reporter.output(line)
        what = milestones(line)
        if what is not None:
            reporter.waiting(what)

    return feed


def _clip(text: str) -> str:
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"
