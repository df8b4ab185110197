"""The lock a process holds on a cluster while it brings the cluster up or scales it.

A lock file per cluster under ``$HPCBOX_HOME/clusters/.locks/``, taken with
``flock``: the kernel drops it when its process ends, however it ends, so a
cluster left CREATING by a process that is gone (killed, machine restarted) is
told from one still coming up. The lock is per machine: bring a cluster up from
one machine at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from hpcbox.core.errors import ConflictError

__all__ = ["cluster_lock"]


@contextlib.contextmanager
def cluster_lock(home: Path, name: str) -> Iterator[None]:
    """Held while this process brings cluster ``name`` up or scales it.

    ConflictError (naming the holder's pid) when another process holds it.
    """
    path = home / "clusters" / ".locks" / f"{name}.lock"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise ConflictError(
                f"cluster {name!r} is being brought up or scaled by another hpcbox "
                f"process{pid}; wait for it, or stop it and run the command again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
