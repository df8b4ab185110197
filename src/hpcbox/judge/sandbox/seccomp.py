"""The seccomp filter of profile "untrusted", compiled with libseccomp.

libseccomp is called through ctypes: Debian's ``python3-seccomp`` binding is built
for the system interpreter and cannot be imported from a virtual environment, while
``libseccomp.so.2`` itself is on every machine that has bubblewrap's dependencies.
libseccomp (not hand-written BPF) resolves syscall numbers per architecture and
emits the architecture check that stops a filter being bypassed through the x32
or i386 entry points.

The filter allows everything except what a judged program never needs and what
attacks the kernel or escapes isolation: those calls fail with EPERM (``clone3``
and ``pidfd_open`` with ENOSYS, so that callers fall back: libc to ``clone``,
whose flags can be checked).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import tempfile

from hpcbox.core.errors import UnavailableError

__all__ = [
    "DENIED_SYSCALLS",
    "NAMESPACE_CLONE_FLAGS",
    "UNSUPPORTED_SYSCALLS",
    "compile_filter",
    "filter_memfd",
]

#: Syscalls refused outright (EPERM). Unknown names on this architecture are skipped.
DENIED_SYSCALLS: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    # Reaching into another process of the same uid (the box's PID 1 supervisor
    # is also non-dumpable; these stop it at the syscall too).
    "pidfd_getfd",
    "kcmp",
    "process_madvise",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "personality",
    "vhangup",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)

#: Syscalls that fail with ENOSYS, as on an older kernel, so that callers fall
#: back: clone3 (to clone, whose flags can be checked) and pidfd_open (a pidfd is
#: the way in for pidfd_getfd; runtimes use it only where the kernel has it).
UNSUPPORTED_SYSCALLS: tuple[str, ...] = ("clone3", "pidfd_open")

#: clone(2) flags that create namespaces; a clone with any of them fails with EPERM.
NAMESPACE_CLONE_FLAGS: tuple[int, ...] = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)

_ACT_ALLOW = 0x7FFF0000
_CMP_MASKED_EQ = 7


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


@functools.cache
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise UnavailableError(
            f"libseccomp is missing ({exc}); install it: apt-get install libseccomp2"
        ) from exc
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = (ctypes.c_uint32,)
    lib.seccomp_release.argtypes = (ctypes.c_void_p,)
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = (
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    )
    lib.seccomp_export_bpf.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
    return lib


def _add(lib: ctypes.CDLL, ctx: int, action: int, name: str, cmps: list[_ArgCmp]) -> None:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:  # not a syscall of this architecture
        return
    arr = (_ArgCmp * max(1, len(cmps)))(*cmps)
    rc = lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), arr)
    if rc < 0:
        raise UnavailableError(f"libseccomp refused a rule for {name}: {os.strerror(-rc)}")


@functools.cache
def compile_filter() -> bytes:
    """The BPF program (``struct sock_filter`` array) bwrap loads with ``--seccomp FD``.

    Built once per process. Raise UnavailableError if libseccomp is missing.
    """
    lib = _lib()
    ctx = lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise UnavailableError("seccomp_init failed")
    try:
        deny = _act_errno(errno.EPERM)
        for name in DENIED_SYSCALLS:
            _add(lib, ctx, deny, name, [])
        # One rule per flag: libseccomp ANDs the comparisons of one rule.
        for flag in NAMESPACE_CLONE_FLAGS:
            _add(lib, ctx, deny, "clone", [_ArgCmp(0, _CMP_MASKED_EQ, flag, flag)])
        for name in UNSUPPORTED_SYSCALLS:
            _add(lib, ctx, _act_errno(errno.ENOSYS), name, [])
        with tempfile.TemporaryFile() as f:
            rc = lib.seccomp_export_bpf(ctx, f.fileno())
            if rc < 0:
                raise UnavailableError(f"seccomp_export_bpf failed: {os.strerror(-rc)}")
            f.seek(0)
            return f.read()
    finally:
        lib.seccomp_release(ctx)


def filter_memfd() -> int:
    """A new memfd holding :func:`compile_filter`'s program, read from its start: what
    a sandbox inherits to load the filter (bwrap's ``--seccomp FD``, the
    fork-server's argument). The caller closes it."""
    fd = os.memfd_create("hpcbox-seccomp", 0)
    try:
        os.write(fd, compile_filter())
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
