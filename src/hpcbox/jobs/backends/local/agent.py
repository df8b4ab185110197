"""``hpcbox agent``: the background process that schedules local jobs when no
long-running hpcbox process (``hpcbox serve``, a Python program) does.

The CLI starts one, detached, after it queues a job and finds the scheduler lock
free. It holds the lock, runs the scheduler, and exits once no local job has
been active for ``agent_idle_seconds``. Its exit sequence (release the lock, then
look for work once more) closes the race with a submission that saw the lock
held just before it was released.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from hpcbox.core.settings import Settings

__all__ = ["main", "run_agent", "spawn_agent"]

log = logging.getLogger("hpcbox.agent")


def spawn_agent(settings: Settings) -> None:
    """Start a detached agent for ``settings``' store and return at once.

    Double-forked (through ``--detach``) so that it is never a zombie child of a
    long-running caller, and in its own session so that a terminal's Ctrl-C or
    hang-up does not reach it.
    """
    env = dict(os.environ)
    env.update(settings.to_env())
    settings.home.mkdir(parents=True, exist_ok=True)
    log_path = settings.home / "agent.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "hpcbox.jobs.backends.local.agent", "--detach"],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            env=env,
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
    finally:
        os.close(fd)
    child.wait()


def run_agent(settings: Settings) -> int:
    """Schedule until idle; return the process exit code (0, or 0 when another
    scheduler already holds the lock)."""
    from hpcbox.jobs.engine import JobEngine

    engine = JobEngine(settings, scheduling="none")
    stop = False

    def _stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True
        if engine.scheduler is not None:
            engine.scheduler.wake()

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
                elif time.monotonic() - idle_since >= settings.agent_idle_seconds:
                    break
                timeout = None
                if idle_since is not None:  # wake up when the idle time is over
                    left = idle_since + settings.agent_idle_seconds - time.monotonic()
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
