"""How a run ended -> verdict (pure)."""

from __future__ import annotations

import signal

from hpcbox.judge.model import Limits, Verdict
from hpcbox.judge.sandbox.spec import RunLimits, RunResult

__all__ = ["run_limits", "run_verdict"]


def run_limits(limits: Limits) -> RunLimits:
    """The sandbox limits of a submission's run."""
    return RunLimits(
        cpu_time_s=limits.cpu_time_s,
        cpu_extra_time_s=limits.cpu_extra_time_s,
        wall_time_s=limits.wall_time_s,
        memory_bytes=limits.memory_bytes,
        processes=limits.processes,
        stack_bytes=limits.stack_bytes,
        file_size_bytes=limits.file_size_bytes,
        output_bytes=limits.output_bytes,
    )


def run_verdict(result: RunResult, limits: Limits) -> tuple[Verdict, str] | None:
    """The verdict a run's ending imposes, with a message; None when it ended
    normally (exit code 0, within limits) and its output decides.

    Order: output limit, time (CPU over ``cpu_time_s``, CPU kill, SIGXCPU, wall
    clock), memory (OOM kill or a peak over the limit), then runtime errors
    (no usable result from the sandbox, could not start, killed by a signal,
    non-zero exit code).
    """
    if result.output_exceeded:
        return Verdict.OUTPUT_LIMIT_EXCEEDED, f"output over {limits.output_bytes} bytes"
    if (
        result.cpu_exceeded
        or result.cpu_time_s > limits.cpu_time_s
        or result.signal == signal.SIGXCPU
    ):
        return Verdict.TIME_LIMIT_EXCEEDED, f"CPU time over {limits.cpu_time_s:g} s"
    if result.wall_exceeded:
        return Verdict.TIME_LIMIT_EXCEEDED, f"wall time over {limits.wall_time_s:g} s"
    if result.oom_killed or result.peak_memory_bytes > limits.memory_bytes:
        return Verdict.MEMORY_LIMIT_EXCEEDED, f"memory over {limits.memory_bytes} bytes"
    if result.report_error:
        return Verdict.RUNTIME_ERROR, f"no usable result from the sandbox: {result.report_error}"
    if result.exec_error:
        return Verdict.RUNTIME_ERROR, f"cannot start: {result.exec_error}"
    if result.signal is not None:
        name = _signal_name(result.signal)
        return Verdict.RUNTIME_ERROR, f"killed by signal {result.signal} ({name})"
    if result.exit_code not in (0, None):
        return Verdict.RUNTIME_ERROR, f"exit code {result.exit_code}"
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"
