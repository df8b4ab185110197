"""``JobEngine``: the one API behind the Python library, the CLI and the REST app.

It validates and stores jobs, hands them to their backend, and answers
questions about them. The backends are those installed under the
``hpcbox.backends`` entry point (:mod:`hpcbox.jobs.registry`); the engine routes a
job to the one that runs its target and never asks which kind it is (what differs
between backends is a method of :class:`~hpcbox.jobs.backend.Backend`).

One process at a time schedules (it holds the scheduler lock): it steps every
backend, then sleeps until a wake-up or a backend's job needs it. Which process
that is, is chosen by ``scheduling``:

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
import os
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Literal

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import (
    InvalidInputError,
    NotFoundError,
    PermanentError,
)
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.backend import Backend, BackendContext, BackendFactory
from hpcbox.jobs.lock import SchedulerLock
from hpcbox.jobs.logs import LogChunk
from hpcbox.jobs.model.job import Job, StateEvent
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState
from hpcbox.jobs.registry import GROUP, make_backends
from hpcbox.jobs.store import JobStore
from hpcbox.jobs.target_store import TargetStore
from hpcbox.jobs.targets import TargetService
from hpcbox.jobs.wake import Waker, poke

if TYPE_CHECKING:
    from hpcbox.infra.transport.credentials import CredentialStore

__all__ = ["JobEngine", "Scheduling", "spawn_agent"]

log = logging.getLogger(__name__)

Scheduling = Literal["thread", "agent", "none"]
_MAX_LOG_CHUNK = 8 * 1024 * 1024
#: The module ``hpcbox agent`` runs (named, not imported: it imports this one).
_AGENT_MODULE = "hpcbox.jobs.backends.local.agent"


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
        backends: Mapping[str, BackendFactory] | None = None,
    ) -> None:
        """``backends``: the backends to make, by name, instead of those installed
        under the ``hpcbox.backends`` entry point (tests, embedding)."""
        self.settings = settings or Settings.from_env()
        self.store = store or JobStore(open_engine(self.settings))
        self.targets = TargetService(TargetStore(self.store.engine))
        self.lock = SchedulerLock(self.settings.home / "scheduler.lock")
        context = BackendContext(
            settings=self.settings,
            store=self.store,
            targets=TargetStore(self.store.engine),
            scheduling=lambda: self.lock.held,
        )
        #: The backends by name, in the order they are asked which runs a target.
        self.backends: dict[str, Backend] = make_backends(context, backends)
        #: The lock holder listens here for other processes' wake-ups (engine.wake).
        self.wake_path = self.settings.home / "scheduler.wake"
        #: The scheduling process looks at the store at least this often (seconds),
        #: a safety net for a wake-up lost between two lock holders.
        self.poll_interval = 2.0
        self.scheduling = scheduling
        self._waker: Waker | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if scheduling == "thread":
            self._thread = threading.Thread(
                target=self._schedule_forever, name="hpcbox-scheduler", daemon=True
            )
            self._thread.start()

    # -- the public operations ------------------------------------------------------

    def submit(self, spec: JobSpec, *, target: str | None = None) -> Job:
        """Queue ``spec`` on the backend that runs ``target`` (None: this machine);
        return the stored job (PENDING at once where the backend queues at once, as
        the local one does; NEW until the backend has handed it on otherwise).

        Returns at once: the job runs in the background, scheduled by this
        process's thread or by an agent started for it. An unknown target raises
        :class:`NotFoundError`.
        """
        backend, where = self._route(target)
        backend.validate(spec)
        job = self.store.create(
            spec, backend=backend.name, target=where, queued=backend.queues_at_once
        )
        self._kick()
        return job

    def _route(self, target: str | None) -> tuple[Backend, str]:
        """The backend that runs jobs sent to ``target``, and the target to store."""
        for backend in self.backends.values():
            where = backend.target_for(target)
            if where is not None:
                return backend, where
        if not target:
            raise PermanentError(
                f"no job backend runs jobs on this machine (none installed under {GROUP})"
            )
        raise NotFoundError(f"no target named {target!r} (see `hpcbox target list`)")

    def backend(self, name: str) -> Backend:
        """The backend named ``name`` (a job's ``backend``); PermanentError when it is
        not installed."""
        found = self.backends.get(name)
        if found is None:
            raise PermanentError(
                f"job backend {name!r} is not installed (backends register under {GROUP})"
            )
        return found

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

        The backend stops the attempt where it runs first when that can fail
        (``scancel`` on an unreachable target: TransientError, and the job stays as
        it was rather than marked CANCELLED while it still runs); then the state
        becomes CANCELLED; then the backend stops what is left (a local job's
        process tree, killed after the mark so that a racing scheduler can neither
        start it nor report another end).
        """
        job = self.store.get(job_id)
        if job.terminal:
            return job
        number = job.current.number
        backend = self.backend(job.backend)
        backend.cancel(job)
        applied = self.store.transition(
            job_id,
            number,
            JobState.CANCELLED,
            only_from=ACTIVE_STATES,
            native_state="CANCELLED",
            reason="cancelled by user",
            finished_at=utcnow(),
        )
        if applied and backend.cancelled(job):
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
        backend = self.backend(job.backend)
        backend.validate(spec)
        job = self.store.new_attempt(job_id, spec, queued=backend.queues_at_once)
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
        backend = self.backend(job.backend)
        try:
            data, size = backend.read_log(job, number, stream, offset, min(limit, _MAX_LOG_CHUNK))
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
        """True when jobs of this process's backends are queued or running (a job of
        a backend not installed here is none of its business)."""
        return any(
            self.store.list_ids(states=ACTIVE_STATES, backend=name) for name in self.backends
        )

    def scheduling_step(self) -> int:
        """Step every backend once (the caller must hold :attr:`lock`); return the
        number of active jobs."""
        if self._waker is None:
            self._waker = Waker(self.wake_path, poll_interval=self.poll_interval)
        return sum(backend.step() for backend in self.backends.values())

    def scheduling_wait(self, timeout: float | None = None) -> None:
        """Sleep until a wake-up, a backend's job needs a step, ``timeout`` or
        :attr:`poll_interval` (the shorter)."""
        if self._waker is None:
            time.sleep(timeout or 0.2)
            return
        limit = self.poll_interval if timeout is None else min(timeout, self.poll_interval)
        fds: list[int] = []
        for backend in self.backends.values():
            wakeups = backend.wakeups()
            fds.extend(wakeups.fds)
            if wakeups.within is not None:
                limit = min(limit, wakeups.within)
        if self._waker.wait(fds, limit):
            # Woken by a submission, cancel or rerun: whichever backend it concerns.
            for backend in self.backends.values():
                backend.wake()

    def wake(self) -> None:
        """Make a sleeping :meth:`scheduling_wait` return now (thread- and signal-safe)."""
        if self._waker is not None:
            self._waker.wake()

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
        if self._waker is not None and self.lock.held:
            self._waker.wake()
            for backend in self.backends.values():
                backend.wake()
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

    def use_credentials(self, credentials: CredentialStore) -> None:
        """Hand every backend credentials held in memory only, by target name (the
        operator's, from Kubernetes Secrets); consulted at each connection."""
        for backend in self.backends.values():
            backend.use_credentials(credentials)

    def close(self, *, handover: bool = True) -> None:
        """Stop this process's scheduling; with ``handover``, start an agent when
        jobs are still queued or running so that they are not orphaned."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Before the lock goes: no backend may still be at work when another
        # process takes over.
        for backend in self.backends.values():
            backend.close()
        if self._waker is not None:
            self._waker.close()
            self._waker = None
        was_scheduling = self.lock.held
        self.lock.release()
        if handover and was_scheduling and self.has_local_work():
            spawn_agent(self.settings)
        self.store.engine.dispose()

    def __enter__(self) -> JobEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def spawn_agent(settings: Settings) -> None:
    """Start a detached ``hpcbox agent`` for ``settings``' store and return at once.

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
            [sys.executable, "-m", _AGENT_MODULE, "--detach"],
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
