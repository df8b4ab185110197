"""The freeze, SIGKILL, thaw loop that empties a group without racing forks."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable

from hpcbox.core.errors import PermanentError

__all__ = ["KILL_TIMEOUT_S", "kill_loop"]

#: How long a group may take to empty before we give up.
KILL_TIMEOUT_S = 10.0


def kill_loop(
    *,
    describe: str,
    pids: Callable[[], set[int]],
    freeze: Callable[[], object],
    thaw: Callable[[], object],
    kill: Callable[[int, int], None],
    sleep: Callable[[float], None],
    timeout: float = KILL_TIMEOUT_S,
) -> None:
    """SIGKILL everything ``pids()`` lists until it lists nothing.

    The group is frozen while its members are listed and signalled, so that a
    process cannot fork a child we have not seen yet; SIGKILL is delivered when
    the group is thawed. Repeated until empty because killed processes leave
    the group asynchronously.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if not pids():
            return
        freeze()
        try:
            for pid in pids():
                with contextlib.suppress(ProcessLookupError):
                    kill(pid, signal.SIGKILL)
        finally:
            thaw()
        if not pids():
            return
        if time.monotonic() > deadline:
            raise PermanentError(f"processes of {describe} survive SIGKILL: {sorted(pids())}")
        sleep(delay)
        delay = min(delay * 2, 0.05)
