"""The runs this process launched itself, so that it can reap them.

Only the parent can collect a child's exit status, and a ``Popen`` object that
is garbage-collected while its child runs warns and hands the child to
``subprocess``'s own reaper. So every launched trampoline's ``Popen`` stays
here until its run's outcome has been collected. Entries are keyed by pid and
checked against the start time, because once reaped the pid may be recycled.
"""

from __future__ import annotations

import subprocess
import threading

__all__ = ["forget", "lookup", "register"]

_lock = threading.Lock()
_children: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}


def register(proc: subprocess.Popen[bytes], start_ticks: int) -> None:
    """Remember ``proc`` (started at ``start_ticks``) until :func:`forget`."""
    with _lock:
        _children[proc.pid] = (start_ticks, proc)


def lookup(pid: int, start_ticks: int) -> subprocess.Popen[bytes] | None:
    """The ``Popen`` of the process ``pid`` started at ``start_ticks``, if we launched it."""
    with _lock:
        entry = _children.get(pid)
    if entry is None or entry[0] != start_ticks:
        return None
    return entry[1]


def forget(pid: int, start_ticks: int) -> None:
    """Drop the entry of that process (no-op if unknown)."""
    with _lock:
        entry = _children.get(pid)
        if entry is not None and entry[0] == start_ticks:
            del _children[pid]
