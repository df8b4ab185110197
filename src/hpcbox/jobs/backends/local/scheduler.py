"""The local scheduler: a one-node SLURM for the local backend.

Exactly one process runs it per state store (see :mod:`hpcbox.jobs.lock`): the
``hpcbox serve`` process, a Python program using the engine, or a background
``hpcbox agent`` that the CLI starts when nobody else is scheduling. Each step
it (1) collects finished jobs and enforces time limits, (2) kills jobs that were
cancelled from another process, and (3) starts queued jobs that fit in the free
CPUs and memory, strictly first in, first out.

Between steps the scheduling process sleeps on the jobs' pidfds (which
:meth:`LocalScheduler.wakeups` names, with the next time limit due) beside its
wake-ups (:mod:`hpcbox.jobs.wake`), so an exit, or a submission, cancel or rerun in
this process or another, is acted on at once.

Restart safety: jobs run detached from the scheduler. A new scheduler re-attaches
to RUNNING jobs from their stored handles (an attempt whose process is gone is
FAILED with a reason that says so). An attempt that was being launched when the
previous scheduler died is never launched again if it may have started.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import HpcboxError
from hpcbox.jobs.backend import Wakeups
from hpcbox.jobs.backends.local.launcher import Finished, LocalLauncher, machine_capacity
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.queue import plan_queue
from hpcbox.jobs.model.states import JobState
from hpcbox.jobs.store import JobStore

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
    """Schedules the local backend's jobs: call :meth:`step`, then sleep on :meth:`wakeups`."""

    store: JobStore
    launcher: LocalLauncher
    _running: dict[_Key, _Running] = field(default_factory=dict)
    _reasons: dict[_Key, str] = field(default_factory=dict)
    _recovered: bool = False
    _launch_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="hpcbox-launch")
    )

    def close(self) -> None:
        self._launch_pool.shutdown(wait=True)
        for entry in self._running.values():
            if entry.pidfd is not None:
                os.close(entry.pidfd)
        self._running.clear()

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
        for queued in self.store.queued(self.launcher.name):
            job = self.store.get(queued.job_id)
            if self.launcher.was_started(job):
                self.launcher.abandon(job)
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
        seen = self.store.running_keys(self.launcher.name)
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
            self.launcher.kill(entry.handle)
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
            finished = self.launcher.poll(entry.job, entry.handle, timed_out=entry.timed_out)
            if finished is not None or time.monotonic() > deadline:
                return finished
            time.sleep(0.01)

    def _collect(self) -> None:
        now = time.time()
        for key, entry in list(self._running.items()):
            if entry.deadline is not None and now >= entry.deadline and not entry.timed_out:
                entry.timed_out = True
                self.launcher.kill(entry.handle)
            try:
                finished = self.launcher.poll(entry.job, entry.handle, timed_out=entry.timed_out)
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
        queue = self.store.queued(self.launcher.name)
        if not queue:
            self._reasons.clear()
            return 0
        cpus, memory = machine_capacity(self.launcher.settings)
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
            started = list(self._launch_pool.map(self._start, jobs))
        else:
            started = [self._start(job) for job in jobs]
        for item in started:
            if item is not None:
                self._track(*item)
        return len(plan.waiting)

    def _start(self, job: Job) -> tuple[Job, dict[str, Any], datetime] | None:
        """Launch one job; return what to track, or None when it did not start.
        Runs in the launch pool's threads: touches the store and launcher, not ``self``'s maps."""
        number = job.current.number
        if job.state is JobState.NEW:
            self.store.transition(job.id, number, JobState.PENDING, native_state="PENDING")
        try:
            # If we die during the launch, the next scheduler sees the launcher's
            # traces (was_started) and will not start this attempt twice.
            launched = self.launcher.launch(job)
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
            self.launcher.kill(launched.handle)
            self._poll_until_done(_Running(job, dict(launched.handle), None))
            return None
        return job, dict(launched.handle), started_at

    # -- sleeping -----------------------------------------------------------------

    def wakeups(self) -> Wakeups:
        """The running jobs' pidfds, and how long until the next time limit falls due
        (a job without a pidfd is polled briskly instead)."""
        now = time.time()
        within: float | None = None
        fds: list[int] = []
        for entry in self._running.values():
            if entry.deadline is not None and not entry.timed_out:
                within = _earliest(within, max(0.0, entry.deadline - now))
            if entry.pidfd is None:
                within = _earliest(within, 0.05)  # no pidfd to wait on: poll briskly
            else:
                fds.append(entry.pidfd)
        return Wakeups(fds=tuple(fds), within=within)

    def handles(self) -> Mapping[_Key, Mapping[str, Any]]:
        return {key: entry.handle for key, entry in self._running.items()}


def _earliest(current: float | None, candidate: float) -> float:
    return candidate if current is None else min(current, candidate)
