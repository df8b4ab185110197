"""The SLURM backend: jobs on SLURM clusters a user reaches over SSH (the targets).

What the engine sees of it (:class:`~hpcbox.jobs.backend.Backend`): jobs sent to
a registered target stay NEW until the scheduling process submits them; there,
:class:`~hpcbox.jobs.backends.slurm.watcher.RemoteJobs` submits and watches them
in a thread of the backend's own, because an unreachable target may take many
seconds to time out and must not hold up other backends' jobs. Cancel (``scancel``)
and logs (over SFTP) work from any process.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from hpcbox.core.errors import NotFoundError
from hpcbox.jobs.backend import Backend, BackendContext
from hpcbox.jobs.backends.slurm.watcher import BACKEND, RemoteJobs
from hpcbox.jobs.model.job import Job

if TYPE_CHECKING:
    from hpcbox.infra.transport.credentials import CredentialStore

__all__ = ["SlurmBackend"]

log = logging.getLogger(__name__)

#: How often the watcher polls the store while remote jobs are active (each
#: target is then polled at its own pace) and, as a safety net, while none are: a
#: remote job queued in this process or another wakes it at once.
_ACTIVE_POLL_S = 0.25
_IDLE_POLL_S = 2.0


class SlurmBackend(Backend):
    """Jobs on SLURM targets over SSH; :attr:`remote` does the work."""

    name = BACKEND

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        settings = context.settings
        self.remote = RemoteJobs(
            context.store,
            context.targets,
            rate_limit=settings.slurm.rate_limit,
            rate_burst=settings.slurm.rate_burst,
        )
        self._watcher: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    def target_for(self, target: str | None) -> str | None:
        if not target:
            return None
        try:
            return self.context.targets.get(target).name
        except NotFoundError:
            return None

    def cancel(self, job: Job) -> None:
        # scancel first: a failure (target unreachable: TransientError) leaves the
        # job as it was. A job not submitted yet has no SLURM id, and a submission
        # racing with the cancel is cancelled by the watcher.
        if job.current.native_id:
            self.remote.cancel(job)

    def read_log(
        self, job: Job, attempt: int, stream: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        return self.remote.read_log(job, attempt, stream, offset, limit)

    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        return self.remote.remote(job.target).log_path(job, attempt, stream)

    def unreachable(self, target: str) -> str | None:
        return self.remote.unreachable(target)

    def use_credentials(self, credentials: CredentialStore) -> None:
        self.remote.credentials = credentials

    # -- in the scheduling process ----------------------------------------------------

    def step(self) -> int:
        self._ensure_watcher()
        return self.remote.active()

    def wake(self) -> None:
        self._wake.set()

    def _ensure_watcher(self) -> None:
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._watcher = threading.Thread(
            target=self._watch, name="hpcbox-remote-watcher", daemon=True
        )
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.is_set() and self.context.scheduling():
            active = 1
            try:
                active = self.remote.step()
            except Exception:
                # Keep watching through a bad poll; it is logged, not lost.
                log.exception("remote watcher step failed")
            self._wake.wait(_ACTIVE_POLL_S if active else _IDLE_POLL_S)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        self.remote.close()
