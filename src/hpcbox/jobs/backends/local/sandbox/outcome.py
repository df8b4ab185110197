"""The result of a finished run, :class:`RunOutcome`, and how it is derived.

The exit status reaches us only through bwrap, which folds "killed by signal
S" into exit code ``128 + S``. So an exit code in 129..192 is reported as a
signal: that is right for every command that does not itself exit with such
a code (shells that propagate a child's death by signal do the same).
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass

from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.backends.local.sandbox.status import BwrapStatus

__all__ = ["Evidence", "RunOutcome", "decide_outcome", "split_exit_code"]

# Linux signal numbers run from 1 to SIGRTMAX (64).
_MAX_SIGNAL = 64


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended.

    Exactly one of ``exit_code`` and ``signal`` is set, unless ``lost`` is True:
    then the run vanished without reporting (host reboot, sandbox killed from
    outside before it could report) and both are None. ``cpu_time_s`` and
    ``peak_memory_bytes`` cover the whole process tree; they are 0 when the
    cgroup was gone before the results were collected.
    """

    exit_code: int | None
    signal: int | None
    cpu_time_s: float
    peak_memory_bytes: int
    oom_killed: bool
    wall_time_s: float
    lost: bool = False

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-compatible dict; :meth:`from_dict` inverts it exactly."""
        return {
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cpu_time_s": self.cpu_time_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "oom_killed": self.oom_killed,
            "wall_time_s": self.wall_time_s,
            "lost": self.lost,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> RunOutcome:
        """Rebuild an outcome; raise InvalidInputError on missing or mistyped fields."""
        try:
            return cls(
                exit_code=_opt_int(d["exit_code"], "exit_code"),
                signal=_opt_int(d["signal"], "signal"),
                cpu_time_s=_number(d["cpu_time_s"], "cpu_time_s"),
                peak_memory_bytes=_int(d["peak_memory_bytes"], "peak_memory_bytes"),
                oom_killed=_bool(d["oom_killed"], "oom_killed"),
                wall_time_s=_number(d["wall_time_s"], "wall_time_s"),
                lost=_bool(d.get("lost", False), "lost"),
            )
        except KeyError as exc:
            raise InvalidInputError(f"run outcome lacks field {exc.args[0]!r}") from exc


@dataclass(frozen=True)
class Evidence:
    """Everything known about a finished run, gathered by the sandbox."""

    status: BwrapStatus | None
    killed: bool
    """True when :meth:`Sandbox.kill` was called on the run."""
    started_at: float
    ended_at: float
    cpu_time_s: float = 0.0
    peak_memory_bytes: int = 0
    oom_killed: bool = False


def split_exit_code(code: int) -> tuple[int | None, int | None]:
    """Map bwrap's exit code to ``(exit_code, signal)``: 128+S means signal S."""
    if 128 < code <= 128 + _MAX_SIGNAL:
        return None, code - 128
    return code, None


def decide_outcome(ev: Evidence) -> RunOutcome:
    """Turn evidence into an outcome; the rules, in order:

    1. the command reported an exit code: use it (see :func:`split_exit_code`);
    2. we killed the run: SIGKILL;
    3. bwrap exited by itself with a code below 128 without the command
       reporting: a setup failure (bad workdir, command not found), reported
       as that exit code; bwrap's message is in the run's stderr;
    4. otherwise the run is lost.
    """
    exit_code: int | None = None
    sig: int | None = None
    lost = False
    status = ev.status or BwrapStatus()
    if status.exit_code is not None:
        exit_code, sig = split_exit_code(status.exit_code)
    elif ev.killed:
        sig = int(_signal.SIGKILL)
    elif status.bwrap_exit_code is not None and 0 < status.bwrap_exit_code < 128:
        exit_code = status.bwrap_exit_code
    else:
        lost = True
    return RunOutcome(
        exit_code=exit_code,
        signal=sig,
        cpu_time_s=ev.cpu_time_s,
        peak_memory_bytes=ev.peak_memory_bytes,
        oom_killed=ev.oom_killed,
        wall_time_s=max(0.0, ev.ended_at - ev.started_at),
        lost=lost,
    )


def _opt_int(value: object, field: str) -> int | None:
    return None if value is None else _int(value, field)


def _int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"must be an integer, got {value!r}", field=field)
    return value


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"must be a number, got {value!r}", field=field)
    return float(value)


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"must be a boolean, got {value!r}", field=field)
    return value
