"""The :class:`Transport` for this machine: subprocesses without a shell, and plain files.

Used for a SLURM cluster reached locally (the service runs on the login node)
and in tests. It behaves like :class:`~hpcbox.infra.transport.ssh.SshTransport` down
to the details a backend can see: relative paths and the default working
directory are the login directory, a missing program exits 127, a missing
``cwd`` fails the way ``cd`` does.

It may run with more privilege than the users whose job directories it
touches, so it never follows a symlink at the last component of a path it
reads, sizes or writes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import stat
import subprocess
import threading
from collections.abc import Sequence

from hpcbox.core.errors import InvalidInputError, PermanentError
from hpcbox.infra.transport.base import CommandResult, OutcomeUnknownError
from hpcbox.infra.transport.quoting import validate_argv

__all__ = ["LocalTransport"]

#: How long to wait for a killed command's pipes to drain before giving up on them.
_REAP_TIMEOUT_S = 5.0
_READ_CHUNK = 1 << 20


def _check_path(path: str, field: str = "path") -> None:
    if not isinstance(path, str) or not path or "\0" in path:
        raise InvalidInputError("must be a non-empty path without NUL", field=field)


def _check_range(offset: int, limit: int) -> None:
    if offset < 0:
        raise InvalidInputError("cannot be negative", field="offset")
    if limit < 0:
        raise InvalidInputError("cannot be negative", field="limit")


def _file_error(verb: str, path: str, exc: OSError) -> PermanentError:
    return PermanentError(f"cannot {verb} {path}: {exc.strerror or exc}")


class LocalTransport:
    """Runs commands and moves files on this machine, as the current user.

    Thread-safe: it holds no state besides its login directory.
    """

    def __init__(self, *, home: str | None = None) -> None:
        """``home`` stands in for the login directory (default: this user's ``~``)."""
        self._home = os.path.abspath(home if home is not None else os.path.expanduser("~"))
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"LocalTransport(home={self._home!r})"

    def __enter__(self) -> LocalTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = 60,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run ``argv`` directly (no shell); see :meth:`Transport.run`.

        The command gets its own session (process group), so a timeout kills
        everything it started, not just the first process.
        """
        self._check_open()
        validate_argv(argv)
        if cwd is not None:
            _check_path(cwd, "cwd")
        workdir = self._resolve(cwd) if cwd is not None else self._home
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                start_new_session=True,
            )
        except OSError as exc:
            return self._not_started(argv, cwd, workdir, exc)
        try:
            out, err = proc.communicate(stdin or None, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self._reap(proc)
            raise OutcomeUnknownError(
                f"{argv[0]!r} did not finish within {timeout} s and was killed"
            ) from exc
        except BaseException:
            # Interrupted (KeyboardInterrupt, say): leave no orphan behind.
            self._reap(proc)
            raise
        return CommandResult(proc.returncode, out, err)

    def _not_started(
        self, argv: Sequence[str], cwd: str | None, workdir: str, exc: OSError
    ) -> CommandResult:
        # Report what `cd dir && prog` reports in a shell, so callers see the
        # same results from this transport and from SSH.
        if exc.errno == errno.E2BIG:
            raise InvalidInputError(
                "command line too long; pass large data in a file or on stdin", field="argv"
            ) from exc
        if exc.filename == workdir:
            message = f"cd: {cwd}: {exc.strerror}\n"
            return CommandResult(1, b"", message.encode("utf-8", "replace"))
        if isinstance(exc, FileNotFoundError):
            message = f"{argv[0]}: command not found\n"
            return CommandResult(127, b"", message.encode("utf-8", "replace"))
        if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EISDIR, errno.ENOTDIR):
            message = f"{argv[0]}: {exc.strerror}\n"
            return CommandResult(126, b"", message.encode("utf-8", "replace"))
        raise PermanentError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=_REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # A process that left the group still holds the pipes; stop waiting for it.
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()

    # -- files ------------------------------------------------------------------

    def put_file(
        self, path: str, data: bytes, *, mode: int = 0o644, make_parents: bool = True
    ) -> None:
        """Write atomically; see :meth:`Transport.put_file`.

        The temporary file is created with ``O_EXCL | O_NOFOLLOW``, so nothing
        planted at its name is written through, and ``rename`` replaces a
        symlink at ``path`` itself. The data is fsynced before the rename, so
        after a crash ``path`` holds the old content or all of the new.
        """
        self._check_open()
        _check_path(path)
        if not 0 <= mode <= 0o7777:
            raise InvalidInputError(f"must be permission bits, got {mode:#o}", field="mode")
        target = self._resolve(path)
        tmp = f"{target}.tmp-{secrets.token_hex(8)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            if make_parents:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
            try:
                # fchmod, because the umask would otherwise trim the mode asked for.
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _file_error("write", target, exc) from exc

    def read_file(self, path: str, *, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Read a byte range; see :meth:`Transport.read_file`.

        Raises:
            PermanentError: ``path`` is a symlink (not followed), not a regular
                file, or not readable.
        """
        self._check_open()
        _check_path(path)
        _check_range(offset, limit)
        target = self._resolve(path)
        # O_NONBLOCK: opening a FIFO planted at the path must not hang.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(target, flags)
        except (FileNotFoundError, NotADirectoryError):
            return b""
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PermanentError(f"refusing to follow the symlink at {target}") from exc
            raise _file_error("read", target, exc) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermanentError(f"{target} is not a regular file")
            chunks: list[bytes] = []
            remaining, position = limit, offset
            while remaining > 0:
                chunk = os.pread(fd, min(remaining, _READ_CHUNK), position)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
                position += len(chunk)
            return b"".join(chunks)
        except OSError as exc:
            raise _file_error("read", target, exc) from exc
        finally:
            os.close(fd)

    def file_size(self, path: str) -> int | None:
        """Size in bytes; see :meth:`Transport.file_size`.

        Raises:
            PermanentError: ``path`` is a symlink (not followed).
        """
        self._check_open()
        _check_path(path)
        target = self._resolve(path)
        try:
            info = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise _file_error("stat", target, exc) from exc
        if stat.S_ISLNK(info.st_mode):
            raise PermanentError(f"refusing to follow the symlink at {target}")
        return info.st_size

    def remove(self, path: str) -> None:
        """Unlink ``path`` (a symlink itself, not its target); see :meth:`Transport.remove`."""
        self._check_open()
        _check_path(path)
        target = self._resolve(path)
        try:
            os.unlink(target)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise _file_error("remove", target, exc) from exc

    # -- the rest ---------------------------------------------------------------

    def home(self) -> str:
        """The login directory given at construction (default ``~``)."""
        self._check_open()
        return self._home

    def close(self) -> None:
        """Mark the transport closed; it holds nothing else to release."""
        self._closed.set()

    def _resolve(self, path: str) -> str:
        return os.path.join(self._home, path)

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise PermanentError("transport is closed")
