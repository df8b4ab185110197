"""Host-side file access inside a sandbox's work directory that never follows a link.

Everything is relative to a directory file descriptor and resolved by
``openat2(2)`` with ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS``: a symlink (or ``..``) planted by the sandboxed program
anywhere in the path makes the call fail instead of reaching a host file. On
kernels without openat2 (before 5.6) only single names are accepted and opened
with ``O_NOFOLLOW``, which gives the same guarantee for one component.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import stat
from collections.abc import Iterator

from hpcbox.core.errors import InvalidInputError

__all__ = ["as_fsuid", "list_regular_files", "open_beneath", "read_beneath", "write_beneath"]

_SYS_OPENAT2 = 437  # same number on every architecture (unified syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def _has_openat2() -> bool:
    try:
        fd = _openat2(os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), ".", os.O_PATH, 0)
    except OSError as exc:
        return exc.errno != errno.ENOSYS
    os.close(fd)
    return True


def _openat2(dirfd: int, path: str, flags: int, mode: int) -> int:
    # openat2 refuses a mode without O_CREAT (EINVAL), unlike open.
    how = _OpenHow(
        flags | os.O_CLOEXEC,
        mode if flags & os.O_CREAT else 0,
        _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
    )
    libc = _libc()
    fd: int = libc.syscall(
        _SYS_OPENAT2,
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), path)
    return fd


@contextlib.contextmanager
def as_fsuid(uid: int, gid: int) -> Iterator[None]:
    """Make this thread's filesystem uid and gid ``uid``/``gid`` for the block.

    A sandbox's tmpfs belongs to its user namespace, where host root is not
    mapped: files the host creates there must be owned by the sandbox's own host
    uid (else EOVERFLOW). The file-system ids are per thread in Linux, so other
    threads keep root's.
    """
    libc = _libc()
    old_uid = libc.setfsuid(uid)
    old_gid = libc.setfsgid(gid)
    try:
        yield
    finally:
        libc.setfsgid(old_gid)
        libc.setfsuid(old_uid)


def open_beneath(dirfd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """Open ``path`` relative to ``dirfd`` without following any symlink or leaving it.

    Raise OSError (ELOOP for a symlink, EXDEV for an escape) like ``open`` does.
    """
    if path.startswith("/") or not path:
        raise InvalidInputError(f"not a relative path: {path!r}", field="path")
    if _has_openat2():
        return _openat2(dirfd, path, flags, mode)
    if "/" in path or path in (".", ".."):
        raise InvalidInputError(f"nested path {path!r} needs openat2 (Linux 5.6+)", field="path")
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dirfd)


def write_beneath(dirfd: int, name: str, data: bytes, *, mode: int = 0o644) -> None:
    """Create or replace the regular file ``name`` under ``dirfd`` with ``data``.

    An existing symlink, directory or other special file at ``name`` is an error
    (OSError), never followed or truncated through.
    """
    fd = open_beneath(dirfd, name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def read_beneath(dirfd: int, name: str, *, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` of the regular file ``name`` under ``dirfd``.

    O_NONBLOCK keeps a planted FIFO from blocking the host; anything but a
    regular file raises OSError.
    """
    fd = open_beneath(dirfd, name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        chunks: list[bytes] = []
        left = max_bytes
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def list_regular_files(dirfd: int) -> list[tuple[str, int]]:
    """Names and permission bits of the regular files directly under ``dirfd``.

    Uses ``lstat`` semantics (symlinks, directories, FIFOs and devices are left
    out); sorted by name.
    """
    out: list[tuple[str, int]] = []
    for name in sorted(os.listdir(dirfd)):
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append((name, stat.S_IMODE(st.st_mode)))
    return out
