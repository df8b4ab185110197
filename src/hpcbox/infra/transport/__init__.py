"""Command execution and file access on a machine, locally or over SSH.

The engine and the SLURM backend depend on the :class:`Transport` protocol
only. :class:`LocalTransport` runs subprocesses on this machine;
:class:`SshTransport` shares one pooled asyncssh connection per target among
all threads; :class:`TransportPool` keeps one per target name.

No user string is ever put unquoted into a remote shell line
(:func:`shell_command` is the one place such lines are built), and secrets in
an :class:`SshTarget` never appear in its ``repr``.
"""

from typing import TYPE_CHECKING

from hpcbox.infra.transport.backoff import Backoff
from hpcbox.infra.transport.base import CommandResult, OutcomeUnknownError, Transport
from hpcbox.infra.transport.local import LocalTransport
from hpcbox.infra.transport.pool import TransportPool
from hpcbox.infra.transport.quoting import MAX_COMMAND_BYTES, shell_command
from hpcbox.infra.transport.ssh import SshStats, SshTransport
from hpcbox.infra.transport.target import SshTarget

__all__ = [
    "MAX_COMMAND_BYTES",
    "Backoff",
    "CommandResult",
    "LocalTransport",
    "OutcomeUnknownError",
    "SshStats",
    "SshTarget",
    "SshTransport",
    "Transport",
    "TransportPool",
    "shell_command",
]

if TYPE_CHECKING:
    # Checked by mypy only: both transports must satisfy the protocol the engine uses.
    def _conforms(local: LocalTransport, ssh: SshTransport) -> tuple[Transport, Transport]:
        return local, ssh
