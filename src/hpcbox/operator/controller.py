"""``SlurmJobController``: what the operator does, with Kubernetes behind :class:`KubeApi`.

kopf's handlers (:mod:`.handlers`) only translate their arguments and errors;
everything else is here, so it runs the same against the real API and a fake.

One poller for every SlurmJob: the engine's batched watcher already polls SLURM
(one squeue + one sacct per target and interval); :meth:`sync` — run by one
thread, never a timer per object — reads the watched jobs from the store and
patches the statuses that changed. Credentials read from Secrets are held in a
:class:`CredentialStore` in memory, which the engine consults by target name;
they never reach the database, a log or a status.
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from hpcbox.infra.transport.credentials import CredentialStore
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState
from hpcbox.jobs.model.target import TargetSpec
from hpcbox.operator import mapping
from hpcbox.operator.kube import KubeApi
from hpcbox.operator.logpod import (
    ATTEMPT_ANNOTATION,
    MANAGED_LABEL,
    MAX_STDERR_BYTES,
    MAX_STDOUT_BYTES,
    log_pod_manifest,
)
from hpcbox.operator.mapping import Decision
from hpcbox.operator.resource import ObjectRef

__all__ = ["DEFAULT_LOG_IMAGE", "SlurmJobController"]

log = logging.getLogger(__name__)

DEFAULT_LOG_IMAGE = "busybox:1.36"


@dataclass
class _Watch:
    """A SlurmJob whose status the poller keeps up to date."""

    ref: ObjectRef
    target: TargetSpec
    #: The status last patched, less ``elapsed`` (which changes every second).
    last: dict[str, Any] | None = None
    patched_at: float = 0.0
    #: The attempt whose output the log Pod shows (0: none yet).
    published: int = 0


class SlurmJobController:
    """Create, edit, delete and watch SlurmJobs on one :class:`JobEngine`.

    Thread-safe: kopf runs handlers on worker threads while :meth:`sync` runs on
    the poller's. Methods raise hpcbox errors; the handlers map them onto kopf's
    (TransientError and a missing Secret or ConfigMap: retry later; the rest: give up).
    """

    def __init__(
        self,
        engine: JobEngine,
        kube: KubeApi,
        *,
        credentials: CredentialStore | None = None,
        log_image: str = DEFAULT_LOG_IMAGE,
        interval: float = 1.0,
        elapsed_refresh: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``interval``: seconds between two poller passes (reading the store is
        cheap; SLURM is polled by the engine's watcher at its own pace).
        ``elapsed_refresh``: how often a running job's ``elapsed`` is refreshed
        (every status change refreshes it too)."""
        self.engine = engine
        self.kube = kube
        self.credentials = credentials or CredentialStore()
        engine.use_credentials(self.credentials)
        self.log_image = log_image
        self.interval = interval
        self.elapsed_refresh = elapsed_refresh
        self.clock = clock
        self._lock = threading.Lock()
        self._watches: dict[int, _Watch] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- handlers' operations ---------------------------------------------------------

    def ensure(self, ref: ObjectRef, spec: Mapping[str, Any], status: Mapping[str, Any]) -> Job:
        """Create (or, after a restart, resume): make sure the SlurmJob has its job.

        Never submits twice: the job is found by the id in the status or, when
        the status was not written yet (a crash right after submitting), by the
        SlurmJob's uid among active jobs.
        """
        target = self._connect(ref, spec)
        job = self._job_of(ref, status) or self._find_submitted(ref)
        if job is None:
            job = self.engine.submit(self._job_spec(ref, spec), target=target.name)
            log.info("%s: submitted as hpcbox job %d to %s", ref, job.id, target.url)
            self.kube.post_event(
                ref,
                type="Normal",
                reason="Submitted",
                message=f"submitted as hpcbox job {job.id} to {target.url}",
            )
        self._watch(job, ref, target)
        return job

    def update(
        self,
        ref: ObjectRef,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        status: Mapping[str, Any],
    ) -> Decision:
        """An edit of ``spec``: rerun a finished job, refuse to touch an active one."""
        job = self._job_of(ref, status)
        decision = mapping.decide_update(job, old, new)
        if decision is Decision.CREATE:
            self.ensure(ref, new, status)
        elif decision is Decision.REFUSE_TARGET:
            self.kube.post_event(
                ref,
                type="Warning",
                reason="EditRefused",
                message="spec.target cannot change: the job stays on the cluster it was "
                "submitted to; create a new SlurmJob for another cluster",
            )
        elif decision is Decision.REFUSE_ACTIVE and job is not None:
            self.kube.post_event(
                ref,
                type="Warning",
                reason="EditRefused",
                message=f"the job is {job.state.value}: an edit reruns only a finished job; "
                "delete the SlurmJob to cancel it, or edit again once it has ended",
            )
        elif decision is Decision.RERUN and job is not None:
            target = self._connect(ref, new)
            spec = self._job_spec(ref, new)
            # An edit may change the resources too: the new attempt gets the whole spec.
            job = self.engine.rerun(job.id, spec=spec)
            self._retire_log_pod(ref)
            self._watch(job, ref, target)
            self.kube.post_event(
                ref,
                type="Normal",
                reason="Rerun",
                message=f"spec edited: attempt {job.current.number} submitted",
            )
        return decision

    def delete(self, ref: ObjectRef, spec: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """Deletion: scancel an active job before the finalizer lets go.

        Raises TransientError when the cluster cannot be reached, so that the
        finalizer stays and the deletion is retried: a SlurmJob never vanishes
        while its job still runs."""
        try:
            self._connect(ref, spec)  # after a restart the credentials are not loaded yet
        except HpcboxError as exc:
            log.warning("%s: cannot refresh credentials before cancelling: %s", ref, exc)
        job = self._job_of(ref, status) or self._find_submitted(ref)
        if job is not None:
            if not job.terminal:
                job = self.engine.cancel(job.id)
                log.info("%s: cancelled SLURM job %s", ref, job.current.native_id)
            with self._lock:
                self._watches.pop(job.id, None)

    def report(self, ref: ObjectRef, exc: HpcboxError, *, retrying: bool) -> None:
        """Tell the user why a handler failed: an Event, and the status's message."""
        message = str(exc)[:1000]
        suffix = " (will retry)" if retrying else ""
        self.kube.post_event(ref, type="Warning", reason=type(exc).__name__, message=message)
        patch: dict[str, Any] = {"message": message + suffix}
        if not retrying:
            patch["state"] = JobState.ERROR.value
        try:
            self.kube.patch_status(ref, patch)
        except HpcboxError as err:
            log.warning("%s: cannot record the error in the status: %s", ref, err)

    # -- the one poller ---------------------------------------------------------------

    def sync(self) -> int:
        """One pass: patch the statuses that changed, publish finished jobs' output;
        return the number of SlurmJobs still watched."""
        with self._lock:
            watches = list(self._watches.items())
        now = self.clock()
        for job_id, watch in watches:
            try:
                done = self._sync_one(job_id, watch, now)
            except HpcboxError as exc:
                log.warning("%s: status not updated: %s", watch.ref, exc)
                continue
            if done:
                with self._lock:
                    if self._watches.get(job_id) is watch:
                        del self._watches[job_id]
        with self._lock:
            return len(self._watches)

    def _sync_one(self, job_id: int, watch: _Watch, now: datetime) -> bool:
        try:
            job = self.engine.get(job_id)
        except NotFoundError:
            return True
        status = mapping.status_of(
            job,
            watch.ref,
            target=watch.target,
            now=now,
            unreachable=self.engine.backend(job.backend).unreachable(watch.target.name),
        )
        key = {k: v for k, v in status.items() if k != "elapsed"}
        moment = time.monotonic()
        refresh = (
            job.state is JobState.RUNNING and moment - watch.patched_at >= self.elapsed_refresh
        )
        if job.terminal and watch.published < job.current.number:
            # The output before the final state, so whoever sees the state can read
            # it; if it cannot be published yet, the state still goes out and the
            # next pass tries again.
            try:
                self._publish(job, watch)
                watch.published = job.current.number
            except HpcboxError as exc:
                log.warning("%s: output not published yet: %s", watch.ref, exc)
        if key != watch.last or refresh:
            try:
                self.kube.patch_status(watch.ref, status)
            except NotFoundError:
                return True  # the SlurmJob is gone
            watch.last, watch.patched_at = key, moment
        return job.terminal and watch.published >= job.current.number

    def _publish(self, job: Job, watch: _Watch) -> None:
        """The log Pod for the attempt that just ended, and an Event saying how it ended."""
        ref, cur = watch.ref, job.current
        existing = self.kube.get_pod(ref.namespace, ref.name)
        if existing is not None:
            labels = existing.get("labels") or {}
            annotations = existing.get("annotations") or {}
            if labels.get(MANAGED_LABEL) != ref.name:
                self.kube.post_event(
                    ref,
                    type="Warning",
                    reason="OutputNotPublished",
                    message=f"a Pod named {ref.name} exists and is not hpcbox's; "
                    f"read the output with hpcbox job logs {job.id}",
                )
                return
            if annotations.get(ATTEMPT_ANNOTATION) != str(cur.number):
                # An earlier attempt's Pod: delete it, publish on a later pass.
                self.kube.delete_pod(ref.namespace, ref.name)
                raise TransientError("the previous attempt's log Pod is being deleted")
        else:
            out = self.engine.logs(job.id, stream="stdout", limit=MAX_STDOUT_BYTES)
            err = self.engine.logs(job.id, stream="stderr", limit=MAX_STDERR_BYTES)
            where = self.engine.backend(job.backend).log_path(job, cur.number, "stdout")
            manifest = log_pod_manifest(
                ref,
                attempt=cur.number,
                slurm_job_id=cur.native_id,
                stdout=out.data,
                stderr=err.data,
                stdout_complete=out.eof,
                stderr_complete=err.eof,
                where=f"{posixpath.dirname(where)}/ on the cluster",
                image=self.log_image,
            )
            try:
                self.kube.create_pod(manifest)
            except ConflictError as exc:
                raise TransientError(f"log Pod {ref.name}: {exc}") from exc
        good = cur.state is JobState.COMPLETED
        code = "" if cur.exit_code is None else f", exit code {cur.exit_code}"
        self.kube.post_event(
            ref,
            type="Normal" if good else "Warning",
            reason=cur.state.value.title().replace("_", ""),
            message=f"SLURM job {cur.native_id} ended {cur.native_state or cur.state.value}"
            f"{code}; output: kubectl logs {ref.name}",
        )

    def start(self) -> None:
        """Start the poller thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="hpcbox-operator-poller", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception:
                # Keep the one poller alive through a bad pass; logged, not lost.
                log.exception("operator poller pass failed")
            self._stop.wait(self.interval)

    def close(self) -> None:
        """Stop the poller and the engine (jobs keep running on their clusters)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.engine.close(handover=False)

    # -- helpers ----------------------------------------------------------------------

    def _connect(self, ref: ObjectRef, spec: Mapping[str, Any]) -> TargetSpec:
        """Register the SlurmJob's target and load its Secret's credentials (memory only)."""
        conn = mapping.connection(spec)
        data = self.kube.read_secret(ref.namespace, conn.secret_name)
        credentials, user = mapping.credentials_from_secret(data, secret_name=conn.secret_name)
        target = mapping.target_spec(ref.namespace, conn, user)
        self.credentials.set(target.name, credentials)
        try:
            current = self.engine.targets.get(target.name)
        except NotFoundError:
            current = None
        if current != target:
            self.engine.targets.store.add(target, replace=True)
        return target

    def _job_spec(self, ref: ObjectRef, spec: Mapping[str, Any]) -> JobSpec:
        source = mapping.script_ref(spec)
        if isinstance(source, str):
            return mapping.job_spec(ref, spec, source)
        data = self.kube.read_config_map(ref.namespace, source.name)
        if source.key not in data:
            raise NotFoundError(f"ConfigMap {source.name} has no key {source.key!r}")
        return mapping.job_spec(ref, spec, data[source.key])

    def _job_of(self, ref: ObjectRef, status: Mapping[str, Any]) -> Job | None:
        job_id = status.get("hpcboxJob")
        if not isinstance(job_id, int):
            return None
        try:
            job = self.engine.get(job_id)
        except NotFoundError:
            return None
        return job if job.spec.env.get(mapping.UID_ENV) == ref.uid else None

    def _find_submitted(self, ref: ObjectRef) -> Job | None:
        active = self.engine.store.list_jobs(states=ACTIVE_STATES, limit=100_000)
        return next((j for j in active if j.spec.env.get(mapping.UID_ENV) == ref.uid), None)

    def _watch(self, job: Job, ref: ObjectRef, target: TargetSpec) -> None:
        with self._lock:
            current = self._watches.get(job.id)
            if current is None or current.ref != ref or current.target != target:
                self._watches[job.id] = _Watch(ref=ref, target=target)

    def _retire_log_pod(self, ref: ObjectRef) -> None:
        """Delete the previous attempt's log Pod (ours only), so the next can replace it."""
        try:
            pod = self.kube.get_pod(ref.namespace, ref.name)
            if pod is not None and (pod.get("labels") or {}).get(MANAGED_LABEL) == ref.name:
                self.kube.delete_pod(ref.namespace, ref.name)
        except (TransientError, PermanentError) as exc:
            # Not fatal: publishing the next output deletes it then.
            log.warning("%s: could not delete the old log Pod: %s", ref, exc)

    def watched(self) -> list[int]:
        """Ids of the jobs whose SlurmJob statuses the poller keeps up to date."""
        with self._lock:
            return sorted(self._watches)
