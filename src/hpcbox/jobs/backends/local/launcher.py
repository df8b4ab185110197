"""The local backend's launcher: one attempt of a job started, polled and killed
on this machine in the sandbox's "job" profile.

Each attempt gets a run directory ``$HPCBOX_HOME/jobs/<id>/<attempt>/`` holding
the script, ``stdout``, ``stderr`` and the sandbox's status file. The sandbox
runs detached, so jobs survive the process that launched them, and everything
needed to re-attach is returned as the attempt's handle. The launcher does no
bookkeeping of its own: the scheduler (:mod:`.scheduler`) owns the queue and the
states, and the launcher answers only from what it is handed (the job, and the
handle it returned at launch), so any fresh process can pick up where another left
off.
"""

from __future__ import annotations

import hashlib
import os
import signal as signals
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcbox.core.errors import InvalidInputError, PermanentError
from hpcbox.core.settings import Settings
from hpcbox.jobs.backends.local.sandbox import (
    LaunchRequest,
    ResourceLimits,
    RunHandle,
    RunOutcome,
    Sandbox,
)
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import JobState

__all__ = ["Finished", "Launched", "LocalLauncher", "classify_outcome", "machine_capacity"]

_STREAMS = ("stdout", "stderr")
_MARKER = ".hpcbox-attempt"


@dataclass(frozen=True)
class Launched:
    """A started attempt: its re-attach data, native id and run directory."""

    handle: Mapping[str, Any]
    native_id: str
    run_dir: str


@dataclass(frozen=True)
class Finished:
    """How an attempt ended, already mapped to hpcbox's states."""

    state: JobState
    native_state: str
    reason: str
    exit_code: int | None
    signal: int | None
    cpu_time: float | None
    peak_memory: int | None


def _write_new(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write a fresh file; O_EXCL|O_NOFOLLOW so that nothing planted at ``path``
    (a symlink, say) is ever written through."""
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def machine_capacity(settings: Settings) -> tuple[int, int]:
    """CPUs and bytes of memory the local queue hands out (settings, else the machine's)."""
    cpus = settings.jobs.cpus or len(os.sched_getaffinity(0)) or 1
    memory = settings.jobs.memory_bytes or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return cpus, memory


def _signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def classify_outcome(outcome: RunOutcome, *, time_limit: int | None, timed_out: bool) -> Finished:
    """Map a sandbox outcome to a job state, the way SLURM's cgroup plugin would.

    A kill by the time limit is TIMEOUT; an OOM kill anywhere in the job is
    OUT_OF_MEMORY (as SLURM reports it even when the script carried on); then
    exit code 0 is COMPLETED and anything else FAILED.
    """
    killed = outcome.signal is not None
    over_time = time_limit is not None and outcome.wall_time_s >= time_limit
    if outcome.lost:
        state, reason = JobState.FAILED, "the job's process vanished without reporting its exit"
    elif timed_out or (killed and over_time):
        state, reason = JobState.TIMEOUT, "TimeLimit"
    elif outcome.oom_killed:
        state, reason = JobState.OUT_OF_MEMORY, "OutOfMemory"
    elif outcome.exit_code == 0:
        state, reason = JobState.COMPLETED, "None"
    elif outcome.signal is not None:
        state, reason = JobState.FAILED, f"Signal {outcome.signal} ({_signal_name(outcome.signal)})"
    else:
        state, reason = JobState.FAILED, "NonZeroExitCode"
    return Finished(
        state=state,
        native_state=state.value,
        reason=reason,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        cpu_time=round(outcome.cpu_time_s, 6),
        peak_memory=outcome.peak_memory_bytes,
    )


class LocalLauncher:
    """Starts, polls and kills attempts on this machine, each in a
    :class:`~hpcbox.jobs.backends.local.sandbox.Sandbox`."""

    name = "local"

    def __init__(self, settings: Settings, *, sandbox: Sandbox | None = None) -> None:
        self.settings = settings
        self._sandbox = sandbox
        # Cgroup names must not collide between two HPCBOX_HOMEs on one machine
        # (test suites, several users): prefix them with a digest of the home.
        self._home_tag = hashlib.sha256(str(settings.home).encode()).hexdigest()[:8]

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = Sandbox()
        return self._sandbox

    # -- admission ----------------------------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        """Refuse what one node cannot run: several nodes, more CPUs or memory than
        configured, a missing working directory."""
        cpus, memory = machine_capacity(self.settings)
        res = spec.resources
        if res.nodes != 1:
            raise InvalidInputError(
                f"the local backend has one node; {res.nodes} requested",
                field="resources.nodes",
            )
        if res.cpus > cpus:
            raise InvalidInputError(
                f"{res.cpus} CPUs requested but this machine offers {cpus}",
                field="resources.cpus_per_task",
            )
        if res.memory is not None and res.memory > memory:
            raise InvalidInputError(
                f"{res.memory} bytes requested but this machine offers {memory}",
                field="resources.memory",
            )
        if spec.workdir is not None and not os.path.isdir(spec.workdir):
            raise InvalidInputError(
                f"{spec.workdir!r} is not an existing directory", field="workdir"
            )

    # -- launching ----------------------------------------------------------------

    def run_dir(self, job_id: int, attempt: int) -> Path:
        return self.settings.jobs_dir / str(job_id) / str(attempt)

    def _identity(self, job: Job) -> tuple[Path, str, str]:
        """Run directory, run id (the cgroup's name) and incarnation token of the
        current attempt, all derived from the job: nothing needs storing before a
        launch. The token (from the attempt's submission time) tells this
        attempt's traces from those an earlier database left at the same path."""
        attempt = job.current.number
        token = hashlib.sha256(job.current.submitted_at.isoformat().encode()).hexdigest()[:6]
        run_id = f"{self._home_tag}-{job.id}-{attempt}-{token}"
        return self.run_dir(job.id, attempt), run_id, token

    def was_started(self, job: Job) -> bool:
        """True when a launch of the job's current attempt may have begun.

        Answered from the attempt's own traces (not the store), so that a process
        killed in the middle of :meth:`launch` can be followed by one that never
        starts the same attempt twice.
        """
        run_dir, _run_id, token = self._identity(job)
        # The sandbox creates the status file just before it spawns the process.
        return self._owned(run_dir, token) and os.path.lexists(run_dir / "status.json")

    def abandon(self, job: Job) -> None:
        """Stop whatever a launch of the current attempt left running; safe to repeat."""
        _run_dir, run_id, _token = self._identity(job)
        self.sandbox.kill_group(run_id)

    def launch(self, job: Job) -> Launched:
        """Start the job's current attempt; return once it is started."""
        spec = job.spec
        run_dir, run_id, token = self._identity(job)
        if run_dir.exists() and not self._owned(run_dir, token):
            # Left by an earlier database at this HPCBOX_HOME: keep it, but aside.
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.stale-{int(time.time())}"))
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_new(run_dir / _MARKER, token)
        workdir = spec.workdir or str(run_dir)
        if not os.path.isdir(workdir):
            raise PermanentError(f"working directory {workdir!r} does not exist")
        argv = self._argv(spec, run_dir)
        request = LaunchRequest(
            run_id=run_id,
            argv=argv,
            env=self._environment(job),
            workdir=workdir,
            stdout_path=str(run_dir / "stdout"),
            stderr_path=str(run_dir / "stderr"),
            status_path=str(run_dir / "status.json"),
            limits=ResourceLimits(
                cpus=float(spec.resources.cpus),
                memory_bytes=spec.resources.memory,
                pids=self.settings.jobs.default_pids_limit,
            ),
            # The stored script must stay visible even when HPCBOX_HOME is under
            # /tmp, which is private inside the sandbox.
            ro_binds=(str(run_dir / "script"),) if spec.script is not None else (),
        )
        handle = self.sandbox.launch(request)
        return Launched(handle=handle.to_dict(), native_id=str(handle.pid), run_dir=str(run_dir))

    @staticmethod
    def _owned(run_dir: Path, token: str) -> bool:
        """True when ``run_dir`` holds this attempt's marker. The job can write in its
        run directory, so the marker is read without following a symlink."""
        try:
            fd = os.open(run_dir / _MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as handle:
            return handle.read(64) == token.encode()

    def _argv(self, spec: JobSpec, run_dir: Path) -> list[str]:
        if spec.script is None:
            return list(spec.command or [])
        path = run_dir / "script"
        _write_new(path, spec.script, mode=0o700)
        if spec.script.startswith("#!"):
            return [str(path)]
        return ["/bin/bash", str(path)]

    def _environment(self, job: Job) -> dict[str, str]:
        spec = job.spec
        base = {
            "PATH": os.environ.get("PATH", _DEFAULT_PATH),
            "HOME": os.environ.get("HOME", "/"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TMPDIR": "/tmp",
        }
        for key in ("USER", "LOGNAME", "TERM", "TZ"):
            if key in os.environ:
                base[key] = os.environ[key]
        base.update(
            HPCBOX_JOB_ID=str(job.id),
            HPCBOX_JOB_NAME=job.name,
            HPCBOX_ATTEMPT=str(job.current.number),
            HPCBOX_CPUS=str(spec.resources.cpus),
            HPCBOX_NTASKS=str(spec.resources.ntasks),
        )
        base.update(spec.env)
        return base

    # -- watching -----------------------------------------------------------------

    def poll(self, job: Job, handle: Mapping[str, Any], *, timed_out: bool) -> Finished | None:
        """None while the attempt runs; how it ended once it has."""
        outcome = self.sandbox.poll(RunHandle.from_dict(handle))
        if outcome is None:
            return None
        return classify_outcome(
            outcome, time_limit=job.spec.resources.time_limit, timed_out=timed_out
        )

    def is_alive(self, handle: Mapping[str, Any]) -> bool:
        return self.sandbox.is_alive(RunHandle.from_dict(handle))

    def pid(self, handle: Mapping[str, Any]) -> int:
        return int(handle["pid"])

    def kill(self, handle: Mapping[str, Any]) -> None:
        """Stop the attempt's whole process tree; safe to repeat."""
        self.sandbox.kill(RunHandle.from_dict(handle))

    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        """Where the attempt's ``stdout`` or ``stderr`` is written."""
        if stream not in _STREAMS:
            raise InvalidInputError("stream must be 'stdout' or 'stderr'", field="stream")
        return str(self.run_dir(job.id, attempt) / stream)
