"""The untrusted box's command line and seccomp lists, as the hardening needs them."""

from __future__ import annotations

from hpcbox.judge.sandbox.argv import (
    BoxCommand,
    ZygoteCommand,
    build_argv,
    build_zygote_argv,
)
from hpcbox.judge.sandbox.seccomp import DENIED_SYSCALLS, UNSUPPORTED_SYSCALLS


def test_bwrap_dies_with_its_parent() -> None:
    cmd = BoxCommand(
        sh="/bin/sh",
        setpriv="/usr/bin/setpriv",
        bwrap="/usr/bin/bwrap",
        host_uid=65534,
        rootfs="/r",
        box_bytes=1,
        tmp_bytes=1,
        procs_files=(),
        seccomp_fd=3,
        info_fd=4,
        request_fd=5,
        result_fd=6,
        stdout_fd=7,
        stderr_fd=8,
        supervisor_source="",
    )
    argv = build_argv(cmd)
    assert "--die-with-parent" in argv[argv.index("/usr/bin/bwrap") : argv.index("--seccomp")]


def test_reaching_into_another_process_is_refused() -> None:
    for name in ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp"):
        assert name in DENIED_SYSCALLS
    assert "process_madvise" in DENIED_SYSCALLS
    assert "pidfd_open" in UNSUPPORTED_SYSCALLS and "clone3" in UNSUPPORTED_SYSCALLS


def _zygote_argv(env: dict[str, str], compiled_exec: str | None = None) -> list[str]:
    return build_zygote_argv(
        ZygoteCommand(
            sh="/bin/sh",
            setpriv="/usr/bin/setpriv",
            bwrap="/usr/bin/bwrap",
            host_uid=65534,
            rootfs="/r",
            box_bytes=1,
            tmp_bytes=2,
            procs_files=("/cg/zygote/cgroup.procs",),
            control_fd=3,
            seccomp_fd=4,
            env=env,
            zygote_source="SOURCE",
            compiled_exec=compiled_exec,
        )
    )


def test_the_fork_server_is_sandboxed_as_a_box_is() -> None:
    argv = _zygote_argv({"PATH": "/usr/bin", "LANG": "C.UTF-8; $(id)"})
    bwrap = argv[argv.index("/usr/bin/bwrap") :]
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-net", "--disable-userns"):
        assert flag in bwrap
    assert "--die-with-parent" in bwrap and "--clearenv" in bwrap
    assert bwrap[bwrap.index("--ro-bind") + 1 : bwrap.index("--ro-bind") + 3] == ["/r", "/"]
    # /dev is shared by every box it forks: read-only, so no run leaves a file there.
    assert bwrap[bwrap.index("--remount-ro") + 1] == "/dev"
    # Only what building namespaces and mounts needs, in its own user namespace.
    added = [bwrap[i + 1] for i, a in enumerate(bwrap) if a == "--cap-add"]
    assert added == ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SETPCAP"]
    assert "--seccomp" not in bwrap  # each box's program gets the filter
    # The environment as values, never through a shell.
    assert ["--setenv", "LANG", "C.UTF-8; $(id)"] == bwrap[
        bwrap.index("LANG") - 1 : bwrap.index("LANG") + 2
    ]
    assert argv[-4:] == ["3", "4", "1", "2"]
    assert argv[-8:-4] == ["/usr/bin/python3", "-B", "-c", "SOURCE"]


def test_the_compiled_fork_server_is_the_same_sandbox_running_the_supervisor() -> None:
    python = _zygote_argv({"PATH": "/usr/bin"})
    compiled = _zygote_argv({"PATH": "/usr/bin"}, compiled_exec="/proc/self/fd/9")
    # The same sandbox up to the program bwrap runs, then the supervisor's
    # fork-server mode with the same arguments.
    cut = len(python) - 1 - python[::-1].index("--")  # bwrap's own "--"
    assert compiled[:cut] == python[:cut]
    assert "--seccomp" not in compiled
    assert compiled[cut:] == ["--", "/proc/self/fd/9", "zygote", "3", "4", "1", "2"]
