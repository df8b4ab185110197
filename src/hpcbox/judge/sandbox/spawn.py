"""Starting a sandbox's bubblewrap: the one way its process is spawned, and the one
thread it is spawned from.

bwrap runs with ``--die-with-parent``, whose signal follows the THREAD that forked
it, not the process: every sandbox (a box of its own, or a fork-server) is spawned
from one long-lived thread of its factory, so that a short-lived caller (a pool
refill, a request thread) exiting kills none.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import threading
from collections.abc import Sequence

__all__ = ["Spawner", "popen_sandbox"]


def popen_sandbox(
    argv: Sequence[str], *, stderr: int, pass_fds: Sequence[int]
) -> subprocess.Popen[bytes]:
    """Start a sandbox's command line ``argv`` (from :mod:`.argv`): no stdin or
    stdout, ``stderr`` as its stderr, exactly ``pass_fds`` inherited, in a session
    of its own, with an empty environment, in ``/``."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        pass_fds=tuple(pass_fds),
        close_fds=True,
        start_new_session=True,
        env={},
        cwd="/",
    )


class Spawner:
    """Spawns sandboxes from one long-lived thread (started on first use)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None

    def popen(
        self, argv: Sequence[str], *, stderr: int, pass_fds: Sequence[int]
    ) -> subprocess.Popen[bytes]:
        """:func:`popen_sandbox`, run on the spawning thread."""
        with self._lock:
            if self._thread is None:
                self._thread = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="hpcbox-box-spawner"
                )
            thread = self._thread
        return thread.submit(popen_sandbox, argv, stderr=stderr, pass_fds=pass_fds).result()

    def close(self) -> None:
        """Stop the spawning thread: its exit kills (die-with-parent) every sandbox
        it started that is still alive. A later :meth:`popen` starts a new one."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=True)
