"""One pooled SSH connection to a target, used from the transport's event loop.

Everything here runs on the :class:`~hpcbox.infra.transport._loop.LoopThread` of one
:class:`~hpcbox.infra.transport.ssh.SshTransport`, so it needs asyncio locks only.

Reconnecting: a dead connection is noticed (keepalive, EOF from the server)
and replaced on next use; establishing it is retried per :class:`Backoff`,
and concurrent callers share one attempt instead of each running their own.
A command is never resent: when the link drops while a command may be running
the caller gets :class:`OutcomeUnknownError`. File operations are idempotent
(writes go through a temporary file and a rename), so they are retried once on
a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import random
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncssh

from hpcbox.core.errors import PermanentError, TransientError, UnavailableError
from hpcbox.infra.transport._ssh_options import connect_error, connect_options, is_retryable
from hpcbox.infra.transport.backoff import Backoff
from hpcbox.infra.transport.base import CommandResult, OutcomeUnknownError
from hpcbox.infra.transport.target import SshTarget

__all__ = ["SshLink"]

log = logging.getLogger("hpcbox.infra.transport.ssh")

T = TypeVar("T")

#: Errors that mean the connection under an operation is gone.
_LINK_ERRORS = (
    asyncssh.DisconnectError,
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    BrokenPipeError,
    ConnectionError,
)
#: Seconds to wait for a connection to close politely before dropping it.
_CLOSE_TIMEOUT_S = 5.0


class SshLink:
    """Owns the connection and SFTP session to one target; hands out channels."""

    def __init__(self, target: SshTarget, *, backoff: Backoff, max_sessions: int) -> None:
        self._target = target
        self._backoff = backoff
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connecting: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_conn: asyncssh.SSHClientConnection | None = None
        self._sftp_lock = asyncio.Lock()
        # OpenSSH allows MaxSessions (default 10) channels per connection and
        # refuses more; the SFTP session holds one of them for good.
        self._exec_slots = asyncio.Semaphore(max_sessions - 1)
        self._closed = False
        self._rng = random.Random()
        self.connections_made = 0
        self.commands_run = 0

    # -- the connection ---------------------------------------------------------

    async def connection(self) -> asyncssh.SSHClientConnection:
        """Return the live connection, (re)connecting with backoff when there is none.

        Raises:
            TransientError: every attempt failed ("target unreachable: ...").
            PermanentError: the host key was not verified or login was refused.
            InvalidInputError: the target's keys cannot be used.
        """
        if self._closed:
            raise PermanentError("transport is closed")
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
            self._connecting.add_done_callback(self._connect_done)
        # shield: one caller giving up must not cancel the attempt the others wait for.
        return await asyncio.shield(self._connecting)

    def _connect_done(self, task: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure with no waiter left is not logged

    async def _connect(self) -> asyncssh.SSHClientConnection:
        options = connect_options(self._target)
        delays = self._backoff.delays(self._rng)
        last: BaseException = ConnectionError("no connection attempt was made")
        for attempt in range(self._backoff.attempts):
            if attempt:
                await asyncio.sleep(delays[attempt - 1])
            try:
                conn = await asyncssh.connect(**options)
            except Exception as exc:
                if not is_retryable(exc):
                    raise connect_error(self._target, exc) from exc
                last = exc
                log.info(
                    "connecting to %s failed (attempt %d of %d): %s",
                    self._target.address,
                    attempt + 1,
                    self._backoff.attempts,
                    exc,
                )
                continue
            if self._closed:  # closed while connecting: do not leak the connection
                conn.close()
                raise PermanentError("transport is closed")
            self._conn = conn
            self.connections_made += 1
            return conn
        raise connect_error(self._target, last) from last

    def _forget(self, conn: asyncssh.SSHClientConnection) -> None:
        # The next caller reconnects. Closing makes sure a half-dead connection
        # (still open as far as asyncssh knows) is not reused.
        if self._conn is conn:
            self._conn = None
        if self._sftp_conn is conn:
            self._sftp, self._sftp_conn = None, None
        conn.close()

    # -- commands ---------------------------------------------------------------

    async def run(self, command: str, stdin: bytes | None, timeout: float | None) -> CommandResult:
        """Run a prepared shell line on one channel; see :meth:`Transport.run`."""
        async with self._exec_slots:
            conn = await self.connection()
            try:
                process = await conn.create_process(
                    command,
                    input=stdin or None,
                    stdin=asyncssh.PIPE if stdin else asyncssh.DEVNULL,
                    encoding=None,
                )
            except asyncssh.ChannelOpenError as exc:
                # Refused at channel open: the command was never sent.
                if conn.is_closed():
                    self._forget(conn)
                raise TransientError(
                    f"{self._target.address} refused a session: {exc.reason}"
                ) from exc
            except _LINK_ERRORS as exc:
                self._forget(conn)
                raise self._lost(exc) from exc
            self.commands_run += 1
            try:
                done = await process.wait(timeout=timeout)
            except asyncssh.TimeoutError as exc:
                # Ask the remote side to stop it (servers may ignore signals;
                # closing the channel then leaves it to SIGPIPE).
                with contextlib.suppress(Exception):
                    process.terminate()
                raise OutcomeUnknownError(
                    f"command on {self._target.address} did not finish within {timeout} s"
                ) from exc
            except _LINK_ERRORS as exc:
                self._forget(conn)
                raise self._lost(exc) from exc
            finally:
                process.close()
        if done.returncode is None:
            # The channel closed without an exit status: the link went down.
            if conn.is_closed():
                self._forget(conn)
            raise self._lost(None)
        stdout = done.stdout if isinstance(done.stdout, bytes) else b""
        stderr = done.stderr if isinstance(done.stderr, bytes) else b""
        return CommandResult(done.returncode, stdout, stderr)

    def _lost(self, exc: BaseException | None) -> OutcomeUnknownError:
        reason = f": {exc}" if exc else ""
        return OutcomeUnknownError(
            f"lost the connection to {self._target.address} while a command may have been "
            f"running{reason}; check its effect before running it again"
        )

    # -- files ------------------------------------------------------------------

    async def _sftp_client(self) -> tuple[asyncssh.SFTPClient, asyncssh.SSHClientConnection]:
        conn = await self.connection()
        async with self._sftp_lock:
            if self._sftp is not None and self._sftp_conn is conn:
                return self._sftp, conn
            try:
                client = await conn.start_sftp_client()
            except asyncssh.ChannelOpenError as exc:
                raise TransientError(
                    f"{self._target.address} refused an SFTP session: {exc.reason}"
                ) from exc
            except asyncssh.SFTPError as exc:
                raise UnavailableError(
                    f"{self._target.address} offers no SFTP subsystem ({exc}); "
                    "enable 'Subsystem sftp' in its sshd_config"
                ) from exc
            self._sftp, self._sftp_conn = client, conn
            return client, conn

    async def _file_op(self, what: str, op: Callable[[asyncssh.SFTPClient], Awaitable[T]]) -> T:
        # File operations are idempotent, so one retry on a fresh connection is safe.
        for attempt in range(2):
            client, conn = await self._sftp_client()
            try:
                return await op(client)
            except _LINK_ERRORS as exc:
                self._forget(conn)
                if attempt:
                    raise TransientError(
                        f"lost the connection to {self._target.address} during {what}: {exc}"
                    ) from exc
            except asyncssh.SFTPError as exc:
                raise PermanentError(f"{what} on {self._target.address} failed: {exc}") from exc
        raise AssertionError("unreachable")

    async def put_file(self, path: str, data: bytes, mode: int, make_parents: bool) -> None:
        """Write through a temporary file and a rename; see :meth:`Transport.put_file`."""

        async def op(sftp: asyncssh.SFTPClient) -> None:
            parent = posixpath.dirname(path)
            if make_parents and parent:
                await sftp.makedirs(parent, exist_ok=True)
            tmp = f"{path}.tmp-{secrets.token_hex(8)}"
            try:
                # "x": exclusive create, so nothing planted at the name is written through.
                async with sftp.open(
                    tmp, "xb", attrs=asyncssh.SFTPAttrs(permissions=0o600)
                ) as remote:
                    await remote.write(data)
                    # Set after creation, because the server's umask trims the create mode.
                    await remote.chmod(mode)
                await _replace(sftp, tmp, path)
            except Exception:
                with contextlib.suppress(Exception):
                    await sftp.remove(tmp)
                raise

        await self._file_op(f"writing {path}", op)

    async def read_file(self, path: str, offset: int, limit: int) -> bytes:
        """Read a byte range; a missing file reads as b""."""

        async def op(sftp: asyncssh.SFTPClient) -> bytes:
            try:
                async with sftp.open(path, "rb") as remote:
                    data = await remote.read(limit, offset)
            except asyncssh.SFTPNoSuchFile:
                return b""
            return data if isinstance(data, bytes) else b""

        if limit == 0:
            return b""
        return await self._file_op(f"reading {path}", op)

    async def file_size(self, path: str) -> int | None:
        """Return the size of ``path`` (following a symlink), or None when missing."""

        async def op(sftp: asyncssh.SFTPClient) -> int | None:
            try:
                attrs = await sftp.stat(path)
            except asyncssh.SFTPNoSuchFile:
                return None
            return attrs.size

        return await self._file_op(f"checking {path}", op)

    async def remove(self, path: str) -> None:
        """Remove a file or symlink; a missing one is fine."""

        async def op(sftp: asyncssh.SFTPClient) -> None:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(path)

        await self._file_op(f"removing {path}", op)

    async def home(self) -> str:
        """The login directory as the SFTP server resolves ".", which OpenSSH sets to $HOME."""

        async def op(sftp: asyncssh.SFTPClient) -> str:
            return str(await sftp.realpath("."))

        return await self._file_op("finding the home directory", op)

    # -- shutdown ---------------------------------------------------------------

    async def close(self) -> None:
        """Close the SFTP session and the connection; later calls raise PermanentError."""
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        conn, self._conn, self._sftp, self._sftp_conn = self._conn, None, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), _CLOSE_TIMEOUT_S)


async def _replace(sftp: asyncssh.SFTPClient, tmp: str, path: str) -> None:
    # rename(2) semantics: a symlink at `path` is replaced, not followed.
    try:
        await sftp.posix_rename(tmp, path)
    except asyncssh.SFTPOpUnsupported:
        # Servers without OpenSSH's posix-rename: plain SFTP rename refuses to
        # overwrite, so remove first. Not atomic, but the best SFTPv3 offers.
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(path)
        await sftp.rename(tmp, path)
