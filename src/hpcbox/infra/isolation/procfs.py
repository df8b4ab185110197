"""Process identity from ``/proc``: is this pid still the process we started?"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProcStat", "is_running", "parse_proc_stat", "read_proc_stat"]


@dataclass(frozen=True)
class ProcStat:
    """The two fields of ``/proc/<pid>/stat`` that identify a live process."""

    state: str
    """One-letter state; ``Z`` (zombie) and ``X`` (dead) mean it has exited."""
    start_ticks: int
    """Field 22: start time in clock ticks after boot; unique per pid over a boot."""


def parse_proc_stat(text: str) -> ProcStat:
    """Parse the text of ``/proc/<pid>/stat``; raise ValueError if malformed.

    The command name (field 2) may contain spaces and parentheses, so fields are
    counted from the last ``)``.
    """
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); field 22 is therefore rest[19].
    return ProcStat(state=rest[0], start_ticks=int(rest[19]))


def read_proc_stat(pid: int, *, proc_root: str = "/proc") -> ProcStat | None:
    """Return the stat of ``pid``, or None when no such process exists."""
    try:
        with open(f"{proc_root}/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return parse_proc_stat(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_running(pid: int, start_ticks: int, *, proc_root: str = "/proc") -> bool:
    """True while ``pid`` is the process that started at ``start_ticks`` and has not exited."""
    st = read_proc_stat(pid, proc_root=proc_root)
    return st is not None and st.start_ticks == start_ticks and st.state not in ("Z", "X")
