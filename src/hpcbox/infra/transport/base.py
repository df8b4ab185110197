"""The seam between hpcbox and the machines it runs commands on.

The engine and the SLURM backend talk to a cluster through :class:`Transport`
only: run a command given as an argv, and move whole files. The same calls work
on this machine (:class:`~hpcbox.infra.transport.local.LocalTransport`) and over SSH
(:class:`~hpcbox.infra.transport.ssh.SshTransport`), so a backend is written once and
unit-tested against a fake at this seam.

The API is synchronous on purpose: the engine is synchronous, and one calling
mode per layer keeps callers free of ``isawaitable`` checks. The SSH
implementation hides its event loop behind this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hpcbox.core.errors import TransientError

__all__ = ["CommandResult", "OutcomeUnknownError", "Transport"]


@dataclass(frozen=True)
class CommandResult:
    """How a command ended.

    ``exit_code`` is the exit status, or the negative signal number when the
    command was killed by a signal (as :mod:`subprocess` reports it). A command
    that could not be started reports what a POSIX shell would: 127 when the
    program was not found, 126 when it could not be executed.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0


class OutcomeUnknownError(TransientError):
    """The command may or may not have run: it timed out, or the link dropped mid-way.

    Retrying can help, but a command that is not idempotent (``sbatch``) must
    not be sent again blindly: look for its effect first. Transports never
    resend a command on their own.
    """


class Transport(Protocol):
    """Command execution and whole-file access on one machine.

    Paths are POSIX paths on that machine. Relative paths are relative to the
    login directory (:meth:`home`); ``~`` is *not* expanded. Every method may
    raise :class:`~hpcbox.core.errors.TransientError` when the machine cannot
    be reached (retry later), :class:`~hpcbox.core.errors.InvalidInputError`
    for arguments that can never work, and
    :class:`~hpcbox.core.errors.PermanentError` for failures retrying will not
    fix (permission denied, a directory where a file was expected).
    """

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = 60,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run ``argv`` and wait for it; return its exit code and whole output.

        Each argument reaches the program verbatim: no shell ever sees an
        unquoted argument. ``stdin`` is fed to the command, which otherwise
        reads end-of-file at once. ``cwd`` defaults to the login directory. A
        non-zero exit is a result, not an error.

        Raises:
            InvalidInputError: ``argv`` is empty, contains a NUL byte, or is
                too long for a command line.
            OutcomeUnknownError: ``timeout`` seconds passed (the command is
                killed where the transport can), or the link dropped while the
                command may have been running.
            TransientError: the machine could not be reached; nothing was run.
        """
        ...

    def put_file(
        self, path: str, data: bytes, *, mode: int = 0o644, make_parents: bool = True
    ) -> None:
        """Write ``data`` to ``path`` atomically, with permission bits ``mode``.

        The data goes to ``<path>.tmp-<random>`` first and is renamed over
        ``path``, so readers see the old file or the new one, never a part.
        A symlink at ``path`` is replaced, never written through. Missing
        parent directories are created when ``make_parents`` is true.
        """
        ...

    def read_file(self, path: str, *, offset: int = 0, limit: int = 1 << 20) -> bytes:
        """Return up to ``limit`` bytes of ``path`` from byte ``offset``.

        A missing file reads as ``b""``, as does an offset past its end, so a
        caller tailing a log that does not exist yet needs no special case.
        """
        ...

    def file_size(self, path: str) -> int | None:
        """Return the size of ``path`` in bytes, or None when nothing is there."""
        ...

    def remove(self, path: str) -> None:
        """Remove the file (or symlink) at ``path``; a missing file is not an error."""
        ...

    def home(self) -> str:
        """Return the absolute login directory ($HOME) on the machine (cached)."""
        ...

    def close(self) -> None:
        """Release connections and threads; later calls raise PermanentError."""
        ...
