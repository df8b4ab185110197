"""The :class:`Transport` over SSH: one pooled asyncssh connection per target.

All commands and file operations to a target share one TCP connection, each on
its own channel (exec sessions, plus one SFTP session), so polling many jobs
costs no extra logins and stays within what login nodes allow. The connection
is kept alive with keepalives and re-established with backoff when it drops.

Remote assumptions: an OpenSSH-compatible server with the SFTP subsystem, and
a POSIX login shell (sh, bash, dash, zsh, ksh) for the user: commands are sent
as single-quoted words, which csh-family shells do not parse the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.transport._loop import LoopThread
from hpcbox.infra.transport._ssh_link import SshLink
from hpcbox.infra.transport.backoff import Backoff
from hpcbox.infra.transport.base import CommandResult
from hpcbox.infra.transport.quoting import shell_command
from hpcbox.infra.transport.target import SshTarget

__all__ = ["SshStats", "SshTransport"]


@dataclass(frozen=True)
class SshStats:
    """Counters since the transport was made, for metrics and benchmarks."""

    #: Successful logins; more than one means the link was re-established.
    connections_made: int
    #: Commands started on the remote side (exec channels opened).
    commands_run: int


class SshTransport:
    """Runs commands and moves files on one SSH target; see :class:`Transport`.

    Thread-safe: any number of threads may call it at once. The connection is
    made on first use, on a private event loop running in a daemon thread.
    Up to ``max_sessions - 1`` commands run at the same time (one session is
    the SFTP channel); more wait for a free channel. The default matches
    OpenSSH's ``MaxSessions``.

    Differences from :class:`~hpcbox.infra.transport.local.LocalTransport` a caller
    may notice: ``read_file`` and ``file_size`` follow a symlink at the path
    (everything on the remote side belongs to the same user, so there is no
    privilege to protect); ``put_file`` still never writes through one,
    because the SFTP rename replaces the symlink itself. A timed-out command
    is asked to stop with SIGTERM, which some servers do not deliver; it then
    dies of SIGPIPE when it next writes output.

    Raises (every method): :class:`~hpcbox.core.errors.TransientError` with
    ``target unreachable: ...`` when no connection could be made after the
    :class:`Backoff` schedule; :class:`~hpcbox.core.errors.PermanentError`
    when the host key is not verified, login is refused, or the transport is
    closed; :class:`~hpcbox.core.errors.InvalidInputError` when the target's
    keys cannot be parsed.
    """

    def __init__(
        self, target: SshTarget, *, backoff: Backoff | None = None, max_sessions: int = 10
    ) -> None:
        if max_sessions < 2:
            raise InvalidInputError(
                "must be at least 2 (one is the SFTP session)", field="max_sessions"
            )
        self._target = target
        self._link = SshLink(target, backoff=backoff or Backoff(), max_sessions=max_sessions)
        self._loop = LoopThread(f"hpcbox-ssh {target.address}")
        self._home: str | None = None
        self._close_lock = threading.Lock()
        self._closed = False

    @property
    def target(self) -> SshTarget:
        return self._target

    def __repr__(self) -> str:
        return f"SshTransport({self._target.address})"

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def connect(self) -> None:
        """Connect now rather than on first use (e.g. to check a target); idempotent."""
        self._loop.call(self._connect())

    async def _connect(self) -> None:
        await self._link.connection()

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = 60,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run ``argv`` through the remote login shell, every word quoted.

        See :meth:`Transport.run`. ``timeout`` counts from the moment the
        channel is open; connecting and waiting for a free channel are bounded
        separately (``connect_timeout_s``, :class:`Backoff`).
        """
        if timeout is not None and timeout <= 0:
            raise InvalidInputError("must be positive or None", field="timeout")
        line = shell_command(argv, cwd=cwd)
        return self._loop.call(self._link.run(line, stdin, timeout))

    def put_file(
        self, path: str, data: bytes, *, mode: int = 0o644, make_parents: bool = True
    ) -> None:
        """Write ``data`` atomically over SFTP; see :meth:`Transport.put_file`."""
        _check_path(path)
        if not 0 <= mode <= 0o7777:
            raise InvalidInputError(f"must be permission bits, got {mode:#o}", field="mode")
        self._loop.call(self._link.put_file(path, bytes(data), mode, make_parents))

    def read_file(self, path: str, *, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Read a byte range over SFTP; see :meth:`Transport.read_file`."""
        _check_path(path)
        if offset < 0 or limit < 0:
            raise InvalidInputError("offset and limit cannot be negative", field="offset")
        return self._loop.call(self._link.read_file(path, offset, limit))

    def file_size(self, path: str) -> int | None:
        """Size of ``path`` over SFTP; see :meth:`Transport.file_size`."""
        _check_path(path)
        return self._loop.call(self._link.file_size(path))

    def remove(self, path: str) -> None:
        """Remove a file over SFTP; see :meth:`Transport.remove`."""
        _check_path(path)
        self._loop.call(self._link.remove(path))

    def home(self) -> str:
        """The remote login directory ($HOME), fetched once and cached."""
        if self._home is None:
            self._home = self._loop.call(self._link.home())
        return self._home

    def stats(self) -> SshStats:
        """Connection and command counters (read without locking; approximate while busy)."""
        return SshStats(self._link.connections_made, self._link.commands_run)

    def close(self) -> None:
        """Close the connection and stop the loop thread; idempotent.

        Commands still running on other threads fail with
        :class:`~hpcbox.infra.transport.base.OutcomeUnknownError` or
        :class:`~hpcbox.core.errors.PermanentError`.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._loop.call(self._link.close())
        finally:
            self._loop.stop()


def _check_path(path: str) -> None:
    if not isinstance(path, str) or not path or "\0" in path:
        raise InvalidInputError("must be a non-empty path without NUL", field="path")
