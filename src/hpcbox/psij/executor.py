"""``HpcboxJobExecutor``: a PSI/J executor that submits through hpcbox's engine.

PSI/J users write ``psij.JobExecutor.get_instance("hpcbox")`` and get hpcbox's
engine underneath: local jobs, or any registered target (a SLURM cluster over SSH)
named by the custom attribute ``hpcbox.target``, by
:class:`HpcboxExecutorConfig`'s ``target`` or by the executor's ``url``.

How a PSI/J :class:`~psij.JobSpec` maps onto hpcbox's
:class:`~hpcbox.jobs.model.spec.JobSpec`:

* ``executable`` + ``arguments`` -> ``command``; ``directory`` -> ``workdir``
  (made absolute); ``environment`` -> ``env``; ``name`` -> ``name``.
* ``resources`` (:class:`~psij.ResourceSpecV1`): computed node count ->
  ``nodes``, computed process count -> ``ntasks``, ``cpu_cores_per_process`` ->
  ``cpus_per_task``, ``memory`` (bytes for the whole job) -> ``memory`` per node
  (divided by the node count, rounded up to whole KiB).
* ``attributes.duration`` -> ``time_limit`` (whole seconds, rounded up);
  ``attributes.queue_name`` -> ``partition``.
* ``stdout_path`` / ``stderr_path``: hpcbox keeps a job's output in its own place
  (the job's run directory, or ``~/.hpcbox/jobs/...`` on a cluster). When the job
  reaches a final state the executor copies that output to the requested paths,
  *before* it reports the final state, so ``job.wait()`` returning means the files
  are there. They are not written while the job runs.
* Refused with :class:`~psij.InvalidJobException` because hpcbox cannot honour
  them: ``stdin_path``, ``pre_launch``, ``post_launch``, ``inherit_environment=False``,
  ``gpu_cores_per_process``, ``exclusive_node_use``, ``account``,
  ``reservation_id``, ``project_name``. ``launcher`` is ignored: hpcbox runs the
  command itself (``srun`` semantics on SLURM).

States: hpcbox NEW and PENDING -> QUEUED, RUNNING -> ACTIVE, COMPLETED (exit code
0) -> COMPLETED, CANCELLED -> CANCELED, and every other final state (FAILED,
TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ERROR, or COMPLETED with a non-zero code) ->
FAILED, with hpcbox's exit code, its reason as the message and its state in the
metadata (``hpcbox_state``, ``native_state``). A job's PSI/J ``native_id`` is its
hpcbox job id. A background thread polls the engine every ``poll_interval``
seconds (0.5 by default); PSI/J fills in skipped intermediate states itself.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psij
from psij import (
    InvalidJobException,
    Job,
    JobExecutorConfig,
    JobState,
    JobStatus,
    ResourceSpecV1,
    SubmitException,
)

if TYPE_CHECKING:
    from hpcbox.jobs.engine import JobEngine
    from hpcbox.jobs.model.job import Job as HpcboxJob
    from hpcbox.jobs.model.spec import JobSpec as HpcboxJobSpec

__all__ = [
    "TARGET_ATTRIBUTE",
    "HpcboxExecutorConfig",
    "HpcboxJobExecutor",
    "psij_status",
    "to_hpcbox_spec",
]

#: The custom attribute naming the hpcbox target a job goes to.
TARGET_ATTRIBUTE = "hpcbox.target"
log = logging.getLogger(__name__)
_COPY_CHUNK = 4 * 1024 * 1024
_LIST_PAGE = 1000


class HpcboxExecutorConfig(JobExecutorConfig):
    """PSI/J configuration for the hpcbox executor.

    ``target``: the hpcbox target jobs go to when they name none (``None`` or
    ``"local"``: this machine). ``poll_interval``: seconds between state polls.
    """

    def __init__(
        self,
        target: str | None = None,
        poll_interval: float = 0.5,
        launcher_log_file: Path | None = None,
        work_directory: Path | None = None,
    ) -> None:
        super().__init__(launcher_log_file=launcher_log_file, work_directory=work_directory)
        self.target = target
        self.poll_interval = poll_interval


def _refuse(message: str) -> InvalidJobException:
    return InvalidJobException(f"the hpcbox executor does not support {message}")


def to_hpcbox_spec(spec: psij.JobSpec) -> HpcboxJobSpec:
    """Translate a PSI/J job specification into hpcbox's (see the module docstring).

    Raises :class:`~psij.InvalidJobException` for what hpcbox cannot honour or
    what hpcbox's own validation refuses.
    """
    from hpcbox.core.errors import InvalidInputError
    from hpcbox.jobs.model.spec import parse_job_spec

    if not spec.executable:
        raise InvalidJobException("the job specification has no executable")
    if spec.stdin_path is not None:
        raise _refuse("stdin_path")
    if spec.pre_launch is not None or spec.post_launch is not None:
        raise _refuse("pre_launch or post_launch scripts")
    if not spec.inherit_environment:
        raise _refuse("inherit_environment=False")

    data: dict[str, Any] = {"command": [spec.executable, *(str(a) for a in spec.arguments or [])]}
    if spec.name:
        data["name"] = spec.name
    if spec.directory is not None:
        data["workdir"] = str(Path(spec.directory).absolute())
    if spec.environment:
        data["env"] = {str(k): str(v) for k, v in spec.environment.items()}

    resources: dict[str, Any] = {}
    res = spec.resources
    if res is not None:
        if not isinstance(res, ResourceSpecV1):
            raise _refuse(f"resource specifications of version {res.version}")
        if res.gpu_cores_per_process:
            raise _refuse("gpu_cores_per_process")
        if res.exclusive_node_use:
            raise _refuse("exclusive_node_use")
        nodes = res.computed_node_count
        resources["nodes"] = nodes
        resources["ntasks"] = res.computed_process_count
        if res.cpu_cores_per_process is not None:
            resources["cpus_per_task"] = res.cpu_cores_per_process
        if res.memory is not None:
            resources["memory"] = f"{math.ceil(res.memory / max(nodes, 1) / 1024)}K"

    attrs = spec.attributes
    if attrs.account is not None:
        raise _refuse("account")
    if attrs.reservation_id is not None:
        raise _refuse("reservation_id")
    if attrs.project_name is not None:
        raise _refuse("project_name")
    duration: timedelta | None = attrs.duration
    if duration is not None:
        resources["time_limit"] = f"{max(1, math.ceil(duration.total_seconds()))}s"
    if attrs.queue_name is not None:
        resources["partition"] = attrs.queue_name
    if resources:
        data["resources"] = resources

    try:
        return parse_job_spec(data)
    except InvalidInputError as exc:
        raise InvalidJobException(str(exc)) from exc


def psij_status(job: HpcboxJob) -> JobStatus:
    """The PSI/J status for an hpcbox job's current attempt."""
    from hpcbox.jobs.model.states import JobState as HState

    cur = job.current
    metadata: dict[str, object] = {
        "nativeId": str(job.id),
        "hpcbox_state": cur.state.value,
        "native_state": cur.native_state,
        "target": job.target,
    }
    state = cur.state
    exit_code = cur.exit_code
    message = cur.reason
    if state in (HState.NEW, HState.PENDING):
        return JobStatus(JobState.QUEUED, message=message, metadata=metadata)
    if state is HState.RUNNING:
        return JobStatus(JobState.ACTIVE, message=message, metadata=metadata)
    if state is HState.CANCELLED:
        return JobStatus(JobState.CANCELED, exit_code=exit_code, message=message, metadata=metadata)
    if state is HState.COMPLETED and exit_code in (0, None):
        return JobStatus(JobState.COMPLETED, exit_code=0, message=message, metadata=metadata)
    text = f"hpcbox state {state.value}"
    if message:
        text = f"{text}: {message}"
    return JobStatus(JobState.FAILED, exit_code=exit_code, message=text, metadata=metadata)


class HpcboxJobExecutor(psij.JobExecutor):
    """Run PSI/J jobs through hpcbox, locally or on any hpcbox target.

    The engine (``JobEngine(Settings.from_env(), scheduling="thread")``) is made at
    first use, one per executor; :meth:`close` stops it (also run at exit), handing
    still-queued local jobs to an hpcbox agent so they are not orphaned.
    """

    def __init__(self, url: str | None = None, config: JobExecutorConfig | None = None) -> None:
        super().__init__(url=url, config=config or HpcboxExecutorConfig())
        self._lock = threading.RLock()
        self._engine: JobEngine | None = None
        self._jobs: dict[int, Job] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None
        self._closed = False

    # -- configuration -------------------------------------------------------------

    @property
    def poll_interval(self) -> float:
        return float(getattr(self.config, "poll_interval", 0.5))

    def _target_for(self, spec: psij.JobSpec) -> str | None:
        named = spec.attributes.get_custom_attribute(TARGET_ATTRIBUTE)
        if named is None:
            named = getattr(self.config, "target", None) or self.url
        if named in (None, "", "local"):
            return None
        return str(named)

    def _get_engine(self) -> JobEngine:
        with self._lock:
            if self._closed:
                raise SubmitException("the hpcbox executor is closed")
            if self._engine is None:
                from hpcbox.core.settings import Settings
                from hpcbox.jobs.engine import JobEngine

                self._engine = JobEngine(Settings.from_env(), scheduling="thread")
                atexit.register(self.close)
            return self._engine

    # -- the PSI/J operations ------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Submit ``job`` to hpcbox; its ``native_id`` becomes the hpcbox job id."""
        from hpcbox.core.errors import HpcboxError

        spec = self._check_job(job)
        try:
            hspec = to_hpcbox_spec(spec)
            target = self._target_for(spec)
            engine = self._get_engine()
            hjob = engine.submit(hspec, target=target)
        except InvalidJobException:
            job.executor = None
            raise
        except HpcboxError as exc:
            job.executor = None
            raise SubmitException(str(exc)) from exc
        self._track(job, hjob)

    def cancel(self, job: Job) -> None:
        """Cancel ``job`` in hpcbox; a job never submitted just becomes CANCELED."""
        from hpcbox.core.errors import HpcboxError

        native = job.native_id
        if native is None:
            self._set_job_status(job, JobStatus(JobState.CANCELED))
            return
        try:
            hjob = self._get_engine().cancel(int(native))
        except HpcboxError as exc:
            raise SubmitException(f"cannot cancel hpcbox job {native}: {exc}") from exc
        self._publish(job, hjob)

    def list(self) -> list[str]:
        """The ids of the hpcbox jobs that are queued or running (all of them, not
        only those submitted through this executor)."""
        from hpcbox.jobs.model.states import ACTIVE_STATES

        engine = self._get_engine()
        ids: list[str] = []
        before: int | None = None
        while True:
            page = engine.list_jobs(states=ACTIVE_STATES, limit=_LIST_PAGE, before=before)
            ids.extend(str(j.id) for j in page)
            if len(page) < _LIST_PAGE:
                return ids
            before = page[-1].id

    def attach(self, job: Job, native_id: str) -> None:
        """Follow the existing hpcbox job ``native_id`` as ``job`` (which must be NEW)."""
        from hpcbox.core.errors import HpcboxError

        if job.status.state != JobState.NEW:
            raise InvalidJobException("Job must be in the NEW state")
        if job.executor is not None:
            raise InvalidJobException("Job is already associated with an executor")
        try:
            hjob = self._get_engine().get(int(native_id))
        except (ValueError, HpcboxError) as exc:
            raise InvalidJobException(f"no hpcbox job {native_id!r}: {exc}") from exc
        job.executor = self
        self._track(job, hjob)

    def close(self) -> None:
        """Stop polling and close the engine. Jobs keep running under hpcbox."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            engine, self._engine = self._engine, None
        self._stop.set()
        self._wake.set()
        poller = self._poller
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=10)
        if engine is not None:
            atexit.unregister(self.close)
            engine.close()

    # -- status --------------------------------------------------------------------

    def _track(self, job: Job, hjob: HpcboxJob) -> None:
        job._native_id = str(hjob.id)
        with self._lock:
            self._jobs[hjob.id] = job
            if self._poller is None:
                self._poller = threading.Thread(
                    target=self._poll_forever, name="hpcbox-psij-poller", daemon=True
                )
                self._poller.start()
        self._publish(job, hjob)

    def _publish(self, job: Job, hjob: HpcboxJob) -> None:
        """Report ``hjob``'s state on ``job``; once final, copy output first and stop
        tracking it."""
        status = psij_status(hjob)
        if status.final:
            with self._lock:
                if self._jobs.pop(hjob.id, None) is None:
                    return  # another thread reports this end
            self._copy_output(job, hjob)
        self._set_job_status(job, status)

    def _copy_output(self, job: Job, hjob: HpcboxJob) -> None:
        spec = job.spec
        if spec is None or self._engine is None:
            return
        for stream, dest in (("stdout", spec.stdout_path), ("stderr", spec.stderr_path)):
            if dest is None:
                continue
            try:
                with Path(dest).open("wb") as out:
                    offset = 0
                    while True:
                        chunk = self._engine.logs(
                            hjob.id, stream=stream, offset=offset, limit=_COPY_CHUNK
                        )
                        out.write(chunk.data)
                        offset = chunk.next_offset
                        if chunk.eof or not chunk.data:
                            break
            except Exception:  # a failed copy must not hide the job's end
                log.warning(
                    "could not copy the %s of hpcbox job %s to %s",
                    stream,
                    hjob.id,
                    dest,
                    exc_info=True,
                )

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                tracked = list(self._jobs.items())
                engine = self._engine
            if engine is not None:
                for job_id, job in tracked:
                    try:
                        hjob = engine.get(job_id)
                        self._publish(job, hjob)
                    except Exception:  # keep polling the other jobs
                        log.warning("polling hpcbox job %s failed", job_id, exc_info=True)
            self._wake.wait(self.poll_interval)
            self._wake.clear()
