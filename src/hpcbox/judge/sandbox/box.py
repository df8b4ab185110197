"""A warm, one-shot untrusted box: takes files, ONE run, gives back files, is destroyed.

A :class:`WarmBox` is a started sandbox whose PID 1 is a supervisor (the compiled
one, ``supervisor.c``, or ``_supervisor.py``) blocked on a request pipe, inside a
cgroup of its own. It is started by its factory (:mod:`.factory`) in one of the
ways of :mod:`.start_bwrap` and :mod:`.start_forked`; it takes files
(:meth:`WarmBox.write_file`), ONE run (:meth:`WarmBox.run`), gives back files
(:meth:`WarmBox.read_file`) and is destroyed; it is never reused. The run pays
only for a fork and an exec.

Host-side file access goes through a directory descriptor of the sandbox's
``/box`` (reached via ``/proc/<pid>/root``) and :mod:`.safefs`, so a symlink the
program planted is never followed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

from hpcbox.core.errors import ConflictError, PermanentError
from hpcbox.infra.isolation.cgroup import CgroupDriver, CgroupStats
from hpcbox.infra.isolation.limits import ResourceLimits
from hpcbox.judge.sandbox import safefs
from hpcbox.judge.sandbox.argv import BOX_DIR
from hpcbox.judge.sandbox.groups import in_group
from hpcbox.judge.sandbox.reaper import Reaper
from hpcbox.judge.sandbox.report import Report
from hpcbox.judge.sandbox.request import encode_request
from hpcbox.judge.sandbox.spawn import Spawner
from hpcbox.judge.sandbox.spec import RunResult, RunSpec
from hpcbox.judge.sandbox.watch import Watch

__all__ = ["IDLE_LIMITS", "BoxContext", "WarmBox"]

log = logging.getLogger(__name__)

#: ResourceLimits of an idle box (before its run's limits are known).
IDLE_LIMITS = ResourceLimits(memory_bytes=64 * 1024 * 1024, pids=8)
#: How long a box may take to say it is ready.
_START_TIMEOUT_S = 30.0
#: Granted on top of a run's limit and the idle box's usage: the supervisor's fork.
_FORK_SLACK_BYTES = 2 * 1024 * 1024
#: Tasks in a box's cgroup besides the program: bwrap and the supervisor (a forked
#: box has only its PID 1 there, so one to spare).
_SANDBOX_TASKS = 2
#: How long the reaper waits for a forked box's SIGKILLed PID 1 to be gone before it
#: falls back to killing the box's group process by process.
_PID1_EXIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BoxContext:
    """A sandbox factory's side of its boxes: what every box, and every way of
    starting one, shares. Runs execute as ``host_uid`` on the host; ``box_bytes``
    and ``tmp_bytes`` cap the tmpfs ``/box`` and ``/tmp``; at most ``run_slots``
    programs run at once (None: no bound)."""

    rootfs: str
    host_uid: int
    box_bytes: int
    tmp_bytes: int
    driver: CgroupDriver
    #: Paths of bwrap and setpriv.
    tools: tuple[str, str]
    spawner: Spawner
    reaper: Reaper
    run_slots: threading.BoundedSemaphore | None


class WarmBox:
    """One started sandbox; serves exactly one :meth:`run`, then must be destroyed.

    Not thread-safe: one owner at a time (the pool hands each box to one caller).
    ``proc`` is the box's bwrap when it has one of its own (None: forked from a
    fork-server); ``compiled``: whether PID 1 is the compiled supervisor.
    """

    def __init__(
        self,
        context: BoxContext,
        proc: subprocess.Popen[bytes] | None,
        group: str,
        req_w: int,
        res_r: int,
        out_r: int,
        err_r: int,
        *,
        compiled: bool,
    ) -> None:
        self._context = context
        self._proc = proc
        self.group = group
        self._req_w: int | None = req_w
        self._res_r: int | None = res_r
        self._out_r: int | None = out_r
        self._err_r: int | None = err_r
        self._dir_fd: int | None = None
        self._pidfd: int | None = None
        #: A forked box's PID 1, held from destroy() until the reaper saw it end.
        self._reap_pidfd: int | None = None
        self.supervisor_pid: int | None = None
        self._used = False
        self._destroyed = False
        #: Whether PID 1 is the compiled supervisor (else the Python one).
        self.compiled = compiled

    # -- start-up -------------------------------------------------------------

    def await_ready(self, info_r: int) -> None:
        """Wait for bwrap's info (on ``info_r``) and the supervisor's ready line,
        then :meth:`attach`; PermanentError, saying why, if the box did not start."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        info = _read_json_until(info_r, deadline)
        pid = info.get("child-pid") if info else None
        if not isinstance(pid, int):
            raise PermanentError(f"the sandbox did not start: {self._startup_error()}")
        ready = _read_json_until(_need(self._res_r), deadline)
        if not ready or ready.get("ready") != 1:
            raise PermanentError(f"the sandbox supervisor did not start: {self._startup_error()}")
        self.attach(pid)

    def hold(self, pid: int) -> None:
        """Hold PID 1 ``pid`` by a pidfd from now on (:meth:`destroy` closes it),
        before it is moved into this box's group."""
        self._pidfd = os.pidfd_open(pid)

    def attach(self, pid: int) -> None:
        """Hold PID 1 ``pid`` (ready, in this box's group) by a pidfd (the one of
        :meth:`hold`, or one opened now), and ``/box``."""
        self.supervisor_pid = pid
        if self._pidfd is None:
            self._pidfd = os.pidfd_open(pid)
        # The pid named a live supervisor when it said ready; had it died since and
        # its pid been reused, the process the pidfd holds is in no box's group.
        if not in_group(pid, self.group):
            raise PermanentError("the sandbox supervisor is gone")
        # /proc/<pid>/root is the sandbox's root; "box" in it is a mount point the
        # program cannot replace (read-only parent, no mount syscalls).
        self._dir_fd = os.open(
            f"/proc/{pid}/root{BOX_DIR}",
            os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
        )

    def _startup_error(self) -> str:
        err_r = _need(self._err_r)
        os.set_blocking(err_r, False)
        try:
            text = os.read(err_r, 4096).decode(errors="replace").strip()
        except BlockingIOError:
            text = ""
        status = None if self._proc is None else self._proc.poll()
        return text or f"exit status {status}"

    # -- files -------------------------------------------------------------

    def _fd(self) -> int:
        if self._dir_fd is None or self._destroyed:
            raise ConflictError("this sandbox is destroyed")
        return self._dir_fd

    def write_file(self, name: str, data: bytes, *, mode: int = 0o644) -> None:
        """Create ``/box/NAME`` with ``data`` (never through a symlink)."""
        uid = self._context.host_uid
        with safefs.as_fsuid(uid, uid):
            safefs.write_beneath(self._fd(), name, data, mode=mode)

    def read_file(self, name: str, *, max_bytes: int) -> bytes:
        """At most ``max_bytes`` of the regular file ``/box/NAME`` (never through a symlink)."""
        return safefs.read_beneath(self._fd(), name, max_bytes=max_bytes)

    def list_files(self) -> list[tuple[str, int]]:
        """The regular files directly in ``/box`` with their permission bits."""
        return safefs.list_regular_files(self._fd())

    # -- the run -----------------------------------------------------------

    def run(self, spec: RunSpec) -> RunResult:
        """Run ``spec`` once in this box and return its result; the box is then spent.

        Never raises for what the program does; raises ConflictError if the box
        was already used, PermanentError if the sandbox itself broke.
        """
        if self._used or self._destroyed:
            raise ConflictError("a warm sandbox serves exactly one run")
        self._used = True
        slots = self._context.run_slots
        # The slot is held from the measurements before the run to those after
        # it, so that nothing waits between a baseline and its run.
        with slots if slots is not None else contextlib.nullcontext():
            report, watch, before, after, baseline = self._run_measured(spec)
        limits = spec.limits
        cpu = max(0.0, after.cpu_time_s - before.cpu_time_s)
        peak = max(0, after.peak_memory_bytes - baseline)
        # Only what the host saw itself decides limits and times; the report, which
        # a program could try to forge, gives just how the program ended.
        if report is None:
            # Killed before it could report (SIGKILL), or its report was unusable
            # (report_error: a runtime error of the program, never of the judge).
            report = Report(signal=None if watch.report_error else signal.SIGKILL)
        return RunResult(
            exit_code=report.exit_code,
            signal=report.signal,
            cpu_time_s=cpu,
            wall_time_s=watch.finished_at - watch.start,
            peak_memory_bytes=peak,
            stdout=bytes(watch.out),
            stderr=bytes(watch.err),
            oom_killed=after.oom_killed and not before.oom_killed,
            cpu_exceeded=watch.cpu_exceeded or cpu > limits.cpu_time_s + limits.cpu_extra_time_s,
            wall_exceeded=watch.wall_exceeded,
            output_exceeded=watch.output_exceeded,
            exec_error=report.exec_error,
            report_error=watch.report_error,
        )

    def _run_measured(
        self, spec: RunSpec
    ) -> tuple[Report | None, Watch, CgroupStats, CgroupStats, int]:
        """The run itself, with the box's usage just before and just after it."""
        limits = spec.limits
        driver = self._context.driver
        before = driver.stats(self.group)
        baseline = driver.memory_baseline(self.group)
        # The program gets its own limit: on top of it only what the idle box holds
        # now (bwrap and the supervisor, just measured) and a little for the fork,
        # so that a program over its limit is stopped there, not megabytes later.
        driver.update(
            self.group,
            ResourceLimits(
                memory_bytes=limits.memory_bytes + baseline + _FORK_SLACK_BYTES,
                pids=limits.processes + _SANDBOX_TASKS,
            ),
        )
        data = encode_request(spec, compiled_supervisor=self.compiled)
        start = time.monotonic()
        req_w = _need(self._req_w)
        view = memoryview(data)
        while view:
            view = view[os.write(req_w, view) :]
        os.close(req_w)
        self._req_w = None
        watch = Watch(
            result_fd=_need(self._res_r),
            stdout_fd=_need(self._out_r),
            stderr_fd=_need(self._err_r),
            limits=limits,
            cpu_before=before.cpu_time_s,
            start=start,
            cpu_time=self.cpu_time,
            kill=self.kill,
        )
        report = watch.wait()
        after = driver.stats(self.group)
        self.kill()
        return report, watch, before, after, baseline

    def cpu_time(self) -> float:
        return self._context.driver.stats(self.group).cpu_time_s

    # -- teardown ------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the supervisor: as PID 1 of the pid namespace, its death kills
        every process of the sandbox. Immediate; idempotent.

        Through a pidfd taken when the box became ready, never a bare pid: a pid
        is reused once its process is reaped, a pidfd keeps naming that process.
        """
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def destroy(self) -> None:
        """Kill everything in the box now; the cgroup is removed in the background."""
        if self._destroyed:
            return
        self._destroyed = True
        self.kill()
        if self._proc is None:  # forked: the reaper waits on PID 1 (see _reap_forked)
            self._reap_pidfd, self._pidfd = self._pidfd, None
        for attr in ("_req_w", "_res_r", "_out_r", "_err_r", "_dir_fd", "_pidfd"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)
        self._context.reaper.reap_later(self)

    def reap(self) -> None:
        """After :meth:`destroy` (on the reaper's thread): wait for the box's
        processes to end, then remove its cgroup."""
        driver = self._context.driver
        try:
            if self._reap_pidfd is not None and self._reap_forked(driver):
                return
            # A forked box's PID 1 is the fork-server's child, reaped there: killing
            # the group until it is empty is all that is left to do.
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    driver.kill(self.group)
                    self._proc.kill()
                    self._proc.wait()
            driver.kill(self.group)
            driver.remove(self.group)
        except Exception as exc:
            log.warning("sandbox %s not cleaned up: %s", self.group, exc)

    def _reap_forked(self, driver: CgroupDriver) -> bool:
        """Remove a forked box's group once its PID 1 is gone; False when the group
        does not go (then the caller kills it process by process).

        PID 1 of the box's own pid namespace was SIGKILLed by destroy(), and the
        kernel kills every other process of a namespace whose init dies; nothing
        outside the namespace is ever moved into the box's group, which therefore
        empties by itself. That spares the freeze, list and kill loop, whose reads
        of each hierarchy's ``cgroup.procs`` also make the kernel build, then free, a
        list of pids each time.
        """
        pidfd, self._reap_pidfd = self._reap_pidfd, None
        if pidfd is None:
            return False
        try:
            # A pidfd turns readable when its process has ended (poll, not select:
            # a busy server's descriptors may number over select's 1024).
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            ended = bool(poller.poll(_PID1_EXIT_TIMEOUT_S * 1000))
        finally:
            os.close(pidfd)
        if not ended:
            return False
        try:
            driver.remove(self.group)  # retried while the last processes leave
        except PermanentError as exc:
            log.warning("sandbox %s did not empty with its PID 1: %s", self.group, exc)
            return False
        return True

    def __enter__(self) -> WarmBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def _need(fd: int | None) -> int:
    if fd is None:
        raise ConflictError("this sandbox is destroyed")
    return fd


def _read_json_until(fd: int, deadline: float) -> dict[str, object] | None:
    """One JSON object from ``fd`` (bwrap's info or a supervisor line), or None on
    EOF or at ``deadline`` (a ``time.monotonic()`` value)."""
    decoder = json.JSONDecoder()
    buf = ""
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            buf += chunk.decode(errors="replace")
            try:
                obj, _ = decoder.raw_decode(buf.lstrip())
            except json.JSONDecodeError:
                continue
            return obj if isinstance(obj, dict) else None
    finally:
        sel.close()
