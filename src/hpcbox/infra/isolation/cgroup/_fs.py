"""Reading and writing cgroupfs control files, and translating their errors."""

from __future__ import annotations

import errno
import os

from hpcbox.core.errors import HpcboxError, InvalidInputError, PermanentError, UnavailableError

__all__ = [
    "gone",
    "os_error",
    "read_int",
    "read_keyed",
    "read_pids",
    "read_text",
    "write_checked",
    "write_if_exists",
    "write_value",
]


def read_text(path: str) -> str:
    """Whole content of a control file."""
    # os.read, not open(): a sandbox's life reads a dozen control files, and the
    # buffered file object's layers cost more than the read (control files are
    # small: one read and the one that says end of file).
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", errors="replace")


def read_int(path: str) -> int:
    """A control file holding one integer."""
    return int(read_text(path).strip())


def read_keyed(path: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` per line, e.g. ``memory.events``); odd lines skipped."""
    out: dict[str, int] = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def read_pids(path: str) -> set[int]:
    """The pids listed in a ``cgroup.procs`` file; empty if the file is gone."""
    try:
        text = read_text(path)
    except OSError as exc:
        if gone(exc):  # it is empty either way
            return set()
        raise
    return {int(tok) for tok in text.split() if tok.isdigit()}


def gone(exc: OSError) -> bool:
    """Whether ``exc`` says the control file's group no longer exists: missing, or
    ENODEV (the group was removed between open() and read() or write(), by a
    racing collector)."""
    return isinstance(exc, FileNotFoundError) or exc.errno == errno.ENODEV


def write_value(path: str, value: str) -> None:
    """Write ``value`` to an existing control file in one ``write``.

    No ``O_CREAT``: cgroupfs creates control files itself, and a missing one
    must fail loudly instead of becoming a plain file. ``O_TRUNC`` is ignored
    by cgroupfs and keeps plain files (test trees) holding only the last value.
    """
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


def os_error(exc: OSError, action: str) -> HpcboxError:
    """The hpcbox error for ``exc`` raised while doing ``action`` (e.g. "write x to y")."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return UnavailableError(
            f"cannot {action}: {exc.strerror}; the engine must run as root or own a "
            "delegated cgroup subtree"
        )
    if exc.errno == errno.EINVAL:
        return InvalidInputError(f"the kernel rejected: {action}")
    return PermanentError(f"cannot {action}: {exc}")


def write_checked(path: str, value: str) -> None:
    """:func:`write_value`, with errors translated by :func:`os_error`."""
    try:
        write_value(path, value)
    except OSError as exc:
        raise os_error(exc, f"write {value} to {path}") from exc


def write_if_exists(path: str, value: str) -> bool:
    """:func:`write_checked`, but return False instead of failing if ``path`` is missing."""
    try:
        write_value(path, value)
    except OSError as exc:
        if gone(exc):
            return False
        raise os_error(exc, f"write {value} to {path}") from exc
    return True
