"""``JobEngine``: the one API behind the Python library, the CLI and the REST app.

It validates and stores jobs, hands them to their backend, and answers
questions about them. Who schedules local jobs is chosen by ``scheduling``:

``"thread"``
    a background thread in this process takes the scheduler lock whenever it is
    free and schedules (``hpcbox serve``, Python programs). On :meth:`close`, if
    jobs are still queued or running, an agent takes over.
``"agent"``
    one-shot callers (the CLI): after queueing work, start a detached
    ``hpcbox agent`` if no process holds the scheduler lock.
``"none"``
    schedule only when :meth:`scheduling_step` is called (the agent itself, tests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from typing import Literal

from hpcbox.core.errors import (
    InvalidInputError,
    NotFoundError,
    PermanentError,
)
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.backend import Backend
from hpcbox.jobs.backends.local.agent import spawn_agent
from hpcbox.jobs.backends.local.backend import LocalBackend
from hpcbox.jobs.backends.local.sandbox import Sandbox
from hpcbox.jobs.backends.local.scheduler import LocalScheduler
from hpcbox.jobs.backends.slurm.watcher import BACKEND as SLURM_BACKEND
from hpcbox.jobs.backends.slurm.watcher import RemoteJobs
from hpcbox.jobs.lock import SchedulerLock
from hpcbox.jobs.logs import LogChunk, read_chunk
from hpcbox.jobs.model.job import Job, StateEvent
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState
from hpcbox.jobs.store import JobStore, utcnow
from hpcbox.jobs.target_store import TargetStore
from hpcbox.jobs.targets import TargetService
from hpcbox.jobs.wake import poke

__all__ = ["JobEngine", "Scheduling"]

log = logging.getLogger(__name__)

Scheduling = Literal["thread", "agent", "none"]
_MAX_LOG_CHUNK = 8 * 1024 * 1024
#: How often the remote watcher polls the store while remote jobs are active (each
#: target is then polled at its own pace) and, as a safety net, while none are: a
#: remote job queued in this process or another wakes it at once.
_REMOTE_ACTIVE_POLL_S = 0.25
_REMOTE_IDLE_POLL_S = 2.0


class JobEngine:
    """Submit, watch, cancel and rerun jobs; read their output.

    Thread-safe. Every method raises only :class:`~hpcbox.core.errors.HpcboxError`
    subclasses for expected failures: :class:`InvalidInputError` for bad input,
    :class:`NotFoundError` for unknown ids, :class:`ConflictError` for an
    operation the job's state forbids.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        scheduling: Scheduling = "thread",
        store: JobStore | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = store or JobStore(open_engine(self.settings))
        self.local = LocalBackend(self.settings, sandbox=sandbox)
        self.targets = TargetService(TargetStore(self.store.engine))
        self.remote = RemoteJobs(
            self.store,
            TargetStore(self.store.engine),
            rate_limit=self.settings.slurm_rate_limit,
            rate_burst=self.settings.slurm_rate_burst,
        )
        self.backends: dict[str, Backend] = {"local": self.local}
        self.lock = SchedulerLock(self.settings.home / "scheduler.lock")
        #: The lock holder listens here for other processes' wake-ups (engine.wake).
        self.wake_path = self.settings.home / "scheduler.wake"
        self.scheduling = scheduling
        self.scheduler: LocalScheduler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._remote_wake = threading.Event()
        if scheduling == "thread":
            self._thread = threading.Thread(
                target=self._schedule_forever, name="hpcbox-scheduler", daemon=True
            )
            self._thread.start()

    # -- the public operations ------------------------------------------------------

    def submit(self, spec: JobSpec, *, target: str | None = None) -> Job:
        """Queue ``spec``; return the stored job (state PENDING for the local queue).

        Returns at once: the job runs in the background, scheduled by this
        process's thread or by an agent started for it.
        """
        if target not in (None, "", "local"):
            known = self.targets.get(target)  # NotFoundError for an unknown name
            job = self.store.create(spec, backend=SLURM_BACKEND, target=known.name)
            self._kick()
            return job
        self.local.validate(spec)
        job = self.store.create(spec, backend=self.local.name, target="local", queued=True)
        self._kick()
        return job

    def get(self, job_id: int) -> Job:
        return self.store.get(job_id)

    def list_jobs(
        self,
        *,
        states: Collection[JobState] | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[Job]:
        """A page of jobs, newest first; pass the last id as ``before`` for the next."""
        if not 1 <= limit <= 10_000:
            raise InvalidInputError("must be between 1 and 10000", field="limit")
        return self.store.list_jobs(states=states, limit=limit, before=before)

    def events(self, job_id: int) -> list[StateEvent]:
        return self.store.events(job_id)

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued or running job; cancelling a finished job changes nothing.

        Local jobs: the state becomes CANCELLED first, then the whole process tree
        is killed, so a racing scheduler can neither start it nor report another
        end. Jobs on a target: ``scancel`` first, so that a failure (target
        unreachable: TransientError) leaves the job as it was rather than marked
        CANCELLED while it still runs; a job not submitted yet has no SLURM id, and
        a submission racing with the cancel is cancelled by the watcher.
        """
        job = self.store.get(job_id)
        if job.terminal:
            return job
        number = job.current.number
        if job.backend == SLURM_BACKEND and job.current.native_id:
            self.remote.cancel(job)
        applied = self.store.transition(
            job_id,
            number,
            JobState.CANCELLED,
            only_from=ACTIVE_STATES,
            native_state="CANCELLED",
            reason="cancelled by user",
            finished_at=utcnow(),
        )
        if applied and job.backend != SLURM_BACKEND:
            # Read after the transition: the job may have started meanwhile.
            handle = self.store.handle(job_id, number)
            backend = self.local
            if handle and "pid" in handle:
                backend.kill(handle)
            else:
                # A scheduler may be launching it this instant; it will see the
                # cancel when it records the start, and kill it then.
                backend.abandon(job)
            self._kick()
        return self.store.get(job_id)

    def rerun(self, job_id: int, *, script: str | None = None, spec: JobSpec | None = None) -> Job:
        """Run a finished job again as a new attempt, optionally edited.

        ``script`` replaces only the script; ``spec`` replaces the whole spec (an
        edit may change resources too). Giving both is refused.
        Raises :class:`ConflictError` unless the job is in a terminal state.
        """
        if script is not None and spec is not None:
            raise InvalidInputError("give a new script or a new spec, not both", field="script")
        job = self.store.get(job_id)
        if spec is None:
            spec = job.spec if script is None else job.spec.with_script(script)
        remote = job.backend == SLURM_BACKEND
        if not remote:
            self.local.validate(spec)
        job = self.store.new_attempt(job_id, spec, queued=not remote)
        self._kick()
        return job

    def logs(
        self,
        job_id: int,
        *,
        stream: str = "stdout",
        offset: int = 0,
        limit: int = 1024 * 1024,
        attempt: int | None = None,
    ) -> LogChunk:
        """Bytes of the job's ``stdout`` or ``stderr`` from ``offset``; readable while
        the job runs. ``eof`` is set once the attempt is over and all is read."""
        if offset < 0:
            raise InvalidInputError("must be >= 0", field="offset")
        job = self.store.get(job_id)
        number = attempt or job.current.number
        chosen = next((a for a in job.attempts if a.number == number), None)
        if chosen is None:
            raise NotFoundError(f"job {job_id} has no attempt {number}")
        if stream not in ("stdout", "stderr"):
            raise InvalidInputError("stream must be 'stdout' or 'stderr'", field="stream")
        try:
            if job.backend == SLURM_BACKEND:
                data, size = self.remote.read_log(
                    job, number, stream, offset, min(limit, _MAX_LOG_CHUNK)
                )
            else:
                path = self.local.log_path(job, number, stream)
                data, size = read_chunk(path, offset, min(limit, _MAX_LOG_CHUNK))
        except OSError as exc:
            raise PermanentError(f"cannot read the {stream} of job {job_id}: {exc}") from exc
        next_offset = offset + len(data)
        finished = chosen.state not in ACTIVE_STATES
        return LogChunk(
            data=data, offset=offset, next_offset=next_offset, eof=finished and next_offset >= size
        )

    def wait(self, job_id: int, *, timeout: float | None = None, poll: float = 0.1) -> Job:
        """Block until the job's current attempt is terminal or ``timeout`` passes;
        return the job either way (check ``job.terminal``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_check = time.monotonic() + 2.0
        while True:
            job = self.store.get(job_id)
            if job.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                return job
            if time.monotonic() >= next_check:
                # A long wait outlives schedulers; keep one alive for this job.
                self.ensure_scheduled()
                next_check = time.monotonic() + 2.0
            time.sleep(
                poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            )

    # -- scheduling -----------------------------------------------------------------

    def has_local_work(self) -> bool:
        return bool(self.store.count(states=ACTIVE_STATES))

    def scheduling_step(self) -> int:
        """Run one scheduler step, local and remote (the caller must hold :attr:`lock`);
        return the number of active jobs."""
        if self.scheduler is None:
            self.scheduler = LocalScheduler(self.store, self.local, wake_path=self.wake_path)
        self._ensure_watcher()
        return self.scheduler.step() + self.remote.active()

    def _ensure_watcher(self) -> None:
        """Watch remote targets in a thread of their own: an unreachable target may
        take many seconds to time out, and must not hold up local jobs."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._watcher = threading.Thread(
            target=self._watch_remote, name="hpcbox-remote-watcher", daemon=True
        )
        self._watcher.start()

    def _watch_remote(self) -> None:
        while not self._stop.is_set() and self.lock.held:
            active = 1
            try:
                active = self.remote.step()
            except Exception:
                # Keep watching through a bad poll; it is logged, not lost.
                log.exception("remote watcher step failed")
            self._remote_wake.wait(_REMOTE_ACTIVE_POLL_S if active else _REMOTE_IDLE_POLL_S)
            self._remote_wake.clear()

    def scheduling_wait(self, timeout: float | None = None) -> None:
        if self.scheduler is None:
            time.sleep(timeout or 0.2)
            return
        if self.scheduler.wait(timeout):
            # Woken by a submission, cancel or rerun: it may be a remote job's.
            self._remote_wake.set()

    def _schedule_forever(self) -> None:
        while not self._stop.is_set():
            if not self.lock.try_acquire():
                self._stop.wait(0.5)
                continue
            try:
                self.scheduling_step()
                self.scheduling_wait()
            except Exception:
                # Keep scheduling through a bad step (a busy database, a vanished
                # file); the step is retried and the error is logged, not lost.
                log.exception("scheduler step failed")
                self._stop.wait(0.5)

    def ensure_scheduled(self) -> None:
        """In ``agent`` mode: start an agent if local jobs are active and no process
        schedules them (the previous scheduler died). Cheap when all is well."""
        if self.scheduling == "agent" and self.lock.is_free() and self.has_local_work():
            spawn_agent(self.settings)

    def _kick(self) -> None:
        if self.scheduler is not None and self.lock.held:
            self.scheduler.wake()
            self._remote_wake.set()
            return
        if self.scheduling == "agent" and self.lock.is_free():
            spawn_agent(self.settings)
            return
        # Another process schedules (or is about to): wake it now rather than
        # leave the change to its next safety-net poll.
        try:
            poke(self.wake_path)
        except OSError as exc:
            log.warning("could not wake the scheduler through %s: %s", self.wake_path, exc)

    def backend_names(self) -> Mapping[str, Backend]:
        return dict(self.backends)

    def close(self, *, handover: bool = True) -> None:
        """Stop this process's scheduling; with ``handover``, start an agent when
        jobs are still queued or running so that they are not orphaned."""
        self._stop.set()
        self._remote_wake.set()
        if self.scheduler is not None:
            self.scheduler.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        was_scheduling = self.lock.held
        self.lock.release()
        if handover and was_scheduling and self.has_local_work():
            spawn_agent(self.settings)
        self.remote.close()
        self.store.engine.dispose()

    def __enter__(self) -> JobEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
