"""``hpcbox agent``: the background process that schedules jobs when no
long-running hpcbox process (``hpcbox serve``, a Python program) does.

The CLI starts one, detached (:func:`hpcbox.jobs.engine.spawn_agent`), after it
queues a job and finds the scheduler lock free. It holds the lock, steps every
backend, and exits once no job has been active for ``agent_idle_seconds``. Its
exit sequence (release the lock, then look for work once more) closes the race
with a submission that saw the lock held just before it was released.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from types import FrameType

from hpcbox.core.settings import Settings

__all__ = ["main", "run_agent"]

log = logging.getLogger("hpcbox.agent")


def run_agent(settings: Settings) -> int:
    """Schedule until idle; return the process exit code (0, or 0 when another
    scheduler already holds the lock)."""
    # Imported here, not for a cycle (the engine does not import this module) but for
    # start-up: with --detach, main() forks before the engine's imports, so the CLI
    # call that spawned the agent (and waits for that fork) returns at once.
    from hpcbox.jobs.engine import JobEngine

    engine = JobEngine(settings, scheduling="none")
    stop = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True
        engine.wake()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop:
            if not engine.lock.try_acquire():
                log.info("another scheduler holds %s; exiting", engine.lock.path)
                return 0
            log.info("agent %d scheduling for %s", os.getpid(), settings.home)
            idle_since: float | None = None
            while not stop:
                active = engine.scheduling_step()
                if active:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= settings.jobs.agent_idle_seconds:
                    break
                timeout = None
                if idle_since is not None:  # wake up when the idle time is over
                    left = idle_since + settings.jobs.agent_idle_seconds - time.monotonic()
                    timeout = max(left, 0.01)
                engine.scheduling_wait(timeout)
            engine.lock.release()
            if stop or not engine.has_local_work():
                break
        return 0
    finally:
        engine.close(handover=False)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if "--detach" in sys.argv[1:] and os.fork() > 0:
        os._exit(0)
    sys.exit(run_agent(Settings.from_env()))


if __name__ == "__main__":
    main()
