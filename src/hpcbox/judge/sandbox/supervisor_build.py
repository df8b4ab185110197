"""Building the compiled supervisor (:mod:`.compiled`) with the runtime's own gcc,
in an ordinary box supervised by the Python supervisor, and checking it by one
run before any real box depends on it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from hpcbox.core.errors import PermanentError
from hpcbox.judge.sandbox import compiled
from hpcbox.judge.sandbox.box import WarmBox
from hpcbox.judge.sandbox.spec import RunLimits, RunSpec

__all__ = ["build_supervisor"]

_ENV = {"PATH": "/usr/bin:/bin"}
_LIMITS = RunLimits(cpu_time_s=30, wall_time_s=60, memory_bytes=512 * 1024 * 1024)
_MAX_BINARY_BYTES = 32 * 1024 * 1024


def build_supervisor(rootfs: Path, start: Callable[[int | None], WarmBox]) -> int | None:
    """A sealed descriptor of the compiled supervisor, built and checked in boxes
    that ``start`` gives (its argument: the compiled supervisor to run as PID 1, or
    None for the Python one); None when the rootfs has no gcc.

    Linked statically, else dynamically (a rootfs without libc.a). PermanentError
    when gcc fails or the binary fails its check run.
    """
    if not (rootfs / "usr/bin/gcc").exists():
        return None
    static = compiled.COMPILE_ARGV
    for argv in (static, tuple(a for a in static if a != "-static")):
        with start(None) as box:
            box.write_file("supervisor.c", compiled.SOURCE)
            done = box.run(RunSpec(argv=argv, env=_ENV, limits=_LIMITS))
            if done.exit_code != 0:
                continue
            binary = box.read_file("supervisor", max_bytes=_MAX_BINARY_BYTES)
        fd = compiled.sealed_executable(binary)
        try:  # one run through it before any real box depends on it
            with start(fd) as box:
                check = box.run(RunSpec(argv=("true",), env=_ENV))
        except Exception:
            os.close(fd)
            raise
        if check.exit_code == 0:
            return fd
        os.close(fd)
        raise PermanentError(f"the compiled supervisor failed its check: {check}")
    raise PermanentError(f"gcc could not build the supervisor: {done.stderr[-2000:]!r}")
