"""Reading a job's output files safely, from an offset, while they grow."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

__all__ = ["LogChunk", "read_chunk"]


@dataclass(frozen=True)
class LogChunk:
    """Bytes ``[offset, next_offset)`` of a log; ``eof`` when the job is over and
    nothing more will be written."""

    data: bytes
    offset: int
    next_offset: int
    eof: bool


def read_chunk(path: str, offset: int, limit: int) -> tuple[bytes, int]:
    """Read up to ``limit`` bytes at ``offset``; return them and the file's size.

    Never follows a symlink in the last component (a job could plant one) and
    refuses anything but a regular file (a planted FIFO would block the reader).
    A missing file reads as empty: the job has not written yet.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return b"", 0
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.pread(fd, max(0, limit), offset), info.st_size
    finally:
        os.close(fd)
