"""The factory of warm untrusted boxes: one per judge process and runtime rootfs.

:meth:`UntrustedSandbox.prepare` starts a box (:class:`~.box.WarmBox`) in one of
three ways, cheapest first where it can:

- forked from the Python fork-server (:mod:`.start_forked`), for the languages
  whose ``python3 -B FILE`` runs in the fork-server's interpreter;
- forked from the compiled fork-server (the same module), for programs that are
  exec'd, when the runtime's gcc could build the compiled supervisor
  (:mod:`.supervisor_build`);
- with a bubblewrap of its own (:mod:`.start_bwrap`), with the compiled
  supervisor as PID 1 where it could be built, else the Python one.

The factory owns what its boxes share (:class:`~.box.BoxContext`): the cgroup
driver and the groups under its parent (:mod:`.groups`), the thread that spawns
every sandbox (:mod:`.spawn`), the thread that reaps destroyed boxes
(:mod:`.reaper`), the fork-servers, and the slots that bound the runs at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path

from hpcbox.core.errors import UnavailableError
from hpcbox.infra.isolation.cgroup import CgroupDriver, detect_driver
from hpcbox.judge.sandbox.argv import PATH
from hpcbox.judge.sandbox.box import BoxContext, WarmBox
from hpcbox.judge.sandbox.groups import GroupNames, sweep_stale_groups
from hpcbox.judge.sandbox.reaper import Reaper
from hpcbox.judge.sandbox.seccomp import compile_filter
from hpcbox.judge.sandbox.spawn import Spawner
from hpcbox.judge.sandbox.start_bwrap import start_bwrap_box
from hpcbox.judge.sandbox.start_forked import ForkServers
from hpcbox.judge.sandbox.supervisor_build import build_supervisor

__all__ = ["UntrustedSandbox"]

log = logging.getLogger(__name__)


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
        self._groups = GroupNames(parent_group)
        self._parent = self._groups.parent
        self.host_uid = host_uid
        self.box_bytes = box_bytes
        self.tmp_bytes = tmp_bytes
        self._lock = threading.Lock()
        self._closed = False
        self._build_lock = threading.Lock()
        self._supervisor_fd: int | None = None
        self._supervisor_tried = False
        self._spawner = Spawner()
        self._reaper = Reaper()
        self._swept = False
        self._context: BoxContext | None = None
        #: Whether :meth:`prepare` forks boxes from the fork-server by default
        #: (else each box is started by its own bwrap).
        self.fork_server = fork_server
        #: At most ``max_running`` programs run at once (None: no bound), however
        #: many callers prepare, fill and tear down boxes meanwhile: with more
        #: judging threads than CPUs, runs must not stretch each other's wall times.
        self.run_slots = (
            threading.BoundedSemaphore(max_running) if max_running is not None else None
        )
        #: The fork-server's environment: ``python3 -B FILE`` runs with exactly
        #: this one run in its interpreter, others are exec'd.
        self.fork_env = dict(fork_env) if fork_env is not None else {"PATH": PATH}
        #: Whether boxes that are not forked from the (Python) fork-server are forked
        #: from the compiled supervisor's fork-server (``supervisor.c``), where the
        #: rootfs can build it, rather than each started by a bwrap of its own.
        self.compiled_fork_server = compiled_fork_server
        self._fork_servers = ForkServers(fork_env=self.fork_env)

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
            return self._fork_servers.start_box(
                self._box_context(), self._groups, compiled=False, supervisor_fd=None
            )
        supervisor = self._compiled_supervisor()
        if self.compiled_fork_server and supervisor is not None:
            return self._fork_servers.start_box(
                self._box_context(), self._groups, compiled=True, supervisor_fd=supervisor
            )
        return self._prepare(supervisor)

    def _prepare(self, supervisor_fd: int | None) -> WarmBox:
        """A box with a bwrap of its own, whose PID 1 is the compiled supervisor
        ``supervisor_fd`` (None: the Python supervisor)."""
        return start_bwrap_box(self._box_context(), self._groups.new("box"), supervisor_fd)

    def _box_context(self) -> BoxContext:
        """What boxes share, made on first use; the first use also sweeps the
        groups that dead judges left behind."""
        context = self._context
        if context is not None:
            return context
        driver = self.driver
        with self._lock:
            sweep, self._swept = not self._swept, True
        if sweep:
            sweep_stale_groups(driver)
        bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
        if bwrap is None or setpriv is None:
            raise UnavailableError("bwrap and setpriv are needed: apt-get install bubblewrap")
        with self._lock:
            if self._context is None:
                self._context = BoxContext(
                    rootfs=str(self.rootfs),
                    host_uid=self.host_uid,
                    box_bytes=self.box_bytes,
                    tmp_bytes=self.tmp_bytes,
                    driver=driver,
                    tools=(bwrap, setpriv),
                    spawner=self._spawner,
                    reaper=self._reaper,
                    run_slots=self.run_slots,
                )
            return self._context

    def _compiled_supervisor(self) -> int | None:
        """The compiled supervisor's descriptor, built on first use; None (the
        Python supervisor) when the rootfs cannot build it."""
        with self._build_lock:
            if not self._supervisor_tried:
                self._supervisor_tried = True
                try:
                    self._supervisor_fd = build_supervisor(self.rootfs, self._prepare)
                except Exception as exc:  # the Python supervisor still works
                    log.warning("compiled sandbox supervisor unavailable: %s", exc)
            return self._supervisor_fd

    def close(self) -> None:
        """Wait until every destroyed box is reaped and its cgroup removed."""
        self._closed = True
        self._fork_servers.close(self._context)
        self._reaper.close()
        with contextlib.suppress(Exception):
            self.driver.remove(self._parent)
        self._spawner.close()  # its exit kills (die-with-parent) any box left
        with self._build_lock:
            if self._supervisor_fd is not None:
                os.close(self._supervisor_fd)
                self._supervisor_fd = None
