"""Profile "job": trusted batch jobs in bwrap, with SLURM-like cgroup limits.

A run is a detached process tree: ``sh`` trampoline (joins the run's cgroups,
see :mod:`hpcbox.jobs.backends.local.sandbox.trampoline`) -> bwrap -> bwrap's pid-1 reaper -> the
command. It does not depend on the launching process, which may die and be
replaced: everything needed to find the run again is in its
:class:`RunHandle` and in files next to its status file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from typing import cast

from hpcbox.core.errors import (
    InvalidInputError,
    NotFoundError,
    PermanentError,
    UnavailableError,
)
from hpcbox.infra.isolation.cgroup.base import CgroupDriver, CgroupStats
from hpcbox.infra.isolation.cgroup.detect import detect_driver
from hpcbox.infra.isolation.ids import validate_group_path, validate_safe_id
from hpcbox.infra.isolation.limits import ResourceLimits
from hpcbox.infra.isolation.procfs import is_running, read_proc_stat
from hpcbox.jobs.backends.local.sandbox import children, records
from hpcbox.jobs.backends.local.sandbox.bwrap import build_bwrap_argv
from hpcbox.jobs.backends.local.sandbox.handle import RunHandle
from hpcbox.jobs.backends.local.sandbox.outcome import Evidence, RunOutcome, decide_outcome
from hpcbox.jobs.backends.local.sandbox.request import LaunchRequest
from hpcbox.jobs.backends.local.sandbox.status import read_status
from hpcbox.jobs.backends.local.sandbox.trampoline import trampoline_argv
from hpcbox.jobs.backends.local.sandbox.waiting import wait_for_exit

__all__ = ["DEFAULT_PIDS", "SANDBOX_TASKS", "Sandbox"]

log = logging.getLogger(__name__)

#: Task limit applied when a request's ``ResourceLimits.pids`` is None (see :class:`Sandbox`).
DEFAULT_PIDS = 4096

#: Tasks the sandbox itself keeps in a run's cgroup (trampoline, bwrap, bwrap's
#: reaper); added to the pids limit so that the command gets what it asked for.
SANDBOX_TASKS = 3

# How long the trampoline may take to join its cgroups before launch gives up.
_ACK_TIMEOUT_S = 30.0
# How often a run is sampled when the kernel keeps no memory peak (cgroup v2 < 5.19).
_SAMPLE_INTERVAL_S = 0.1

_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
_STATUS_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


class Sandbox:
    """Profile "job": runs trusted batch commands with cgroup limits, detached.

    The command sees the host filesystem (as the engine's user), a private
    ``/tmp`` (a workdir inside ``/tmp`` stays visible), its own pid and IPC
    namespaces, and exactly the requested environment. Every process it
    starts, double-forked daemons included, dies when the command exits or
    when the run is killed.

    ``driver`` defaults to :func:`~hpcbox.infra.isolation.cgroup.detect_driver` (run
    lazily, so constructing never fails); ``bwrap`` to ``bwrap`` on PATH. Run
    cgroups are ``<parent_group>/<run_id>``. ``default_pids`` is the task limit
    used when ``ResourceLimits.pids`` is None; pass None to leave such runs unlimited.

    Methods are thread-safe; :meth:`poll`, :meth:`kill` and :meth:`is_alive`
    work from any process, not only the one that launched the run.
    """

    def __init__(
        self,
        *,
        driver: CgroupDriver | None = None,
        bwrap: str | None = None,
        parent_group: str = "hpcbox",
        default_pids: int | None = DEFAULT_PIDS,
    ) -> None:
        self._parent = validate_group_path(parent_group, field="parent_group")
        if default_pids is not None and (isinstance(default_pids, bool) or default_pids <= 0):
            raise InvalidInputError("must be a positive integer or None", field="default_pids")
        self._default_pids = default_pids
        self._driver = driver
        self._driver_lock = threading.Lock()
        self._bwrap = bwrap
        self._sh = "/bin/sh"
        self._env_tool = "/usr/bin/env" if os.path.exists("/usr/bin/env") else "/bin/env"

    # -- configuration -------------------------------------------------------

    @property
    def driver(self) -> CgroupDriver:
        """The cgroup driver, detected on first use; UnavailableError if none fits."""
        with self._driver_lock:
            if self._driver is None:
                self._driver = detect_driver()
            return self._driver

    def _bwrap_path(self) -> str:
        path = self._bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
        if not os.access(path, os.X_OK):
            raise UnavailableError(
                f"bubblewrap not found ({path}); install it: apt-get install bubblewrap "
                "(Debian/Ubuntu), dnf install bubblewrap (Fedora/RHEL)"
            )
        return path

    def check(self) -> None:
        """Raise UnavailableError, saying what to install or enable, unless runs can start.

        Checks bwrap and ``/bin/sh``, the cgroup controllers and the right to
        create ``parent_group``, then starts one empty sandbox.
        """
        bwrap = self._bwrap_path()
        if not os.access(self._sh, os.X_OK):
            raise UnavailableError(f"{self._sh} is missing; install a POSIX shell (dash)")
        self.driver.check(self._parent)
        smoke = [bwrap, "--unshare-pid", "--unshare-ipc", "--new-session", "--bind", "/", "/"]
        smoke += ["--proc", "/proc", "--tmpfs", "/tmp", "--", self._sh, "-c", ":"]
        try:
            done = subprocess.run(
                smoke, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UnavailableError(f"bubblewrap does not start: {exc}") from exc
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip()
            raise UnavailableError(
                f"bubblewrap cannot create namespaces here ({message}); run the engine as "
                "root or allow unprivileged user namespaces"
            )

    def describe(self) -> str:
        """One line saying which bwrap and which cgroup setup this sandbox uses."""
        driver = self.driver
        return f"bwrap {self._bwrap_path()}, cgroup {driver.name}, parent group {self._parent}"

    def _effective_limits(self, limits: ResourceLimits) -> ResourceLimits:
        pids = limits.pids if limits.pids is not None else self._default_pids
        if pids is not None:
            pids += SANDBOX_TASKS
        return ResourceLimits(cpus=limits.cpus, memory_bytes=limits.memory_bytes, pids=pids)

    # -- launching -----------------------------------------------------------

    def launch(self, req: LaunchRequest) -> RunHandle:
        """Start ``req`` detached; return once it runs inside its cgroups.

        Never waits for the command. Raises InvalidInputError for unusable
        output paths (a symlink is never followed), ConflictError if a live run
        already uses ``req.run_id``, UnavailableError if bwrap or cgroups are
        missing, PermanentError if the trampoline fails.
        """
        bwrap = self._bwrap_path()
        driver = self.driver
        group = f"{self._parent}/{req.run_id}"
        driver.create(group, self._effective_limits(req.limits))
        try:
            return self._spawn(req, bwrap, driver, group)
        except BaseException:
            with contextlib.suppress(Exception):
                driver.kill(group)
                driver.remove(group)
            raise

    def _spawn(self, req: LaunchRequest, bwrap: str, driver: CgroupDriver, group: str) -> RunHandle:
        records.remove_quietly(records.outcome_path(req.status_path))
        records.remove_quietly(records.kill_marker_path(req.status_path))
        fds: list[int] = []
        try:
            out_fd = _open(req.stdout_path, _OUTPUT_FLAGS, "stdout_path", fds)
            err_fd = _open(req.stderr_path, _OUTPUT_FLAGS, "stderr_path", fds)
            status_fd = _open(req.status_path, _STATUS_FLAGS, "status_path", fds)
            ack_r, ack_w = os.pipe()
            fds += [ack_r, ack_w]
            command = build_bwrap_argv(
                bwrap,
                argv=req.argv,
                env=req.env,
                workdir=req.workdir,
                status_fd=status_fd,
                env_tool=self._env_tool,
                ro_binds=req.ro_binds,
            )
            argv = trampoline_argv(
                self._sh,
                status_fd=status_fd,
                procs_files=driver.procs_files(group),
                command=command,
            )
            started_at = time.time()
            # No preexec_fn: the engine is multi-threaded. The trampoline's
            # stdin is the acknowledgement pipe (see trampoline protocol).
            proc = subprocess.Popen(
                argv,
                stdin=ack_w,
                stdout=out_fd,
                stderr=err_fd,
                pass_fds=(status_fd,),
                close_fds=True,
                start_new_session=True,
                env={},
                cwd="/",
            )
            os.close(ack_w)
            fds.remove(ack_w)
            try:
                stat = read_proc_stat(proc.pid)
                if stat is None:  # pragma: no cover - an unreaped child always has a stat
                    raise PermanentError(f"launched process {proc.pid} has no /proc entry")
                if not _await_ack(ack_r, _ACK_TIMEOUT_S):
                    proc.kill()
                    raise PermanentError(
                        f"the sandbox trampoline failed to join cgroup {group} (exit status "
                        f"{proc.wait()}); see {req.stderr_path}"
                    )
            except BaseException:
                # Reap it here: an abandoned Popen of a live child warns.
                proc.kill()
                proc.wait()
                raise
            children.register(proc, stat.start_ticks)
        finally:
            for fd in fds:
                os.close(fd)
        return RunHandle(
            run_id=req.run_id,
            pid=proc.pid,
            start_ticks=stat.start_ticks,
            status_path=req.status_path,
            cgroup=group,
            started_at=started_at,
        )

    # -- observing -----------------------------------------------------------

    def is_alive(self, handle: RunHandle) -> bool:
        """True while the run's process tree is running (False once it has exited)."""
        if self._cached(handle) is not None:
            return False
        proc = children.lookup(handle.pid, handle.start_ticks)
        if proc is not None:
            return proc.poll() is None
        return is_running(handle.pid, handle.start_ticks)

    def poll(self, handle: RunHandle) -> RunOutcome | None:
        """None while the run is running; once it has finished, its outcome.

        The first call after the end collects the results (kills leftovers,
        reads accounting, removes the cgroup) and caches them next to the
        status file; later calls, from any process, return the same outcome.
        Reaps the process when called in the launching process.
        """
        cached = self._cached(handle)
        if cached is not None:
            children.forget(handle.pid, handle.start_ticks)
            return cached
        if self.is_alive(handle):
            driver = self.driver
            if driver.needs_sampling:
                driver.sample(handle.cgroup)
            return None
        return self._collect(handle, ended_at=None)

    def kill(self, handle: RunHandle) -> None:
        """Kill the run's whole process tree now; safe to repeat or to call after the end."""
        if self._cached(handle) is not None:
            return
        marker = records.kill_marker_path(handle.status_path)
        with contextlib.suppress(OSError):
            records.write_json_atomic(marker, {"at": time.time()})
        driver = self.driver
        if driver.exists(handle.cgroup):
            driver.kill(handle.cgroup)
        # Normally already dead with its cgroup; covers a trampoline that
        # never reached its cgroups.
        if is_running(handle.pid, handle.start_ticks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGKILL)

    def kill_group(self, run_id: str) -> None:
        """Kill and remove the cgroup of ``run_id`` when no handle is known.

        For a launch that was interrupted before its handle was recorded:
        whatever got started is in that group. Idempotent.
        """
        group = f"{self._parent}/{validate_safe_id(run_id)}"
        driver = self.driver
        if driver.exists(group):
            driver.kill(group)
            driver.remove(group)

    def run(self, req: LaunchRequest, *, timeout: float | None = None) -> RunOutcome:
        """Launch ``req`` and wait for its outcome, killing it after ``timeout`` seconds."""
        handle = self.launch(req)
        proc = children.lookup(handle.pid, handle.start_ticks)
        if proc is None:  # pragma: no cover - launch always registers
            raise PermanentError(f"run {req.run_id} was not registered")
        try:
            if not self._wait(proc, handle, timeout):
                self.kill(handle)
                proc.wait()
        except BaseException:
            # Interrupted (e.g. KeyboardInterrupt): leave nothing running.
            self.kill(handle)
            proc.wait()
            with contextlib.suppress(Exception):
                self._collect(handle, ended_at=time.time())
            raise
        return self._collect(handle, ended_at=time.time())

    def _wait(
        self, proc: subprocess.Popen[bytes], handle: RunHandle, timeout: float | None
    ) -> bool:
        driver = self.driver
        if not driver.needs_sampling:
            return wait_for_exit(proc, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            driver.sample(handle.cgroup)
            step = _SAMPLE_INTERVAL_S
            if deadline is not None:
                step = min(step, deadline - time.monotonic())
                if step <= 0:
                    return False
            if wait_for_exit(proc, step):
                return True

    # -- collecting ----------------------------------------------------------

    def _cached(self, handle: RunHandle) -> RunOutcome | None:
        data = records.read_json(records.outcome_path(handle.status_path))
        if not isinstance(data, dict):
            return None
        try:
            return RunOutcome.from_dict(cast("dict[str, object]", data))
        except InvalidInputError:
            return None

    def _collect(self, handle: RunHandle, *, ended_at: float | None) -> RunOutcome:
        """Gather the evidence of a finished run, decide and cache its outcome.

        ``ended_at`` is the exit time when the caller saw it happen; otherwise
        it is the status file's last write (bwrap writes the exit code there
        as the command exits).
        """
        with records.locked(handle.status_path) as have_lock:
            cached = self._cached(handle)
            if cached is not None:
                children.forget(handle.pid, handle.start_ticks)
                return cached
            proc = children.lookup(handle.pid, handle.start_ticks)
            if proc is not None:
                proc.poll()
            status = read_status(handle.status_path)
            killed_at = _killed_at(handle)
            stats = self._harvest(handle.cgroup)
            if ended_at is None:
                reported = status is not None and (
                    status.exit_code is not None or status.bwrap_exit_code is not None
                )
                if reported:
                    ended_at = _mtime(handle.status_path)
                elif killed_at is not None:
                    ended_at = killed_at
                else:
                    ended_at = time.time()
            outcome = decide_outcome(
                Evidence(
                    status=status,
                    killed=killed_at is not None,
                    started_at=handle.started_at,
                    ended_at=ended_at,
                    cpu_time_s=stats.cpu_time_s,
                    peak_memory_bytes=stats.peak_memory_bytes,
                    oom_killed=stats.oom_killed,
                )
            )
            if have_lock:
                records.write_json_atomic(
                    records.outcome_path(handle.status_path), outcome.to_dict()
                )
        children.forget(handle.pid, handle.start_ticks)
        return outcome

    def _harvest(self, group: str) -> CgroupStats:
        """Kill what is left in ``group``, read its accounting and remove it.

        Normally nothing is left: the pid namespace dies with bwrap. A group
        that is already gone (host reboot) yields zero accounting.
        """
        driver = self.driver
        if not driver.exists(group):
            return CgroupStats(cpu_time_s=0.0, peak_memory_bytes=0, oom_killed=False)
        try:
            driver.kill(group)
        except PermanentError as exc:
            log.warning("leftover processes of %s: %s", group, exc)
        try:
            stats = driver.stats(group)
        except NotFoundError:
            return CgroupStats(cpu_time_s=0.0, peak_memory_bytes=0, oom_killed=False)
        try:
            driver.remove(group)
        except PermanentError as exc:
            log.warning("cgroup %s left behind: %s", group, exc)
        return stats


def _open(path: str, flags: int, field: str, fds: list[int]) -> int:
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if os.path.islink(path):
            raise InvalidInputError(
                f"{path} is a symlink; refusing to follow it", field=field
            ) from exc
        raise InvalidInputError(f"cannot open {path}: {exc.strerror}", field=field) from exc
    fds.append(fd)
    return fd


def _await_ack(fd: int, timeout: float) -> bool:
    """True once the trampoline's one-byte acknowledgement arrives on ``fd``."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(int(timeout * 1000)):
        return False
    return os.read(fd, 1) == b"x"


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return time.time()


def _killed_at(handle: RunHandle) -> float | None:
    data = records.read_json(records.kill_marker_path(handle.status_path))
    if isinstance(data, dict):
        at = data.get("at")
        if isinstance(at, int | float) and not isinstance(at, bool):
            return float(at)
    return None
