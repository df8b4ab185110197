"""The bwrap command line of profile "job" (a pure function of the request).

The job sees the host's filesystem read-write as the launching user would,
with its own pid and IPC namespaces, its own ``/proc`` and a private, empty
``/tmp``. Every value travels as its own argv element, never through a shell.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence

__all__ = ["build_bwrap_argv", "env_fixup"]


def build_bwrap_argv(
    bwrap: str,
    *,
    argv: Sequence[str],
    env: Mapping[str, str],
    workdir: str,
    status_fd: int,
    env_tool: str = "/usr/bin/env",
    ro_binds: Sequence[str] = (),
) -> list[str]:
    """Return the full bwrap argv running ``argv`` in ``workdir`` with exactly ``env``.

    - ``--die-with-parent`` ties bwrap, its pid-1 reaper and the command to the
      trampoline shell (bwrap's parent), never to the launching engine: when
      the command exits, bwrap exits, the reaper gets SIGKILL and the kernel
      kills everything left in the pid namespace (double-forked daemons
      included). The trampoline outlives the engine because it runs in its own
      session, so jobs survive an engine restart.
    - ``--new-session`` stops the job from injecting input into a terminal.
    - A workdir inside ``/tmp`` is bound back on top of the private ``/tmp`` so
      that it stays visible; so are ``ro_binds`` inside ``/tmp`` (read-only), e.g.
      the job's own script when hpcbox's state directory lives under ``/tmp``.
    - bwrap's status lines go to ``status_fd``
      (see :mod:`hpcbox.jobs.backends.local.sandbox.status`).
    """
    args = [
        bwrap,
        "--unshare-pid",
        "--unshare-ipc",
        "--new-session",
        "--die-with-parent",
        "--bind",
        "/",
        "/",
        "--dev-bind",
        "/dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    norm = posixpath.normpath(workdir)
    if _under_tmp(norm):
        args += ["--bind", norm, norm]
    for raw in ro_binds:
        path = posixpath.normpath(raw)
        if _under_tmp(path) and not (path + "/").startswith(norm + "/"):
            args += ["--ro-bind", path, path]
    args += ["--chdir", workdir, "--json-status-fd", str(status_fd), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args.append("--")
    args += env_fixup(argv, env, workdir, env_tool)
    args += argv
    return args


def env_fixup(
    argv: Sequence[str], env: Mapping[str, str], workdir: str, env_tool: str
) -> list[str]:
    """Prefix that undoes bwrap's unconditional ``PWD=<workdir>`` export.

    bwrap always sets PWD after applying ``--clearenv``/``--setenv``, so the
    requested environment is restored by ``env(1)``: ``-u PWD`` when PWD was
    not requested, ``PWD=<value>`` when another value was. No prefix when the
    requested PWD already equals ``workdir``. Also none when ``argv[0]`` is
    ``-`` or contains ``=``, which ``env`` would take for an option or an
    assignment; such a command then sees ``PWD=<workdir>``.
    """
    wanted = env.get("PWD")
    if wanted == workdir or argv[0] == "-" or "=" in argv[0]:
        return []
    if wanted is None:
        return [env_tool, "-u", "PWD", "--"]
    return [env_tool, "--", f"PWD={wanted}"]


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")
