"""Values of one untrusted run: what to run, its limits, and what happened."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RunLimits", "RunResult", "RunSpec"]


@dataclass(frozen=True)
class RunLimits:
    """Limits of one run in a box (a test's, from its submission's
    :class:`~hpcbox.judge.model.Limits`, or a compilation's), enforced as noted per
    field; the box's cgroup gets its part as a
    :class:`~hpcbox.infra.isolation.limits.ResourceLimits`.

    ``cpu_time_s`` + ``cpu_extra_time_s``: RLIMIT_CPU per process and the run's
    cgroup CPU time (polled), whichever trips first; ``wall_time_s``: killed by the
    host; ``memory_bytes``: cgroup memory, swap included; ``processes``: cgroup
    pids (processes and threads); ``stack_bytes``, ``file_size_bytes``,
    ``open_files``: rlimits; ``output_bytes``: each of stdout and stderr, cut and
    killed beyond it.
    """

    cpu_time_s: float = 5.0
    cpu_extra_time_s: float = 1.0
    wall_time_s: float = 10.0
    memory_bytes: int = 128 * 1024 * 1024
    processes: int = 60
    stack_bytes: int = 64 * 1024 * 1024
    file_size_bytes: int = 1024 * 1024
    open_files: int = 512
    output_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class RunSpec:
    """A command to run in ``/box`` with exactly ``env``.

    ``stdin_file`` names a file in ``/box`` (written beforehand with
    :meth:`WarmBox.write_file`) that becomes stdin; None gives ``/dev/null``.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    limits: RunLimits = RunLimits()
    stdin_file: str | None = None
    merge_stderr: bool = False


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run.

    ``exit_code`` is set when the program exited, ``signal`` when a signal killed it
    (SIGKILL also when hpcbox killed it for a limit). ``exec_error`` is set when the
    command could not be started at all (e.g. missing binary). ``report_error``
    is set when the box's supervisor gave no usable result line (too long, not
    JSON, wrong fields: only a program that tampered with it can cause that), so
    how the program ended is unknown. CPU time and peak memory come from the run's
    cgroup, minus what the idle sandbox itself used; wall time is the host's clock
    from the request to the end of the run.
    """

    exit_code: int | None
    signal: int | None
    cpu_time_s: float
    wall_time_s: float
    peak_memory_bytes: int
    stdout: bytes
    stderr: bytes
    oom_killed: bool = False
    cpu_exceeded: bool = False
    wall_exceeded: bool = False
    output_exceeded: bool = False
    exec_error: str | None = None
    report_error: str | None = None
