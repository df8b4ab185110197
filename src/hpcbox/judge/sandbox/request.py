"""The one request a box's supervisor gets: what to run, with which rlimits, and
the supervisor's own deadline, in the format of the supervisor in the box.

The Python supervisor (``_supervisor.py``) reads a :mod:`marshal` dump to EOF, so
that it imports built-in modules only; the compiled one (``supervisor.c``) reads
the length-prefixed strings of :func:`hpcbox.judge.sandbox.compiled.encode_request`.
"""

from __future__ import annotations

import marshal
import math

from hpcbox.judge.sandbox import compiled
from hpcbox.judge.sandbox.spec import RunLimits, RunSpec

__all__ = ["BACKSTOP_GRACE_S", "encode_request", "rlimits"]

#: How long after the host's wall limit the supervisor's own deadline kills the run
#: (a backstop for a host that died or hangs; the host normally kills first).
BACKSTOP_GRACE_S = 5


def rlimits(limits: RunLimits) -> dict[str, list[int]]:
    """The rlimits (soft, hard) of a run with ``limits``."""
    cpu = math.ceil(limits.cpu_time_s + limits.cpu_extra_time_s)
    return {
        "CPU": [cpu, cpu + 1],
        "STACK": [limits.stack_bytes, limits.stack_bytes],
        "FSIZE": [limits.file_size_bytes, limits.file_size_bytes],
        "NOFILE": [limits.open_files, limits.open_files],
        "CORE": [0, 0],
    }


def encode_request(spec: RunSpec, *, compiled_supervisor: bool) -> bytes:
    """``spec`` as the request of the compiled supervisor, or of the Python one."""
    limits = rlimits(spec.limits)
    backstop = math.ceil(spec.limits.wall_time_s) + BACKSTOP_GRACE_S
    if compiled_supervisor:
        return compiled.encode_request(
            spec.argv, spec.env, spec.stdin_file, spec.merge_stderr, limits, backstop
        )
    request = {
        "argv": list(spec.argv),
        "env": dict(spec.env),
        "stdin": spec.stdin_file,
        "merge_stderr": spec.merge_stderr,
        "rlimits": limits,
        "deadline": backstop,
    }
    return marshal.dumps(request)
