"""The host's side of a sandbox fork-server (``_zygote.py``, or the compiled
supervisor in its fork-server mode, ``supervisor.c``; either runs in a sandbox).

A :class:`Zygote` is started once per sandbox factory and kind, in a sandbox and a
cgroup of its own; :meth:`Zygote.fork_box` then asks it for a new box and returns the
box's PID 1 (as a host pid, from the kernel's SCM_CREDENTIALS, never from what
the box says) and the host's ends of the box's pipes. Moving that process into
the box's cgroup is the caller's job, before the run's request is sent.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpcbox.core.errors import PermanentError, UnavailableError
from hpcbox.judge.sandbox.argv import ZygoteCommand, build_zygote_argv
from hpcbox.judge.sandbox.seccomp import filter_memfd
from hpcbox.judge.sandbox.spawn import Spawner

__all__ = ["ForkedBox", "Zygote"]

_SOURCE = (Path(__file__).parent / "_zygote.py").read_text(encoding="utf-8")
_START_TIMEOUT_S = 30.0
_BOX_TIMEOUT_S = 10.0
_UCRED = struct.Struct("iII")  # pid, uid, gid


@dataclass
class ForkedBox:
    """A new box's PID 1 and the host's ends of its pipes (the caller owns them)."""

    pid: int
    request_w: int
    result_r: int
    stdout_r: int
    stderr_r: int


class Zygote:
    """One fork-server sandbox. Thread-safe: boxes may be asked for concurrently."""

    def __init__(
        self,
        *,
        rootfs: str,
        host_uid: int,
        box_bytes: int,
        tmp_bytes: int,
        tools: tuple[str, str],
        env: Mapping[str, str],
        procs_files: Sequence[str],
        spawner: Spawner,
        compiled_fd: int | None = None,
    ) -> None:
        """``compiled_fd``: the compiled supervisor's descriptor (``compiled.py``),
        which is then the fork-server (every program exec'd); None: ``_zygote.py``
        (``python3 -B FILE`` run in-process), with ``env`` as its environment."""
        self.host_uid = host_uid
        bwrap, setpriv = tools
        ctl_host, ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        err_r, err_w = os.pipe()
        sec = filter_memfd()
        child_fds = [ctl_child.fileno(), sec]
        try:
            for fd in child_fds:
                os.set_inheritable(fd, True)
            argv = build_zygote_argv(
                ZygoteCommand(
                    sh="/bin/sh",
                    setpriv=setpriv,
                    bwrap=bwrap,
                    host_uid=host_uid,
                    rootfs=rootfs,
                    box_bytes=box_bytes,
                    tmp_bytes=tmp_bytes,
                    procs_files=procs_files,
                    control_fd=ctl_child.fileno(),
                    seccomp_fd=sec,
                    env=dict(env),
                    zygote_source=_SOURCE,
                    compiled_exec=None if compiled_fd is None else f"/proc/self/fd/{compiled_fd}",
                )
            )
            shared = () if compiled_fd is None else (compiled_fd,)
            self._proc = spawner.popen(argv, stderr=err_w, pass_fds=(*child_fds, *shared))
        except BaseException:
            ctl_host.close()
            os.close(err_r)
            raise
        finally:
            ctl_child.close()
            for fd in (sec, err_w):
                os.close(fd)
        self._ctl = ctl_host
        try:
            ready = _receive(ctl_host, time.monotonic() + _START_TIMEOUT_S)
            if ready is None or ready[0] != b"ready":
                raise PermanentError(f"the sandbox fork-server did not start: {_tail(err_r)}")
        except BaseException:
            self.close()
            raise
        finally:
            os.close(err_r)

    @property
    def pid(self) -> int:
        """The host pid of the fork-server's bwrap."""
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def fork_box(self) -> ForkedBox:
        """A new box, ready for one request; raise PermanentError if none came."""
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        host.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        pipes = [os.pipe() for _ in range(4)]  # request, result, stdout, stderr
        # The box reads the request and writes the rest.
        box_ends = [child.fileno(), pipes[0][0], pipes[1][1], pipes[2][1], pipes[3][1]]
        host_ends = [pipes[0][1], pipes[1][0], pipes[2][0], pipes[3][0]]
        try:
            try:
                socket.send_fds(self._ctl, [b"box"], box_ends)
            except OSError as exc:
                raise UnavailableError(f"the sandbox fork-server is gone: {exc}") from exc
            finally:
                child.close()
                for fd in box_ends[1:]:
                    os.close(fd)
            answer = _receive(host, time.monotonic() + _BOX_TIMEOUT_S)
        except BaseException:
            for fd in host_ends:
                os.close(fd)
            raise
        finally:
            host.close()
        if answer is None or answer[0] != b"ready" or answer[1] is None:
            for fd in host_ends:
                os.close(fd)
            said = "no answer" if answer is None else answer[0].decode(errors="replace")
            raise PermanentError(f"the sandbox fork-server made no box: {said}")
        pid, uid = answer[1]
        if uid != self.host_uid:  # the kernel says who sent it: never anyone else
            for fd in host_ends:
                os.close(fd)
            raise PermanentError(f"a box answered as uid {uid}, not {self.host_uid}")
        for fd in host_ends:
            os.set_inheritable(fd, False)
        return ForkedBox(pid, *host_ends)

    def close(self) -> None:
        """Stop the fork-server; as its sandbox's PID 1, its exit ends every box."""
        self._ctl.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def _receive(sock: socket.socket, deadline: float) -> tuple[bytes, tuple[int, int] | None] | None:
    """One message and its sender's (pid, uid) as the kernel gives them; None at
    EOF or the deadline."""
    with selectors.DefaultSelector() as sel:
        sel.register(sock, selectors.EVENT_READ)
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            return None
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
    if not data:
        return None
    creds = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid, uid, _ = _UCRED.unpack(payload[: _UCRED.size])
            creds = (pid, uid)
    return data, creds


def _tail(fd: int) -> str:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 4096).decode(errors="replace").strip() or "no message"
    except BlockingIOError:
        return "no message"
