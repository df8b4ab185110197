"""Small bookkeeping files kept next to a run's status file.

- ``<status>.outcome.json``: the collected :class:`RunOutcome`, so that polling
  again (from any process) returns the same answer after the cgroup is gone;
- ``<status>.killed``: written by ``Sandbox.kill`` before it kills, so that a
  run that dies without reporting is known to be ours to blame, not lost;
- the status file itself is ``flock``-ed while results are collected, so two
  processes polling at once collect once.

Files are replaced atomically (write a temporary file, then rename) so readers
never see half a record. They are not fsync-ed: losing one in a power cut is
recoverable (the status file still holds the exit code) and fsync would cost
more than the whole sandbox overhead budget on a slow disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator

__all__ = [
    "kill_marker_path",
    "locked",
    "outcome_path",
    "read_json",
    "remove_quietly",
    "write_json_atomic",
]


def outcome_path(status_path: str) -> str:
    """Where the collected outcome of the run with this status file is cached."""
    return status_path + ".outcome.json"


def kill_marker_path(status_path: str) -> str:
    """Where ``Sandbox.kill`` records that it killed the run."""
    return status_path + ".killed"


def write_json_atomic(path: str, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def read_json(path: str) -> object | None:
    """The JSON value stored at ``path``; None if the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            data: object = json.load(f)
    except (OSError, ValueError):
        return None
    return data


def remove_quietly(path: str) -> None:
    """Unlink ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def locked(path: str) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the existing file ``path`` for the block.

    Yields False (and locks nothing) when the file does not exist: there is
    then nothing to protect because nothing can be cached next to it either.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)
