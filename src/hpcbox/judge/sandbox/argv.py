"""The command line of one warm untrusted sandbox (a pure function of its settings).

Chain: ``sh`` joins the run's cgroups (fixed script, values as arguments), then
``exec setpriv`` drops to an unprivileged host uid, then ``exec bwrap`` builds the
namespaces (as that uid, so the sandbox's user namespace maps to it and nothing
inside is ever host root), then bwrap execs the supervisor as PID 1 (the compiled
one, inherited as a descriptor, or the Python one). bwrap runs with
``--die-with-parent``: when the host thread that spawned it exits (or the whole
judge is killed), the kernel kills bwrap and with it the sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "BOX_DIR",
    "JOIN_SCRIPT",
    "PATH",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "BoxCommand",
    "ZygoteCommand",
    "build_argv",
    "build_zygote_argv",
]

#: The work directory inside every sandbox (a mount point of the runtime rootfs).
BOX_DIR = "/box"
#: The uid and gid programs see inside the sandbox.
SANDBOX_UID = 1000
SANDBOX_GID = 1000

#: Writes its pid into each ``cgroup.procs`` given before ``--``, then execs the rest.
JOIN_SCRIPT = (
    'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done\n'
    'shift\nexec "$@"\n'
)

#: The PATH of every box started by bwrap.
PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class BoxCommand:
    """Everything :func:`build_argv` needs; descriptors are numbers in the child."""

    sh: str
    setpriv: str
    bwrap: str
    host_uid: int
    rootfs: str
    box_bytes: int
    tmp_bytes: int
    procs_files: Sequence[str]
    seccomp_fd: int
    info_fd: int
    request_fd: int
    result_fd: int
    stdout_fd: int
    stderr_fd: int
    supervisor_source: str
    python: str = "/usr/bin/python3"
    #: The compiled supervisor's path inside the box (``/proc/self/fd/N``); None
    #: runs ``supervisor_source`` with ``python`` instead.
    supervisor_exec: str | None = None


def build_argv(cmd: BoxCommand) -> list[str]:
    """The full argv (see module docstring); every value is its own element."""
    return [
        *_prefix(cmd.sh, cmd.setpriv, cmd.bwrap, cmd.host_uid, cmd.procs_files, cmd.rootfs),
        "--size",
        str(cmd.box_bytes),
        "--tmpfs",
        BOX_DIR,
        "--size",
        str(cmd.tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--chdir",
        BOX_DIR,
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        "--seccomp",
        str(cmd.seccomp_fd),
        "--info-fd",
        str(cmd.info_fd),
        "--",
        *(
            (cmd.supervisor_exec,)
            if cmd.supervisor_exec
            else (cmd.python, "-I", "-S", "-c", cmd.supervisor_source)
        ),
        str(cmd.request_fd),
        str(cmd.result_fd),
        str(cmd.stdout_fd),
        str(cmd.stderr_fd),
    ]


@dataclass(frozen=True)
class ZygoteCommand:
    """Everything :func:`build_zygote_argv` needs; descriptors are numbers in the child."""

    sh: str
    setpriv: str
    bwrap: str
    host_uid: int
    rootfs: str
    box_bytes: int
    tmp_bytes: int
    procs_files: Sequence[str]
    control_fd: int
    seccomp_fd: int
    #: The fork-server's environment (the one its in-process Python runs have).
    env: Mapping[str, str]
    zygote_source: str
    python: str = "/usr/bin/python3"
    #: The compiled supervisor's path inside the sandbox (``/proc/self/fd/N``): the
    #: fork-server is then that program in its fork-server mode, which execs every
    #: program (``supervisor.c``), instead of ``zygote_source`` run by ``python``.
    compiled_exec: str | None = None


def build_zygote_argv(cmd: ZygoteCommand) -> list[str]:
    """The argv of a fork-server (``_zygote.py``, or ``supervisor.c zygote``): the
    same sandbox as a box's, with CAP_SYS_ADMIN, CAP_NET_ADMIN and CAP_SETPCAP kept
    in its user namespace (to build each box's namespaces and mounts, and to empty
    its bounding set) and no seccomp filter of its own (each box's program gets it,
    after every capability is dropped). The Python one is started as ``python3
    -B``, the flags of the Python language's runs, which it can then run
    in-process, with ``cmd.env`` as its environment."""
    args = (str(cmd.control_fd), str(cmd.seccomp_fd), str(cmd.box_bytes), str(cmd.tmp_bytes))
    return [
        *_prefix(cmd.sh, cmd.setpriv, cmd.bwrap, cmd.host_uid, cmd.procs_files, cmd.rootfs),
        # Every box shares this /dev: read-only, so that no run leaves a file there
        # for the next (each box mounts a fresh /dev/shm over it).
        "--remount-ro",
        "/dev",
        "--chdir",
        "/",
        "--clearenv",
        *(arg for key in sorted(cmd.env) for arg in ("--setenv", key, cmd.env[key])),
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-add",
        "CAP_NET_ADMIN",
        "--cap-add",
        "CAP_SETPCAP",
        "--",
        *(
            (cmd.compiled_exec, "zygote")
            if cmd.compiled_exec
            else (cmd.python, "-B", "-c", cmd.zygote_source)
        ),
        *args,
    ]


def _prefix(
    sh: str, setpriv: str, bwrap: str, host_uid: int, procs_files: Sequence[str], rootfs: str
) -> list[str]:
    """From the cgroup join to bwrap's namespaces and read-only root, /proc and /dev."""
    uid = str(host_uid)
    return [
        sh,
        "-c",
        JOIN_SCRIPT,
        "hpcbox-untrusted",
        *procs_files,
        "--",
        setpriv,
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        bwrap,
        "--unshare-user",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--disable-userns",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--new-session",
        # The sandbox dies with the host thread that started it (see box.py),
        # so a killed judge leaves no run behind.
        "--die-with-parent",
        "--as-pid-1",
        "--ro-bind",
        rootfs,
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
