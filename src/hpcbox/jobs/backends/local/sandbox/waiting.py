"""Waiting for a child process with a timeout, without sleep-polling."""

from __future__ import annotations

import math
import os
import select
import subprocess
import time

__all__ = ["wait_for_exit"]


def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float | None) -> bool:
    """Wait until ``proc`` exits and reap it; False if ``timeout`` seconds pass first.

    With a timeout, waits on a pidfd (Linux 5.3+), which becomes readable the
    moment the process exits; ``Popen.wait(timeout)`` would instead poll with
    sleeps of up to 50 ms.
    """
    if timeout is None:
        proc.wait()
        return True
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        # Exited and reaped between poll() and here (by another thread).
        proc.wait()
        return True
    except OSError:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return proc.poll() is not None
            if poller.poll(math.ceil(remaining * 1000)):
                break
    finally:
        os.close(pidfd)
    proc.wait()
    return True
