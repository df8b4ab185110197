"""Warm, one-shot untrusted sandboxes: prepare ahead, run once, destroy.

:meth:`UntrustedSandbox.prepare` starts a sandbox whose PID 1 is a supervisor
(:mod:`._supervisor`) blocked on a request pipe, inside its own cgroup. A
:class:`WarmBox` then takes files (:meth:`WarmBox.write_file`), ONE run
(:meth:`WarmBox.run`), gives back files (:meth:`WarmBox.read_file`) and is
destroyed; it is never reused. The run pays only for a fork and an exec.

Host-side file access goes through a directory descriptor of the sandbox's
``/box`` (reached via ``/proc/<pid>/root``) and :mod:`.safefs`, so a symlink the
program planted is never followed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import logging
import marshal
import math
import os
import queue
import re
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hpcbox.core.errors import ConflictError, PermanentError, UnavailableError
from hpcbox.infra.isolation.cgroup._fs import read_int, write_value
from hpcbox.infra.isolation.cgroup.base import CgroupDriver, CgroupStats
from hpcbox.infra.isolation.cgroup.detect import detect_driver
from hpcbox.infra.isolation.cgroup.v1 import CgroupV1Driver
from hpcbox.infra.isolation.cgroup.v2 import CgroupV2Driver
from hpcbox.infra.isolation.ids import validate_group_path
from hpcbox.infra.isolation.limits import Limits
from hpcbox.judge.sandbox import compiled, safefs
from hpcbox.judge.sandbox.argv import BOX_DIR, BoxCommand, build_argv
from hpcbox.judge.sandbox.argv import PATH as _PATH
from hpcbox.judge.sandbox.seccomp import compile_filter, filter_memfd
from hpcbox.judge.sandbox.spec import RunLimits, RunResult, RunSpec
from hpcbox.judge.sandbox.zygote import Zygote

__all__ = [
    "MAX_REPORT_BYTES",
    "UntrustedSandbox",
    "WarmBox",
    "parse_report",
]

log = logging.getLogger(__name__)

#: Granted on top of a run's limit and the idle box's usage: the supervisor's fork.
_FORK_SLACK_BYTES = 2 * 1024 * 1024
#: Tasks in a box's cgroup besides the program: bwrap and the supervisor (a forked
#: box has only its PID 1 there, so one to spare).
_SANDBOX_TASKS = 2
#: Limits of the fork-server's own group: it, and each new box until it is moved out.
_ZYGOTE_LIMITS = Limits(memory_bytes=512 * 1024 * 1024, pids=256)
#: Limits of an idle box (before its run's limits are known).
_IDLE_LIMITS = Limits(memory_bytes=64 * 1024 * 1024, pids=8)
_START_TIMEOUT_S = 30.0
#: How often CPU time is checked against the limit while a run lasts.
_CPU_POLL_S = 0.05
#: How long output may keep flowing after the program was reported finished or killed.
_DRAIN_TIMEOUT_S = 2.0
#: How long the reaper waits for a forked box's SIGKILLed PID 1 to be gone before it
#: falls back to killing the box's group process by process.
_PID1_EXIT_TIMEOUT_S = 5.0
#: Longest result line accepted from a box's supervisor (a real one is < 30 KiB).
MAX_REPORT_BYTES = 64 * 1024
#: How long after the host's wall limit the supervisor's own deadline kills the run
#: (a backstop for a host that died or hangs; the host normally kills first).
_BACKSTOP_GRACE_S = 5
#: Sibling factories' parent groups: ``hpcbox-judge/<pid>-<8 hex>``.
_JUDGE_ROOT = "hpcbox-judge"
_STALE_PARENT = re.compile(r"^(\d+)-[0-9a-f]{8}$")
_SUPERVISOR_SOURCE = (Path(__file__).parent / "_supervisor.py").read_text(encoding="utf-8")


class UntrustedSandbox:
    """Factory of warm boxes on one runtime root filesystem.

    ``rootfs`` must contain ``/usr/bin/python3`` and an empty ``/box`` directory
    (see ``hpcbox judge setup``). Runs execute as ``host_uid`` on the host (an
    unprivileged uid, ``nobody`` by default) and as uid 1000 inside. The engine
    must be root (cgroups, dropping to ``host_uid``). ``box_bytes`` and
    ``tmp_bytes`` cap the tmpfs ``/box`` and ``/tmp``; what is written there
    counts towards the run's memory, as any tmpfs page does.
    """

    def __init__(
        self,
        rootfs: Path,
        *,
        driver: CgroupDriver | None = None,
        parent_group: str | None = None,
        host_uid: int = 65534,
        box_bytes: int = 64 * 1024 * 1024,
        tmp_bytes: int = 16 * 1024 * 1024,
        fork_server: bool = False,
        fork_env: Mapping[str, str] | None = None,
        max_running: int | None = None,
        compiled_fork_server: bool = True,
    ) -> None:
        self.rootfs = Path(rootfs)
        self._driver = driver
        self._parent = validate_group_path(
            parent_group or f"hpcbox-judge/{os.getpid()}-{secrets.token_hex(4)}",
            field="parent_group",
        )
        self.host_uid = host_uid
        self.box_bytes = box_bytes
        self.tmp_bytes = tmp_bytes
        self._counter = itertools.count(1)
        self._reap_queue: queue.SimpleQueue[WarmBox | None] = queue.SimpleQueue()
        self._reaper: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._build_lock = threading.Lock()
        self._supervisor_fd: int | None = None
        self._supervisor_tried = False
        # bwrap runs with --die-with-parent, whose signal follows the THREAD that
        # forked it: every box is spawned from this one long-lived thread, so that
        # a short-lived caller (a pool refill, a request thread) exiting kills none.
        self._spawner: concurrent.futures.ThreadPoolExecutor | None = None
        self._swept = False
        self._tool_paths: tuple[str | None, str | None] | None = None
        #: Whether :meth:`prepare` forks boxes from the fork-server by default
        #: (else each box is started by its own bwrap); the fork-server, once started.
        self.fork_server = fork_server
        #: At most ``max_running`` programs run at once (None: no bound), however
        #: many callers prepare, fill and tear down boxes meanwhile: with more
        #: judging threads than CPUs, runs must not stretch each other's wall times.
        self.run_slots = (
            threading.BoundedSemaphore(max_running) if max_running is not None else None
        )
        #: The fork-server's environment: ``python3 -B FILE`` runs with exactly
        #: this one run in its interpreter, others are exec'd.
        self.fork_env = dict(fork_env) if fork_env is not None else {"PATH": _PATH}
        #: Whether boxes that are not forked from the (Python) fork-server are forked
        #: from the compiled supervisor's fork-server (``supervisor.c``), where the
        #: rootfs can build it, rather than each started by a bwrap of its own.
        self.compiled_fork_server = compiled_fork_server
        #: The fork-servers once started: the Python one (``False``) and the
        #: compiled one (``True``), and their cgroups.
        self._zygotes: dict[bool, Zygote] = {}
        self._zygote_groups: dict[bool, str] = {}
        self._zygote_lock = threading.Lock()

    @property
    def driver(self) -> CgroupDriver:
        with self._lock:
            if self._driver is None:
                self._driver = detect_driver()
            return self._driver

    def check(self) -> None:
        """Raise UnavailableError, saying what is missing, unless boxes can start."""
        if os.geteuid() != 0:
            raise UnavailableError("the untrusted sandbox needs root (cgroups, uid drop)")
        for tool in ("bwrap", "setpriv"):
            if shutil.which(tool) is None:
                raise UnavailableError(
                    f"{tool} not found; install it: apt-get install bubblewrap util-linux"
                )
        if not (self.rootfs / "usr/bin/python3").exists() or not (self.rootfs / "box").is_dir():
            raise UnavailableError(
                f"{self.rootfs} is not a judge runtime root filesystem; run: hpcbox judge setup"
            )
        compile_filter()
        self.driver.check(self._parent)

    def prepare(self, *, forked: bool | None = None) -> WarmBox:
        """Start one warm box and return once its supervisor is ready.

        ``forked``: fork it from the Python fork-server (``_zygote.py``: a box costs
        a few forks of an interpreter, and ``python3 -B FILE`` runs in the
        interpreter already started); else (for programs that are exec'd) fork it
        from the compiled fork-server (``supervisor.c``: forks of a small C
        program) when ``compiled_fork_server`` and the rootfs can build it, or
        start it with a bwrap of its own; None: the factory's ``fork_server``.

        Raise UnavailableError when bwrap, setpriv, cgroups or the rootfs are
        unusable, PermanentError when the sandbox fails to start.
        """
        if self._closed:
            raise UnavailableError("the sandbox factory is closed")
        if self.fork_server if forked is None else forked:
            return self._prepare_forked(compiled=False)
        supervisor = self._compiled_supervisor()
        if self.compiled_fork_server and supervisor is not None:
            return self._prepare_forked(compiled=True)
        return self._prepare(supervisor)

    def _prepare_forked(self, *, compiled: bool) -> WarmBox:
        driver = self.driver
        zygote = self._running_zygote(driver, compiled=compiled)
        group = f"{self._parent}/box-{next(self._counter)}"
        driver.create(group, _IDLE_LIMITS)
        try:
            forked = zygote.fork_box()
        except BaseException:
            with contextlib.suppress(Exception):
                driver.remove(group)
            raise
        box = WarmBox(
            self, None, group, forked.request_w, forked.result_r, forked.stdout_r, forked.stderr_r
        )
        box.compiled = True  # the fork-server reads the compiled supervisor's requests
        try:
            # Held by a pidfd before it is moved: the pid names the box's PID 1,
            # blocked on its request (it exits only when killed); destroy() closes it.
            box._pidfd = os.pidfd_open(forked.pid)
            for procs in driver.procs_files(group):
                write_value(procs, str(forked.pid))
            box._attach(forked.pid, box._pidfd)
        except BaseException:
            box.destroy()
            raise
        return box

    def _sweep_once(self, driver: CgroupDriver) -> None:
        """Remove dead judges' groups, the first time this factory starts anything."""
        with self._lock:
            sweep, self._swept = not self._swept, True
        if sweep:
            sweep_stale_groups(driver)

    def _running_zygote(self, driver: CgroupDriver, *, compiled: bool) -> Zygote:
        """A fork-server (the compiled one, or the Python one), started (again, if
        it died) on first use."""
        with self._zygote_lock:
            zygote = self._zygotes.get(compiled)
            if zygote is not None and zygote.alive():
                return zygote
            if zygote is not None:
                log.warning("a sandbox fork-server died; starting a new one")
                self._stop_zygote(compiled)
            self._sweep_once(driver)
            bwrap, setpriv = self._tools()
            if bwrap is None or setpriv is None:
                raise UnavailableError("bwrap and setpriv are needed: apt-get install bubblewrap")
            group = f"{self._parent}/zygote-{next(self._counter)}"
            driver.create(group, _ZYGOTE_LIMITS)
            try:
                zygote = Zygote(
                    rootfs=str(self.rootfs),
                    host_uid=self.host_uid,
                    box_bytes=self.box_bytes,
                    tmp_bytes=self.tmp_bytes,
                    tools=(bwrap, setpriv),
                    env={"PATH": _PATH} if compiled else self.fork_env,
                    procs_files=driver.procs_files(group),
                    spawn=self._spawn,
                    compiled_fd=self._supervisor_fd if compiled else None,
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    driver.kill(group)
                    driver.remove(group)
                raise
            self._zygotes[compiled] = zygote
            self._zygote_groups[compiled] = group
            return zygote

    def _stop_zygote(self, compiled: bool) -> None:
        """Stop one fork-server (its boxes die with it) and remove its group."""
        zygote = self._zygotes.pop(compiled, None)
        group = self._zygote_groups.pop(compiled, None)
        if zygote is not None:
            zygote.close()
        if group is not None:
            with contextlib.suppress(Exception):
                self.driver.kill(group)
                self.driver.remove(group)

    def _prepare(self, supervisor_fd: int | None) -> WarmBox:
        driver = self.driver
        self._sweep_once(driver)
        group = f"{self._parent}/box-{next(self._counter)}"
        driver.create(group, _IDLE_LIMITS)
        try:
            return self._start(driver, group, supervisor_fd)
        except BaseException:
            with contextlib.suppress(Exception):
                driver.kill(group)
                driver.remove(group)
            raise

    def _compiled_supervisor(self) -> int | None:
        """The compiled supervisor's descriptor, built on first use; None (the
        Python supervisor) when the rootfs cannot build it."""
        with self._build_lock:
            if not self._supervisor_tried:
                self._supervisor_tried = True
                try:
                    self._supervisor_fd = self._build_supervisor()
                except Exception as exc:  # the Python supervisor still works
                    log.warning("compiled sandbox supervisor unavailable: %s", exc)
            return self._supervisor_fd

    def _build_supervisor(self) -> int | None:
        if not (self.rootfs / "usr/bin/gcc").exists():
            return None
        env = {"PATH": "/usr/bin:/bin"}
        limits = RunLimits(cpu_time_s=30, wall_time_s=60, memory_bytes=512 * 1024 * 1024)
        static = compiled.COMPILE_ARGV
        for argv in (static, tuple(a for a in static if a != "-static")):
            with self._prepare(None) as box:
                box.write_file("supervisor.c", compiled.SOURCE)
                done = box.run(RunSpec(argv=argv, env=env, limits=limits))
                if done.exit_code != 0:
                    continue
                binary = box.read_file("supervisor", max_bytes=32 * 1024 * 1024)
            fd = compiled.sealed_executable(binary)
            try:  # one run through it before any real box depends on it
                with self._prepare(fd) as box:
                    check = box.run(RunSpec(argv=("true",), env=env))
            except Exception:
                os.close(fd)
                raise
            if check.exit_code == 0:
                return fd
            os.close(fd)
            raise PermanentError(f"the compiled supervisor failed its check: {check}")
        raise PermanentError(f"gcc could not build the supervisor: {done.stderr[-2000:]!r}")

    def _start(self, driver: CgroupDriver, group: str, supervisor_fd: int | None) -> WarmBox:
        bwrap, setpriv = self._tools()
        if bwrap is None or setpriv is None:
            raise UnavailableError("bwrap and setpriv are needed: apt-get install bubblewrap")
        child_fds: list[int] = []
        host_fds: list[int] = []
        try:
            req_r, req_w = os.pipe()
            res_r, res_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            info_r, info_w = os.pipe()
            sec = filter_memfd()
            child_fds += [req_r, res_w, out_w, err_w, info_w, sec]
            host_fds += [req_w, res_r, out_r, err_r, info_r]
            for fd in host_fds:
                os.set_inheritable(fd, False)
            argv = build_argv(
                BoxCommand(
                    sh="/bin/sh",
                    setpriv=setpriv,
                    bwrap=bwrap,
                    host_uid=self.host_uid,
                    rootfs=str(self.rootfs),
                    box_bytes=self.box_bytes,
                    tmp_bytes=self.tmp_bytes,
                    procs_files=driver.procs_files(group),
                    seccomp_fd=sec,
                    info_fd=info_w,
                    request_fd=req_r,
                    result_fd=res_w,
                    stdout_fd=out_w,
                    stderr_fd=err_w,
                    supervisor_source=_SUPERVISOR_SOURCE,
                    supervisor_exec=(
                        None if supervisor_fd is None else f"/proc/self/fd/{supervisor_fd}"
                    ),
                )
            )
            shared = () if supervisor_fd is None else (supervisor_fd,)
            proc = self._spawn(
                lambda: subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err_w,
                    pass_fds=(*child_fds, *shared),
                    close_fds=True,
                    start_new_session=True,
                    env={},
                    cwd="/",
                )
            )
        except BaseException:
            for fd in child_fds + host_fds:
                os.close(fd)
            raise
        for fd in child_fds:
            os.close(fd)
        box = WarmBox(self, proc, group, req_w, res_r, out_r, err_r)
        box.compiled = supervisor_fd is not None
        try:
            box._await_ready(info_r)
        except BaseException:
            box.destroy()
            raise
        finally:
            os.close(info_r)
        return box

    def _tools(self) -> tuple[str | None, str | None]:
        """Paths of bwrap and setpriv, looked up on PATH once (a lookup is a dozen
        stat calls, and every box needs both)."""
        if self._tool_paths is None or None in self._tool_paths:
            self._tool_paths = (shutil.which("bwrap"), shutil.which("setpriv"))
        return self._tool_paths

    def _spawn(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._spawner is None:
                self._spawner = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="hpcbox-box-spawner"
                )
            spawner = self._spawner
        return spawner.submit(start).result()

    # -- teardown ---------------------------------------------------------

    def _reap_later(self, box: WarmBox) -> None:
        with self._lock:
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(
                    target=self._reap_loop, name="hpcbox-box-reaper", daemon=True
                )
                self._reaper.start()
        self._reap_queue.put(box)

    def _reap_loop(self) -> None:
        while True:
            box = self._reap_queue.get()
            if box is None:
                return
            box._reap()

    def close(self) -> None:
        """Wait until every destroyed box is reaped and its cgroup removed."""
        self._closed = True
        with self._zygote_lock:
            for compiled in list(self._zygotes):
                self._stop_zygote(compiled)
        with self._lock:
            reaper = self._reaper
        if reaper is not None and reaper.is_alive():
            self._reap_queue.put(None)
            reaper.join()
        with contextlib.suppress(Exception):
            self.driver.remove(self._parent)
        with self._lock:
            spawner, self._spawner = self._spawner, None
        if spawner is not None:  # its exit kills (die-with-parent) any box left
            spawner.shutdown(wait=True)
        with self._build_lock:
            if self._supervisor_fd is not None:
                os.close(self._supervisor_fd)
                self._supervisor_fd = None


@dataclass
class _Usage:
    cpu_s: float
    peak: int


class WarmBox:
    """One started sandbox; serves exactly one :meth:`run`, then must be destroyed.

    Not thread-safe: one owner at a time (the pool hands each box to one caller).
    """

    def __init__(
        self,
        factory: UntrustedSandbox,
        proc: subprocess.Popen[bytes] | None,
        group: str,
        req_w: int,
        res_r: int,
        out_r: int,
        err_r: int,
    ) -> None:
        self._factory = factory
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
        self.compiled = False

    # -- start-up -------------------------------------------------------------

    def _await_ready(self, info_r: int) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        info = _read_json_until(info_r, deadline)
        pid = info.get("child-pid") if info else None
        if not isinstance(pid, int):
            raise PermanentError(f"the sandbox did not start: {self._startup_error()}")
        ready = _read_json_until(_need(self._res_r), deadline)
        if not ready or ready.get("ready") != 1:
            raise PermanentError(f"the sandbox supervisor did not start: {self._startup_error()}")
        self._attach(pid)

    def _attach(self, pid: int, pidfd: int | None = None) -> None:
        """Hold PID 1 ``pid`` (ready, in this box's group) by a pidfd (``pidfd``, or
        one opened now), and ``/box``."""
        self.supervisor_pid = pid
        self._pidfd = os.pidfd_open(pid) if pidfd is None else pidfd
        # The pid named a live supervisor when it said ready; had it died since and
        # its pid been reused, the process the pidfd holds is in no box's group.
        if not _in_group(pid, self.group):
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
        uid = self._factory.host_uid
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
        slots = self._factory.run_slots
        # The slot is held from the measurements before the run to those after
        # it, so that nothing waits between a baseline and its run.
        with slots if slots is not None else contextlib.nullcontext():
            report, watch, before, after, baseline, start = self._run_measured(spec)
        limits = spec.limits
        cpu = max(0.0, after.cpu_time_s - before.cpu_time_s)
        peak = max(0, after.peak_memory_bytes - baseline)
        # Only what the host saw itself decides limits and times; the report, which
        # a program could try to forge, gives just how the program ended.
        if report is None:
            # Killed before it could report (SIGKILL), or its report was unusable
            # (report_error: a runtime error of the program, never of the judge).
            report = _Report(signal=None if watch.report_error else signal.SIGKILL)
        return RunResult(
            exit_code=report.exit_code,
            signal=report.signal,
            cpu_time_s=cpu,
            wall_time_s=watch.finished_at - start,
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
    ) -> tuple[_Report | None, _Watch, CgroupStats, CgroupStats, int, float]:
        """The run itself, with the box's usage just before and just after it."""
        limits = spec.limits
        driver = self._factory.driver
        before = driver.stats(self.group)
        baseline = _memory_baseline(driver, self.group)
        # The program gets its own limit: on top of it only what the idle box holds
        # now (bwrap and the supervisor, just measured) and a little for the fork,
        # so that a program over its limit is stopped there, not megabytes later.
        driver.update(
            self.group,
            Limits(
                memory_bytes=limits.memory_bytes + baseline + _FORK_SLACK_BYTES,
                pids=limits.processes + _SANDBOX_TASKS,
            ),
        )
        rlimits = _rlimits(limits)
        backstop = math.ceil(limits.wall_time_s) + _BACKSTOP_GRACE_S
        if self.compiled:
            data = compiled.encode_request(
                spec.argv, spec.env, spec.stdin_file, spec.merge_stderr, rlimits, backstop
            )
        else:
            # marshal, read to EOF: the supervisor then imports built-in modules only.
            request = {
                "argv": list(spec.argv),
                "env": dict(spec.env),
                "stdin": spec.stdin_file,
                "merge_stderr": spec.merge_stderr,
                "rlimits": rlimits,
                "deadline": backstop,
            }
            data = marshal.dumps(request)
        start = time.monotonic()
        req_w = _need(self._req_w)
        view = memoryview(data)
        while view:
            view = view[os.write(req_w, view) :]
        os.close(req_w)
        self._req_w = None
        watch = _Watch(self, limits, _Usage(before.cpu_time_s, before.peak_memory_bytes), start)
        report = watch.wait()
        after = driver.stats(self.group)
        self.kill()
        return report, watch, before, after, baseline, start

    def cpu_time(self) -> float:
        return self._factory.driver.stats(self.group).cpu_time_s

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
        self._factory._reap_later(self)

    def _reap(self) -> None:
        driver = self._factory.driver
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


class _Watch:
    """Waits for a run's report while streaming its output and enforcing limits."""

    def __init__(self, box: WarmBox, limits: RunLimits, before: _Usage, start: float) -> None:
        self.box = box
        self.limits = limits
        self.before = before
        self.start = start
        self.out = bytearray()
        self.err = bytearray()
        self.cpu_exceeded = False
        self.wall_exceeded = False
        self.output_exceeded = False
        #: Why the supervisor's result line was unusable (None: fine or absent).
        self.report_error: str | None = None
        #: When the host saw the run end (its report, or the first kill).
        self.finished_at = start

    def _drain_now(self, streams: dict[int, bytearray]) -> None:
        _drain_streams(self, streams)

    def wait(self) -> _Report | None:
        """The run's validated report; None if it was killed first or its report
        was unusable (then ``report_error`` says why)."""
        box = self.box
        res_r = _need(box._res_r)
        sel = selectors.DefaultSelector()
        res_buf = bytearray()
        streams = {_need(box._out_r): self.out, _need(box._err_r): self.err}
        sel.register(res_r, selectors.EVENT_READ)
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        deadline = self.start + self.limits.wall_time_s
        cpu_cap = self.limits.cpu_time_s + self.limits.cpu_extra_time_s
        next_cpu = self.start + _CPU_POLL_S
        drain_until: float | None = None
        killed = False
        try:
            while sel.get_map():
                now = time.monotonic()
                if drain_until is None:
                    if now >= deadline:
                        self.wall_exceeded = True
                        killed = True
                    elif now >= next_cpu:
                        next_cpu = now + _CPU_POLL_S
                        if box.cpu_time() - self.before.cpu_s > cpu_cap:
                            self.cpu_exceeded = True
                            killed = True
                    if killed:
                        box.kill()
                        self.finished_at = now
                        drain_until = now + _DRAIN_TIMEOUT_S
                elif now >= drain_until:
                    break
                limit = drain_until if drain_until is not None else min(deadline, next_cpu)
                for key, _ in sel.select(max(0.0, limit - now)):
                    fd = int(key.fd)
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        sel.unregister(fd)
                        continue
                    if fd == res_r:
                        res_buf += chunk
                        if len(res_buf) > MAX_REPORT_BYTES:
                            self.report_error = f"result report over {MAX_REPORT_BYTES} bytes"
                        elif not res_buf.endswith(b"\n"):
                            continue
                        self.finished_at = time.monotonic()
                        try:
                            report = None if self.report_error else parse_report(bytes(res_buf))
                        except ValueError as exc:
                            self.report_error = str(exc)
                            report = None
                        if report is None:
                            box.kill()
                        # The program has exited: what it wrote is in the pipes
                        # now. Waiting for EOF would wait for the sandbox's
                        # teardown (bwrap holds the write ends), so take what is
                        # there and stop; leftover daemons die with the box.
                        self._drain_now(streams)
                        return report
                    buf = streams[fd]
                    room = self.limits.output_bytes - len(buf)
                    buf += chunk[: max(0, room)]
                    if len(chunk) > room and not self.output_exceeded:
                        self.output_exceeded = True
                        box.kill()
                        if drain_until is None:
                            self.finished_at = time.monotonic()
                            drain_until = self.finished_at + _DRAIN_TIMEOUT_S
        finally:
            sel.close()
        if drain_until is None:
            self.finished_at = time.monotonic()
        box.kill()
        return None


@dataclass(frozen=True)
class _Report:
    exit_code: int | None = None
    signal: int | None = None
    exec_error: str | None = None


def parse_report(line: bytes) -> _Report:
    """A supervisor's result line, validated as the untrusted input it is.

    Exactly one of ``exit_code`` (0-255) and ``signal`` (1-64), and ``exec_error``
    a string if present; other keys are ignored (times and memory come from the
    host and the cgroup). Raise ValueError saying what is wrong.
    """
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, nesting
        raise ValueError(f"result report is not JSON: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise ValueError("result report is not a JSON object")
    code, sig, err = obj.get("exit_code"), obj.get("signal"), obj.get("exec_error")
    if (code is None) == (sig is None):
        raise ValueError("result report needs exactly one of exit_code and signal")
    if code is not None and not _int_in(code, 0, 255):
        raise ValueError("result report has an invalid exit_code")
    if sig is not None and not _int_in(sig, 1, 64):
        raise ValueError("result report has an invalid signal")
    if err is not None and not isinstance(err, str):
        raise ValueError("result report has an invalid exec_error")
    return _Report(exit_code=code, signal=sig, exec_error=err)


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _in_group(pid: int, group: str) -> bool:
    """Whether process ``pid`` is in cgroup ``group`` (in some hierarchy)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            return any(line.rstrip("\n").endswith(f"/{group}") for line in f)
    except OSError:
        return False


def sweep_stale_groups(driver: CgroupDriver) -> list[str]:
    """Kill and remove every ``hpcbox-judge/<pid>-<hex>`` group whose factory
    process is dead (a judge that was killed leaves them); return their names.

    A group of a live process (this one, or another judge's) is left alone.
    """
    names: set[str] = set()
    for procs in driver.procs_files(_JUDGE_ROOT):
        with contextlib.suppress(OSError):
            names |= {n for n in os.listdir(os.path.dirname(procs)) if _STALE_PARENT.match(n)}
    swept = []
    for name in sorted(names):
        match = _STALE_PARENT.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        parent = f"{_JUDGE_ROOT}/{name}"
        try:
            children: set[str] = set()
            for procs in driver.procs_files(parent):
                with contextlib.suppress(OSError):
                    children |= {
                        e.name
                        for e in os.scandir(os.path.dirname(procs))
                        if e.is_dir(follow_symlinks=False)
                    }
            for child in sorted(children):
                driver.kill(f"{parent}/{child}")
                driver.remove(f"{parent}/{child}")
            driver.kill(parent)
            driver.remove(parent)
            swept.append(parent)
            log.warning("removed the stale sandbox group %s of a dead judge", parent)
        except Exception as exc:  # one stuck group must not stop new boxes
            log.warning("stale sandbox group %s not removed: %s", parent, exc)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drain_streams(watch: _Watch, streams: dict[int, bytearray]) -> None:
    for fd, collected in streams.items():
        os.set_blocking(fd, False)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            room = watch.limits.output_bytes - len(collected)
            collected.extend(chunk[: max(0, room)])
            if len(chunk) > room:
                watch.output_exceeded = True
                break


def _need(fd: int | None) -> int:
    if fd is None:
        raise ConflictError("this sandbox is destroyed")
    return fd


def _rlimits(limits: RunLimits) -> dict[str, list[int]]:
    cpu = math.ceil(limits.cpu_time_s + limits.cpu_extra_time_s)
    return {
        "CPU": [cpu, cpu + 1],
        "STACK": [limits.stack_bytes, limits.stack_bytes],
        "FSIZE": [limits.file_size_bytes, limits.file_size_bytes],
        "NOFILE": [limits.open_files, limits.open_files],
        "CORE": [0, 0],
    }


def _memory_baseline(driver: CgroupDriver, group: str) -> int:
    """Memory the idle box holds now, with the peak counter restarted from it where
    the kernel allows (v1), so that the run's peak excludes the supervisor's start-up.

    On v2 the peak cannot be reset before kernel 6.12; the start-up peak of the
    idle supervisor (a few MiB) then sets a floor under small runs' peaks.
    """
    try:
        if isinstance(driver, CgroupV1Driver):
            mem = os.path.join(driver.hierarchies["memory"], group)
            write_value(os.path.join(mem, "memory.max_usage_in_bytes"), "0")
            return read_int(os.path.join(mem, "memory.usage_in_bytes"))
        if isinstance(driver, CgroupV2Driver):
            return read_int(os.path.join(driver.root, group, "memory.current"))
    except (OSError, ValueError):
        pass
    return driver.stats(group).peak_memory_bytes


def _read_json_until(fd: int, deadline: float) -> dict[str, object] | None:
    """One JSON object from ``fd`` (bwrap's info or a supervisor line), or None on EOF."""
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
