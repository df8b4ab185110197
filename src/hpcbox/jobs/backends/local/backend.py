"""The local backend: jobs run on this machine, queued like a one-node SLURM.

What the engine sees of it (:class:`~hpcbox.jobs.backend.Backend`): jobs sent to
no target (or ``local``) are validated against the machine and queued at once;
the scheduling process runs the queue (:mod:`.scheduler`), which starts, polls
and kills attempts through the launcher (:mod:`.launcher`) and sleeps on their
pidfds.
"""

from __future__ import annotations

from hpcbox.jobs.backend import Backend, BackendContext, Wakeups
from hpcbox.jobs.backends.local.launcher import LocalLauncher
from hpcbox.jobs.backends.local.sandbox import Sandbox
from hpcbox.jobs.backends.local.scheduler import LocalScheduler
from hpcbox.jobs.logs import read_chunk
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec

__all__ = ["LocalBackend"]

#: What a job submitted with no target runs on.
_THIS_MACHINE = (None, "", "local")


class LocalBackend(Backend):
    """Jobs on this machine, in the sandbox's "job" profile, through the local queue."""

    name = "local"
    queues_at_once = True

    def __init__(self, context: BackendContext, *, sandbox: Sandbox | None = None) -> None:
        super().__init__(context)
        self.launcher = LocalLauncher(context.settings, sandbox=sandbox)
        #: Made at the first step, in the scheduling process only.
        self.scheduler: LocalScheduler | None = None

    def target_for(self, target: str | None) -> str | None:
        return "local" if target in _THIS_MACHINE else None

    def validate(self, spec: JobSpec) -> None:
        self.launcher.validate(spec)

    def cancelled(self, job: Job) -> bool:
        # Read after the CANCELLED mark: the job may have started meanwhile.
        handle = self.context.store.handle(job.id, job.current.number)
        if handle and "pid" in handle:
            self.launcher.kill(handle)
        else:
            # A scheduler may be launching it this instant; it will see the
            # cancel when it records the start, and kill it then.
            self.launcher.abandon(job)
        return True

    def read_log(
        self, job: Job, attempt: int, stream: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        return read_chunk(self.launcher.log_path(job, attempt, stream), offset, limit)

    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        return self.launcher.log_path(job, attempt, stream)

    def step(self) -> int:
        if self.scheduler is None:
            self.scheduler = LocalScheduler(self.context.store, self.launcher)
        return self.scheduler.step()

    def wakeups(self) -> Wakeups:
        return Wakeups() if self.scheduler is None else self.scheduler.wakeups()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
