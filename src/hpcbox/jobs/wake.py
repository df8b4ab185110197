"""The scheduler's wake-up FIFO: how another process tells the scheduler to look now.

The process holding the scheduler lock (``hpcbox serve``, a Python program, or an
``hpcbox agent``) listens on a named pipe, ``$HPCBOX_HOME/scheduler.wake``; a
process that queued, cancelled or reran a job while another holds the lock writes
one byte to it. So the scheduler need not poll the store often to see other
processes' work: it polls only as a safety net (a wake-up lost in a race between
two lock holders), every few seconds, and an idle ``hpcbox serve`` costs next to
no CPU.

The scheduling process sleeps in :class:`Waker`: on its own wake-up pipe (this
process's submissions, cancels and reruns), on the FIFO (other processes') and on
whatever the backends name (a local job's pidfd).

A FIFO and not a socket: it needs no server loop, opening it for writing with
``O_NONBLOCK`` fails at once (ENXIO) when nobody listens, and its bytes carry no
meaning, so a stray writer can only cause an extra scheduling step.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from hpcbox.core.errors import PermanentError

__all__ = ["WakeListener", "Waker", "poke"]

log = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _is_fifo(fd: int) -> bool:
    return stat.S_ISFIFO(os.fstat(fd).st_mode)


def poke(path: Path) -> bool:
    """Wake the scheduler listening on ``path``; True when one listens.

    Never blocks and never raises for a missing FIFO or no listener. Never follows
    a symlink, and writes to nothing but a FIFO.
    """
    try:
        fd = os.open(path, os.O_WRONLY | _OPEN_FLAGS)
    except OSError as exc:
        # ENOENT: never listened on; ENXIO: nobody listens now; ELOOP: a symlink.
        if exc.errno in (errno.ENOENT, errno.ENXIO, errno.ELOOP):
            return False
        raise
    try:
        if not _is_fifo(fd):
            return False
        # A full pipe (EAGAIN) holds unread wake-ups already: that is enough.
        with contextlib.suppress(BlockingIOError):
            os.write(fd, b"x")
        return True
    finally:
        os.close(fd)


class WakeListener:
    """The lock holder's end of the FIFO at ``path`` (created if missing, mode 0600).

    :attr:`fd` is readable when another process poked; :meth:`drain` empties it.
    Raises :class:`PermanentError` when ``path`` exists and is not a FIFO.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        self.fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
        if not _is_fifo(self.fd):
            os.close(self.fd)
            raise PermanentError(f"{path} is not a FIFO; remove it")
        # Our own writer keeps the FIFO open: without one, the read end reports
        # end-of-file (always readable) once the last poking process closes it.
        self._keep = os.open(path, os.O_WRONLY | _OPEN_FLAGS)

    def drain(self) -> None:
        """Read every pending wake-up."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass

    def close(self) -> None:
        for fd in (self.fd, self._keep):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fd = self._keep = -1


class Waker:
    """Where the scheduling process sleeps between steps, and how it is woken.

    ``path`` is the FIFO to listen on (None, or a FIFO that cannot be made: only
    wake-ups from this process, and other processes' changes seen at the next
    poll, every ``poll_interval`` seconds).
    """

    def __init__(self, path: Path | None, *, poll_interval: float) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._listener: WakeListener | None = None
        if path is not None:
            try:
                self._listener = WakeListener(path)
            except (OSError, PermanentError) as exc:
                log.warning(
                    "other processes' jobs will be seen every %.0f s only: %s", poll_interval, exc
                )

    def wake(self) -> None:
        """Make a sleeping :meth:`wait` return now (thread-safe)."""
        # A full pipe means a wake-up is pending anyway; a closed one, that we stopped.
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")

    def wait(self, fds: Sequence[int], timeout: float) -> bool:
        """Sleep until a wake-up arrives, one of ``fds`` is readable or ``timeout``
        passes; True when a wake-up (from this process or, through the FIFO,
        another) ended the sleep."""
        wakes = [self._r] + ([self._listener.fd] if self._listener is not None else [])
        try:
            ready, _, _ = select.select(wakes + list(fds), [], [], timeout)
        except (OSError, ValueError):
            time.sleep(min(timeout, 0.05))
            return False
        if self._r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._r, 4096):
                    pass
        if self._listener is not None and self._listener.fd in ready:
            self._listener.drain()
        return any(fd in ready for fd in wakes)

    def close(self) -> None:
        for fd in (self._r, self._w):
            if fd >= 0:
                os.close(fd)
        self._r = self._w = -1
        if self._listener is not None:
            self._listener.close()
            self._listener = None
