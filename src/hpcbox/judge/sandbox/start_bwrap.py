"""Starting a box with a bubblewrap of its own (no fork-server).

The box's command line (:mod:`.argv`) joins the box's cgroup, drops to the host
uid and runs bwrap, whose PID 1 is the supervisor: the compiled one, inherited as
a descriptor, or the Python one. The host waits for bwrap's info line (the
supervisor's pid) and the supervisor's ready line. A box costs a bwrap and a
supervisor's start; the fork-servers (:mod:`.start_forked`) are cheaper, this is
the way that needs nothing running beforehand (and builds the compiled supervisor).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hpcbox.judge.sandbox.argv import BoxCommand, build_argv
from hpcbox.judge.sandbox.box import IDLE_LIMITS, BoxContext, WarmBox
from hpcbox.judge.sandbox.seccomp import filter_memfd

__all__ = ["start_bwrap_box"]

_SUPERVISOR_SOURCE = (Path(__file__).parent / "_supervisor.py").read_text(encoding="utf-8")


def start_bwrap_box(context: BoxContext, group: str, supervisor_fd: int | None) -> WarmBox:
    """A ready box in the new cgroup ``group`` (created here; killed and removed
    again if the start fails), with the compiled supervisor ``supervisor_fd`` as
    PID 1, or the Python supervisor (None).

    PermanentError, saying why, when the sandbox does not start.
    """
    driver = context.driver
    driver.create(group, IDLE_LIMITS)
    try:
        return _start(context, group, supervisor_fd)
    except BaseException:
        with contextlib.suppress(Exception):
            driver.kill(group)
            driver.remove(group)
        raise


def _start(context: BoxContext, group: str, supervisor_fd: int | None) -> WarmBox:
    bwrap, setpriv = context.tools
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
                host_uid=context.host_uid,
                rootfs=context.rootfs,
                box_bytes=context.box_bytes,
                tmp_bytes=context.tmp_bytes,
                procs_files=context.driver.procs_files(group),
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
        proc = context.spawner.popen(argv, stderr=err_w, pass_fds=(*child_fds, *shared))
    except BaseException:
        for fd in child_fds + host_fds:
            os.close(fd)
        raise
    for fd in child_fds:
        os.close(fd)
    box = WarmBox(
        context, proc, group, req_w, res_r, out_r, err_r, compiled=supervisor_fd is not None
    )
    try:
        box.await_ready(info_r)
    except BaseException:
        box.destroy()
        raise
    finally:
        os.close(info_r)
    return box
