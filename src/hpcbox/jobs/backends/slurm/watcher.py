"""Jobs on SLURM targets over SSH: submission, the batched watcher, cancel, logs.

Runs in whichever process schedules (the same lock as local jobs). Per target and
poll, one squeue for every active job plus one sacct for those that left the
queue: the number of remote commands does not grow with the number of jobs. The
interval adapts (shorter while jobs change, longer when idle) within bounds, and
every SLURM command to a target -- the watcher's and submissions alike -- takes a
token from that target's rate limit (:class:`~hpcbox.jobs.backends.slurm.RateLimit`).

New jobs are submitted several at a time, each on its own channel of the
target's one SSH connection, so a burst is not paced by one round trip per job.

Submission is idempotent across crashes: before ``sbatch``, the attempt is marked
"submitting"; a scheduler that finds the mark without a SLURM id looks the job up
by name and working directory on the cluster before submitting it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import HpcboxError, NotFoundError, PermanentError, TransientError
from hpcbox.core.settings import SlurmSettings, reveal
from hpcbox.jobs.backends.slurm.commands import SlurmStatus
from hpcbox.jobs.backends.slurm.poll import next_interval
from hpcbox.jobs.backends.slurm.ratelimit import RateLimit
from hpcbox.jobs.backends.slurm.remote import SlurmRemote
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState, is_terminal
from hpcbox.jobs.model.target import TargetSpec
from hpcbox.jobs.store import JobStore
from hpcbox.jobs.target_store import TargetStore

if TYPE_CHECKING:
    from hpcbox.infra.transport import SshTarget, TransportPool
    from hpcbox.infra.transport.credentials import CredentialStore, SshCredentials

__all__ = ["RemoteJobs"]

log = logging.getLogger(__name__)

BACKEND = "slurm"

#: Most jobs sbatch'ed by one remote command: big enough to save channels and
#: round trips, small enough that a command stays short (and an unknown outcome
#: after a broken link costs few look-ups).
SUBMIT_BATCH = 25


@dataclass
class _TargetState:
    interval: float
    next_poll: float = 0.0
    unreachable: str | None = None


class RemoteJobs:
    """Everything the engine does with jobs on SSH targets."""

    def __init__(
        self,
        store: JobStore,
        targets: TargetStore,
        *,
        min_interval: float = 1.0,
        max_interval: float = 10.0,
        rate_limit: float | None = 2.0,
        rate_burst: int = 10,
        submit_workers: int = 8,
    ) -> None:
        """A poll sends at most two status commands (squeue, then sacct), so
        ``min_interval`` = 1 s keeps a target under SLURM's common RPC rate limit
        of 2 calls per second whatever the number of jobs. ``rate_limit`` (SLURM
        commands per second; None: no limit) and ``rate_burst`` apply to targets
        that do not set their own ``rate_limit``. ``submit_workers`` new jobs are
        submitted at once; it stays below OpenSSH's default MaxSessions (10), so
        the watcher's squeue always finds a free channel."""
        self.store = store
        self.targets = targets
        self._pool: TransportPool | None = None
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.rate_limit = rate_limit
        self.rate_burst = rate_burst
        self.submit_workers = submit_workers
        self._state: dict[str, _TargetState] = {}
        #: In-memory keys/passwords by target name (the operator's, from Secrets);
        #: set by whoever holds them, consulted at each connection.
        self.credentials: CredentialStore | None = None
        self._limits: dict[str, RateLimit] = {}
        self._limits_lock = threading.Lock()
        self._submitters: ThreadPoolExecutor | None = None

    # -- connections ----------------------------------------------------------------

    @property
    def pool(self) -> TransportPool:
        # Made on first use: the SSH stack (asyncssh) is imported only by processes
        # that actually reach a target, which keeps one-shot CLI calls fast.
        if self._pool is None:
            from hpcbox.infra.transport import TransportPool

            self._pool = TransportPool()
        return self._pool

    def remote(self, name: str) -> SlurmRemote:
        spec = self.targets.get(name)
        transport = self.pool.get(name, _ssh_target(spec, self._credentials(name)))
        return SlurmRemote(transport, job_root=spec.job_root, limit=self.limit(spec))

    def limit(self, spec: TargetSpec) -> RateLimit:
        """The target's token bucket, shared by every command this process sends it
        (remade when the target's rate changes). A target's ``rate_limit`` wins over
        the default; 0 means none. A cluster hpcbox brought up itself (``cluster``
        set) gets none by default: its slurm.conf turns no RPC rate limiting on."""
        if spec.rate_limit is not None:
            rate = spec.rate_limit or None
        else:
            rate = None if spec.cluster is not None else self.rate_limit
        with self._limits_lock:
            current = self._limits.get(spec.name)
            if current is None or not current.same_policy(rate, self.rate_burst):
                current = self._limits[spec.name] = RateLimit(rate, burst=self.rate_burst)
            return current

    def _credentials(self, name: str) -> SshCredentials | None:
        return None if self.credentials is None else self.credentials.get(name)

    def unreachable(self, name: str) -> str | None:
        state = self._state.get(name)
        return None if state is None else state.unreachable

    # -- operations the engine calls from any process --------------------------------

    def check(self, name: str) -> dict[str, Any]:
        """Connect to the target and report what it offers: the SLURM commands hpcbox
        needs (found or not) and whether accounting answers. Raises TransientError
        when the target cannot be reached."""
        remote = self.remote(name)
        started = time.monotonic()
        home = remote.transport.home()
        tools: dict[str, str | None] = {}
        for tool in ("sbatch", "squeue", "sacct", "scancel"):
            found = remote.transport.run(["which", tool])
            path = found.stdout.decode("utf-8", "replace").strip()
            tools[tool] = path if found.exit_code == 0 and path else None
        accounting = None
        if tools["sacct"]:
            probe = remote.transport.run(["sacct", "-n", "-X", "-P", "-S", "now-1minutes"])
            accounting = probe.exit_code == 0
        return {
            "name": name,
            "reachable": True,
            "home": home,
            "commands": tools,
            "accounting": accounting,
            "ok": all(tools.values()),
            "seconds": round(time.monotonic() - started, 3),
        }

    def cancel(self, job: Job) -> None:
        native = job.current.native_id
        if native:
            self.remote(job.target).cancel([native])

    def read_log(
        self, job: Job, attempt: int, stream: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        remote = self.remote(job.target)
        path = remote.log_path(job, attempt, stream)
        size = remote.transport.file_size(path) or 0
        return remote.transport.read_file(path, offset=offset, limit=limit), size

    # -- the watcher (in the scheduling process) ------------------------------------

    def active(self) -> int:
        """How many remote jobs are active (a cheap count, for idleness checks)."""
        return len(self.store.list_ids(states=ACTIVE_STATES, backend=BACKEND))

    def step(self) -> int:
        """Submit NEW jobs and poll active ones, per target when due; return the
        number of active remote jobs."""
        active = self.store.list_jobs(
            states=ACTIVE_STATES, backend=BACKEND, limit=100_000, ascending=True
        )
        by_target: dict[str, list[Job]] = defaultdict(list)
        for job in active:
            by_target[job.target].append(job)
        now = time.monotonic()
        for name, jobs in by_target.items():
            state = self._state.setdefault(name, _TargetState(interval=self.min_interval))
            fresh = [j for j in jobs if j.state is JobState.NEW]
            if not fresh and now < state.next_poll:
                continue
            try:
                remote = self.remote(name)
            except NotFoundError:
                self._orphan(name, jobs)
                continue
            try:
                changed = self._submit_all(remote, fresh)
                changed |= self._poll(remote, [j for j in jobs if j.state is not JobState.NEW])
                state.unreachable = None
            except TransientError as exc:
                # Status unknown, not "job gone": keep every state, report, retry later.
                state.unreachable = str(exc)
                log.warning("target %s unreachable: %s", name, exc)
                self._report_unreachable(jobs, str(exc))
                changed = False
            except HpcboxError as exc:
                state.unreachable = str(exc)
                log.error("target %s: %s", name, exc)
                changed = False
            if fresh:
                # New work on this target: watch it closely again at once.
                state.interval = self.min_interval
            state.interval = next_interval(
                state.interval, changed=changed, min_s=self.min_interval, max_s=self.max_interval
            )
            state.next_poll = time.monotonic() + state.interval
        return len(active)

    def _report_unreachable(self, jobs: list[Job], why: str) -> None:
        """Say so in each job's reason, keeping its state (the next successful poll
        puts SLURM's own reason back)."""
        reason = f"target unreachable: {why}"[:500]
        for job in jobs:
            if job.current.reason != reason:
                self.store.transition(
                    job.id,
                    job.current.number,
                    job.state,
                    only_from={job.state},
                    reason=reason,
                )

    def _orphan(self, name: str, jobs: list[Job]) -> None:
        """The target was removed: its jobs can no longer be followed."""
        for job in jobs:
            self.store.transition(
                job.id,
                job.current.number,
                JobState.ERROR,
                native_state="UNKNOWN",
                reason=f"target {name!r} was removed; hpcbox can no longer follow this job",
                finished_at=utcnow(),
            )

    def _submit_all(self, remote: SlurmRemote, jobs: list[Job]) -> bool:
        """Submit ``jobs``: in batches of up to :data:`SUBMIT_BATCH` (one sbatch
        command each, see :meth:`_submit_batch`), several batches at once; a job
        whose earlier submission had an unknown outcome goes alone, after a look
        for it on the cluster. Every batch is tried even when some fail, then the
        first error is raised (a TransientError: the others' outcome is
        recorded, the failed ones stay NEW and are retried)."""
        if not jobs:
            return False
        lost: list[Job] = []
        fresh: list[Job] = []
        for job in jobs:
            handle = self.store.handle(job.id, job.current.number) or {}
            (lost if handle.get("submitting") else fresh).append(job)
        work: list[tuple[Callable[..., None], object]] = [(self._submit, job) for job in lost]
        # Spread the jobs over the workers, in batches small enough to keep each
        # command short and large enough to save channels.
        size = max(1, min(SUBMIT_BATCH, -(-len(fresh) // max(self.submit_workers, 1))))
        work += [(self._submit_batch, fresh[i : i + size]) for i in range(0, len(fresh), size)]
        if len(work) == 1 or self.submit_workers <= 1:
            errors: list[BaseException] = []
            for call, arg in work:
                try:
                    call(remote, arg)
                except HpcboxError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
            return True
        if self._submitters is None:
            self._submitters = ThreadPoolExecutor(
                self.submit_workers, thread_name_prefix="hpcbox-submit"
            )
        futures = [self._submitters.submit(call, remote, arg) for call, arg in work]
        failed = [err for f in futures if (err := f.exception()) is not None]
        if failed:
            raise failed[0]
        return True

    def _submit_batch(self, remote: SlurmRemote, jobs: list[Job]) -> None:
        """Mark the jobs "submitting" (so that a crash from here on leads to a
        look-up, never to a second sbatch), submit them together, record each
        outcome. Jobs whose outcome stays unknown (the command ended early) keep
        their mark and are looked up on the next round."""
        for job in jobs:
            self.store.transition(
                job.id,
                job.current.number,
                JobState.NEW,
                only_from={JobState.NEW},
                handle={"submitting": True},
            )
        try:
            outcomes = remote.submit_many(jobs)
        except PermanentError as exc:
            for job in jobs:
                self._refused(job, exc)
            return
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.native_id is not None:
                self._submitted(job, outcome.native_id)
            elif outcome.error is not None:
                self._refused(job, outcome.error)

    def _refused(self, job: Job, exc: PermanentError) -> None:
        self.store.transition(
            job.id,
            job.current.number,
            JobState.ERROR,
            native_state="ERROR",
            reason=f"could not submit: {exc}",
            finished_at=utcnow(),
        )

    def _submitted(self, job: Job, native: str) -> None:
        self.store.transition(
            job.id,
            job.current.number,
            JobState.PENDING,
            only_from={JobState.NEW},
            native_id=native,
            native_state="PENDING",
            reason="None",
            handle={"native_id": native},
        )

    def _submit(self, remote: SlurmRemote, job: Job) -> None:
        number = job.current.number
        handle = self.store.handle(job.id, number) or {}
        native: str | None = None
        if handle.get("submitting"):
            native = remote.find(job)  # an earlier submission whose outcome was lost?
        if native is None:
            self.store.transition(
                job.id,
                number,
                JobState.NEW,
                only_from={JobState.NEW},
                handle={"submitting": True},
            )
            try:
                native = remote.submit(job)
            except PermanentError as exc:
                self._refused(job, exc)
                return
        self._submitted(job, native)

    def _poll(self, remote: SlurmRemote, jobs: list[Job]) -> bool:
        ids = {j.current.native_id: j for j in jobs if j.current.native_id}
        if not ids:
            return False
        exit_files = {n: remote.exit_file(j, j.current.number) for n, j in ids.items()}
        result = remote.poll(list(ids), exit_files)
        changed = False
        for native, job in ids.items():
            status = result.statuses.get(native)
            if status is not None:
                changed |= self._apply(job, status)
            elif native in result.unknown:
                changed |= self.store.transition(
                    job.id,
                    job.current.number,
                    JobState.ERROR,
                    native_state="UNKNOWN",
                    reason="SLURM no longer knows this job (not in squeue or sacct, and it "
                    "left no exit-code file)",
                    finished_at=utcnow(),
                )
        return changed

    def _apply(self, job: Job, status: SlurmStatus) -> bool:
        cur = job.current
        new = status.state
        if new is None or (
            new == cur.state
            and status.native_state == cur.native_state
            and (status.reason or "None") == (cur.reason or "None")
        ):
            return False
        fields: dict[str, Any] = {
            "native_state": status.native_state,
            "reason": status.reason or "None",
        }
        if new is JobState.RUNNING and cur.started_at is None:
            fields["started_at"] = utcnow()
        if is_terminal(new):
            fields.update(exit_code=status.exit_code, signal=status.signal, finished_at=utcnow())
            if cur.started_at is None:
                fields["started_at"] = fields["finished_at"]
        return self.store.transition(job.id, cur.number, new, **fields)

    def close(self) -> None:
        if self._submitters is not None:
            self._submitters.shutdown(wait=True)
            self._submitters = None
        if self._pool is not None:
            self._pool.close_all()


def _ssh_target(spec: TargetSpec, extra: SshCredentials | None = None) -> SshTarget:
    from hpcbox.infra.transport import SshTarget

    if extra is not None:
        # Handed in at run time (from a Kubernetes Secret): memory only, never stored.
        return SshTarget(
            host=spec.host.strip("[]"),
            user=spec.user,
            port=spec.port,
            key_path=None if extra.key_data else spec.key_path,
            key_data=extra.key_data,
            known_hosts=spec.known_hosts,
            known_hosts_data=extra.known_hosts,
            host_key=spec.host_key,
            password=extra.password,
            use_agent=False,
        )
    # A password is only ever taken from the environment at connection time.
    password = SlurmSettings.from_env().ssh_password_for(spec.name)
    return SshTarget(
        host=spec.host.strip("[]"),
        user=spec.user,
        port=spec.port,
        key_path=spec.key_path,
        known_hosts=spec.known_hosts,
        host_key=spec.host_key,
        password=reveal(password),
    )
