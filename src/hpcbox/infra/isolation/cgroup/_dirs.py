"""Creating and removing cgroup directories (shared by both drivers)."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable

from hpcbox.core.errors import ConflictError, InvalidInputError, PermanentError
from hpcbox.infra.isolation.cgroup._fs import os_error, read_pids

__all__ = ["make_group_dir", "remove_group_dir", "undo_created"]

#: How long rmdir is retried while the kernel finishes tearing processes down.
REMOVE_TIMEOUT_S = 5.0


def make_group_dir(path: str) -> bool:
    """mkdir ``path``; reuse it if it is an existing cgroup without processes.

    Return True if the directory was created, False if reused. Raise
    ConflictError if it has processes (another live run owns the name),
    InvalidInputError if the name is taken by a control file.
    """
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path):
            raise InvalidInputError(
                f"{os.path.basename(path)!r} collides with a cgroup control file", field="run_id"
            ) from None
        if read_pids(os.path.join(path, "cgroup.procs")):
            raise ConflictError(f"cgroup {path} already exists and has processes") from None
        return False
    except OSError as exc:
        raise os_error(exc, f"create cgroup {path}") from exc
    return True


def undo_created(paths: list[str]) -> None:
    """Best-effort rmdir of directories this call created, after a failure."""
    for path in reversed(paths):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def remove_group_dir(
    path: str, *, sleep: Callable[[float], None], timeout: float = REMOVE_TIMEOUT_S
) -> None:
    """rmdir ``path`` (missing is fine), retrying while it is busy."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise PermanentError(f"cannot remove cgroup {path}: {exc}") from exc
        sleep(delay)
        delay = min(delay * 2, 0.05)
