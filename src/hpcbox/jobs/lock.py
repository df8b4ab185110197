"""The scheduler lock: at most one process schedules local jobs per state store.

An ``flock`` on ``$HPCBOX_HOME/scheduler.lock``. The kernel drops it when its
holder dies, even by SIGKILL, so a crashed scheduler never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["SchedulerLock"]


class SchedulerLock:
    """A non-blocking, process-death-safe exclusive lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if free; True when this object now holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def is_free(self) -> bool:
        """True when nobody holds the lock right now (a hint: it may change at once)."""
        if self._fd is not None:
            return False
        if self.try_acquire():
            self.release()
            return True
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
