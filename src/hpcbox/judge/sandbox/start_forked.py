"""Starting a box by forking it from a fork-server (:mod:`.zygote`).

A factory has up to two fork-servers, each started on first use (and again if it
died), in a sandbox and a cgroup of their own: the Python one (``_zygote.py``: a
box costs a few forks of an interpreter, and ``python3 -B FILE`` runs in the
interpreter already started) and the compiled one (``supervisor.c`` in its
fork-server mode: forks of a small C program, for programs that are exec'd). A
forked box's PID 1 is moved into the box's own cgroup before anything runs there.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping

from hpcbox.infra.isolation.limits import ResourceLimits
from hpcbox.judge.sandbox.argv import PATH
from hpcbox.judge.sandbox.box import IDLE_LIMITS, BoxContext, WarmBox
from hpcbox.judge.sandbox.groups import GroupNames
from hpcbox.judge.sandbox.zygote import Zygote

__all__ = ["ZYGOTE_LIMITS", "ForkServers"]

log = logging.getLogger(__name__)

#: ResourceLimits of a fork-server's own group: it, and each new box until it is moved out.
ZYGOTE_LIMITS = ResourceLimits(memory_bytes=512 * 1024 * 1024, pids=256)


class ForkServers:
    """A factory's fork-servers: the compiled one (``True``) and the Python one
    (``False``), whose in-process runs get exactly ``fork_env``. Thread-safe."""

    def __init__(self, *, fork_env: Mapping[str, str]) -> None:
        self._fork_env = dict(fork_env)
        self._zygotes: dict[bool, Zygote] = {}
        self._groups: dict[bool, str] = {}
        self._lock = threading.Lock()

    def start_box(
        self,
        context: BoxContext,
        names: GroupNames,
        *,
        compiled: bool,
        supervisor_fd: int | None,
    ) -> WarmBox:
        """A ready box forked from the ``compiled`` fork-server (``supervisor_fd``:
        the compiled supervisor, which it runs) or the Python one.

        PermanentError when the fork-server does not start or makes no box.
        """
        driver = context.driver
        zygote = self._running(context, names, compiled=compiled, supervisor_fd=supervisor_fd)
        group = names.new("box")
        driver.create(group, IDLE_LIMITS)
        try:
            forked = zygote.fork_box()
        except BaseException:
            with contextlib.suppress(Exception):
                driver.remove(group)
            raise
        # Either fork-server's boxes read the compiled supervisor's requests.
        box = WarmBox(
            context,
            None,
            group,
            forked.request_w,
            forked.result_r,
            forked.stdout_r,
            forked.stderr_r,
            compiled=True,
        )
        try:
            # Held by a pidfd before it is moved: the pid names the box's PID 1,
            # blocked on its request (it exits only when killed); destroy() closes it.
            box.hold(forked.pid)
            driver.add_process(group, forked.pid)
            box.attach(forked.pid)
        except BaseException:
            box.destroy()
            raise
        return box

    def running(self, *, compiled: bool) -> Zygote | None:
        """The ``compiled`` fork-server as started last (None: never started)."""
        with self._lock:
            return self._zygotes.get(compiled)

    def _running(
        self,
        context: BoxContext,
        names: GroupNames,
        *,
        compiled: bool,
        supervisor_fd: int | None,
    ) -> Zygote:
        """The ``compiled`` fork-server, started (again, if it died) now if need be."""
        with self._lock:
            zygote = self._zygotes.get(compiled)
            if zygote is not None and zygote.alive():
                return zygote
            if zygote is not None:
                log.warning("a sandbox fork-server died; starting a new one")
                self._stop(context, compiled)
            driver = context.driver
            group = names.new("zygote")
            driver.create(group, ZYGOTE_LIMITS)
            try:
                zygote = Zygote(
                    rootfs=context.rootfs,
                    host_uid=context.host_uid,
                    box_bytes=context.box_bytes,
                    tmp_bytes=context.tmp_bytes,
                    tools=context.tools,
                    env={"PATH": PATH} if compiled else self._fork_env,
                    procs_files=driver.procs_files(group),
                    spawner=context.spawner,
                    compiled_fd=supervisor_fd if compiled else None,
                )
            except BaseException:
                with contextlib.suppress(Exception):
                    driver.kill(group)
                    driver.remove(group)
                raise
            self._zygotes[compiled] = zygote
            self._groups[compiled] = group
            return zygote

    def _stop(self, context: BoxContext, compiled: bool) -> None:
        """Stop one fork-server (its boxes die with it) and remove its group."""
        zygote = self._zygotes.pop(compiled, None)
        group = self._groups.pop(compiled, None)
        if zygote is not None:
            zygote.close()
        if group is not None:
            with contextlib.suppress(Exception):
                context.driver.kill(group)
                context.driver.remove(group)

    def close(self, context: BoxContext | None) -> None:
        """Stop every fork-server (``context``: the one they were started in;
        None when none was)."""
        with self._lock:
            if context is None:
                return
            for compiled in list(self._zygotes):
                self._stop(context, compiled)
