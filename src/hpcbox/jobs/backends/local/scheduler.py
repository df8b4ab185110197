"""The local scheduler: a one-node SLURM for the local backend.

Exactly one process runs it per state store (see :mod:`hpcbox.jobs.lock`): the
``hpcbox serve`` process, a Python program using the engine, or a background
``hpcbox agent`` that the CLI starts when nobody else is scheduling. Each step
it (1) collects finished jobs and enforces time limits, (2) kills jobs that were
cancelled from another process, and (3) starts queued jobs that fit in the free
CPUs and memory, strictly first in, first out.

Between steps it sleeps on the jobs' pidfds, a wake-up pipe and the wake-up FIFO
(:mod:`hpcbox.jobs.wake`), so an exit, or a submission, cancel or rerun in this
process or another, is acted on at once; it also steps every ``poll_interval``,
a safety net for a wake-up lost between two lock holders.

Restart safety: jobs run detached from the scheduler. A new scheduler re-attaches
to RUNNING jobs from their stored handles (an attempt whose process is gone is
FAILED with a reason that says so). An attempt that was being launched when the
previous scheduler died is never launched again if it may have started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpcbox.core.errors import HpcboxError
from hpcbox.jobs.backend import Finished
from hpcbox.jobs.backends.local.backend import LocalBackend, machine_capacity
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.queue import plan_queue
from hpcbox.jobs.model.states import JobState
from hpcbox.jobs.store import JobStore, utcnow
from hpcbox.jobs.wake import WakeListener

__all__ = ["LocalScheduler"]

log = logging.getLogger(__name__)

_Key = tuple[int, int]


@dataclass
class _Running:
    job: Job
    handle: dict[str, Any]
    deadline: float | None
    pidfd: int | None = None
    timed_out: bool = False


@dataclass
class LocalScheduler:
    """Schedules the local backend's jobs; call :meth:`step` or :meth:`serve`."""

    store: JobStore
    backend: LocalBackend
    poll_interval: float = 2.0
    #: The wake-up FIFO to listen on (None: wake-ups from this process only, and
    #: other processes' changes seen at the next poll).
    wake_path: Path | None = None
    _running: dict[_Key, _Running] = field(default_factory=dict)
    _reasons: dict[_Key, str] = field(default_factory=dict)
    _wake_r: int = -1
    _wake_w: int = -1
    _recovered: bool = False
    _listener: WakeListener | None = None
    _launcher: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="hpcbox-launch")
    )

    def __post_init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.wake_path is not None:
            try:
                self._listener = WakeListener(self.wake_path)
            except (OSError, HpcboxError) as exc:
                log.warning(
                    "other processes' jobs will be seen every %.0f s only: %s",
                    self.poll_interval,
                    exc,
                )

    def close(self) -> None:
        self._launcher.shutdown(wait=True)
        for entry in self._running.values():
            if entry.pidfd is not None:
                os.close(entry.pidfd)
        self._running.clear()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def wake(self) -> None:
        """Make a sleeping :meth:`wait` return now (thread-safe)."""
        # A full pipe means a wake-up is pending anyway; a closed one, that we stopped.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- one step -----------------------------------------------------------------

    def step(self) -> int:
        """Do one round of scheduling; return the number of active local jobs."""
        if not self._recovered:
            self._recover()
            self._recovered = True
        self._sync_running()
        self._collect()
        return self._schedule() + len(self._running)

    def _recover(self) -> None:
        """Settle attempts a previous scheduler left mid-launch."""
        for queued in self.store.queued(self.backend.name):
            job = self.store.get(queued.job_id)
            if self.backend.was_started(job):
                self.backend.abandon(job)
                self.store.transition(
                    job.id,
                    job.current.number,
                    JobState.FAILED,
                    native_state="FAILED",
                    reason="hpcbox stopped while starting this job; it may have begun, "
                    "so it was not started again (rerun it to try again)",
                    finished_at=utcnow(),
                )

    def _sync_running(self) -> None:
        """Pick up RUNNING jobs we do not track (after a restart) and drop the ones
        another process finished (cancelled), killing what is left of them."""
        seen = self.store.running_keys(self.backend.name)
        for key in seen - set(self._running):
            job = self.store.get(key[0])
            if job.current.number == key[1]:
                self._track(job, self.store.handle(*key) or {})
        for key in [k for k in self._running if k not in seen]:
            entry = self._running.pop(key)
            self._settle_elsewhere(entry)

    def _track(self, job: Job, handle: dict[str, Any], started_at: datetime | None = None) -> None:
        started = started_at or job.current.started_at
        limit = job.spec.resources.time_limit
        deadline = None
        if limit is not None:
            base = started.replace(tzinfo=UTC).timestamp() if started else time.time()
            deadline = base + limit
        pidfd: int | None = None
        try:
            pidfd = os.pidfd_open(int(handle["pid"]))
        except (KeyError, ValueError, OSError):
            pidfd = None  # gone already, or no pid: the next poll settles it
        self._running[(job.id, job.current.number)] = _Running(job, handle, deadline, pidfd)

    def _settle_elsewhere(self, entry: _Running) -> None:
        """The job left RUNNING in the store without us (a cancel from another
        process): make sure nothing of it survives and record its usage."""
        try:
            self.backend.kill(entry.handle)
            finished = self._poll_until_done(entry)
        except HpcboxError as exc:
            log.warning("cleaning up job %s: %s", entry.job.id, exc)
            finished = None
        if entry.pidfd is not None:
            os.close(entry.pidfd)
        if finished is not None:
            self._record_usage(entry.job.id, entry.job.current.number, finished)

    def _record_usage(self, job_id: int, attempt: int, finished: Finished) -> None:
        """Keep the state another process set (CANCELLED), but record what the
        attempt used."""
        current = self.store.get(job_id).current
        if current.number == attempt:
            self.store.transition(
                job_id,
                attempt,
                current.state,
                only_from={current.state},
                cpu_time=finished.cpu_time,
                peak_memory=finished.peak_memory,
            )

    def _poll_until_done(self, entry: _Running, timeout: float = 5.0) -> Finished | None:
        deadline = time.monotonic() + timeout
        while True:
            finished = self.backend.poll(entry.job, entry.handle, timed_out=entry.timed_out)
            if finished is not None or time.monotonic() > deadline:
                return finished
            time.sleep(0.01)

    def _collect(self) -> None:
        now = time.time()
        for key, entry in list(self._running.items()):
            if entry.deadline is not None and now >= entry.deadline and not entry.timed_out:
                entry.timed_out = True
                self.backend.kill(entry.handle)
            try:
                finished = self.backend.poll(entry.job, entry.handle, timed_out=entry.timed_out)
            except HpcboxError as exc:
                log.error("polling job %s failed: %s", key[0], exc)
                continue
            if finished is None:
                continue
            del self._running[key]
            if entry.pidfd is not None:
                os.close(entry.pidfd)
            applied = self.store.transition(
                key[0],
                key[1],
                finished.state,
                only_from={JobState.RUNNING},
                native_state=finished.native_state,
                reason=finished.reason,
                exit_code=finished.exit_code,
                signal=finished.signal,
                cpu_time=finished.cpu_time,
                peak_memory=finished.peak_memory,
                finished_at=utcnow(),
            )
            if not applied:  # cancelled meanwhile
                self._record_usage(key[0], key[1], finished)

    def _schedule(self) -> int:
        queue = self.store.queued(self.backend.name)
        if not queue:
            self._reasons.clear()
            return 0
        cpus, memory = machine_capacity(self.backend.settings)
        used_cpus = sum(e.job.spec.resources.cpus for e in self._running.values())
        used_memory = sum(e.job.spec.resources.memory or 0 for e in self._running.values())
        plan = plan_queue(queue, free_cpus=cpus - used_cpus, free_memory=memory - used_memory)
        changed = {k: r for k, r in plan.waiting.items() if self._reasons.get(k) != r}
        if changed:
            self.store.pending_reasons(changed)
        self._reasons = dict(plan.waiting)
        jobs = [self.store.get(queued.job_id) for queued in plan.start]
        if len(jobs) > 1:
            # A launch mostly waits for the new process to enter its cgroup; start
            # several at once so those waits overlap.
            started = list(self._launcher.map(self._start, jobs))
        else:
            started = [self._start(job) for job in jobs]
        for item in started:
            if item is not None:
                self._track(*item)
        return len(plan.waiting)

    def _start(self, job: Job) -> tuple[Job, dict[str, Any], datetime] | None:
        """Launch one job; return what to track, or None when it did not start.
        Runs in launcher threads: touches the store and backend, not ``self``'s maps."""
        number = job.current.number
        if job.state is JobState.NEW:
            self.store.transition(job.id, number, JobState.PENDING, native_state="PENDING")
        try:
            # If we die during the launch, the next scheduler sees the backend's
            # traces (was_started) and will not start this attempt twice.
            launched = self.backend.launch(job)
        except (HpcboxError, OSError) as exc:
            self.store.transition(
                job.id,
                number,
                JobState.ERROR,
                native_state="ERROR",
                reason=f"could not start: {exc}",
                finished_at=utcnow(),
            )
            return None
        started_at = utcnow()
        started = self.store.transition(
            job.id,
            number,
            JobState.RUNNING,
            only_from={JobState.PENDING},
            native_state="RUNNING",
            reason="None",
            native_id=launched.native_id,
            run_dir=launched.run_dir,
            handle=launched.handle,
            started_at=started_at,
        )
        if not started:
            # Cancelled between our two writes: stop what we just started.
            self.backend.kill(launched.handle)
            self._poll_until_done(_Running(job, dict(launched.handle), None))
            return None
        return job, dict(launched.handle), started_at

    # -- sleeping -----------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until a job exits, a wake-up arrives, a deadline passes, or
        ``timeout`` or ``poll_interval`` (the shorter) elapses; True when a
        wake-up (from this process or, through the FIFO, another) ended the sleep."""
        limit = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        now = time.time()
        for entry in self._running.values():
            if entry.deadline is not None and not entry.timed_out:
                limit = min(limit, max(0.0, entry.deadline - now))
            if entry.pidfd is None:
                limit = min(limit, 0.05)  # no pidfd to wait on: poll briskly
        wakes = [self._wake_r] + ([self._listener.fd] if self._listener is not None else [])
        fds = wakes + [e.pidfd for e in self._running.values() if e.pidfd is not None]
        try:
            ready, _, _ = select.select(fds, [], [], limit)
        except (OSError, ValueError):
            time.sleep(min(limit, 0.05))
            return False
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
        if self._listener is not None and self._listener.fd in ready:
            self._listener.drain()
        return any(fd in ready for fd in wakes)

    def handles(self) -> Mapping[_Key, Mapping[str, Any]]:
        return {key: entry.handle for key, entry in self._running.items()}
