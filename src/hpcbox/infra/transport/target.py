"""Where an SSH transport connects, and how it proves who it is and who the host is."""

from __future__ import annotations

from dataclasses import dataclass, field

from hpcbox.core.errors import InvalidInputError

__all__ = ["SshTarget"]


@dataclass(frozen=True)
class SshTarget:
    """One SSH destination with its credentials and host-key policy.

    Secrets (``key_data``, ``password``, ``passphrase``) are held in memory only
    and left out of ``repr``, so logging a target never prints them. hpcbox
    never stores a password; callers take it from the environment or a
    Kubernetes Secret each time.

    Host keys are always verified. With ``host_key`` exactly that key is
    accepted; otherwise the host must be listed in ``known_hosts_data`` or
    ``known_hosts`` (default
    ``~/.ssh/known_hosts``, with ``[host]:port`` entries for ports other than
    22). There is no way to accept any key.

    Authentication tries, in order: the agent (when ``use_agent``), the key in
    ``key_data`` or ``key_path`` (or, when neither is given, the default keys
    in ``~/.ssh`` that are not encrypted), then ``password`` when one is given.
    ``~/.ssh/config`` is not read: a target means what it says.
    """

    host: str
    user: str
    port: int = 22
    #: Path of a private key file on this machine.
    key_path: str | None = None
    #: Private key text (OpenSSH or PEM) held in memory, e.g. from a Secret.
    key_data: str | None = field(default=None, repr=False)
    #: Password for password or keyboard-interactive login; used only when given.
    password: str | None = field(default=None, repr=False)
    #: Passphrase that decrypts ``key_path`` or ``key_data``.
    passphrase: str | None = field(default=None, repr=False)
    #: known_hosts file to check the host key against; None means ~/.ssh/known_hosts.
    known_hosts: str | None = None
    #: known_hosts text held in memory (e.g. from a Kubernetes Secret); overrides known_hosts.
    known_hosts_data: str | None = None
    #: The one host public key to accept, as 'ssh-ed25519 AAAA...'; overrides known_hosts.
    host_key: str | None = None
    use_agent: bool = True
    #: Seconds between keepalive probes; three unanswered probes drop the link.
    keepalive_s: float = 15
    #: Seconds one connection attempt (TCP, handshake and login) may take.
    connect_timeout_s: float = 15

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host):
            raise InvalidInputError("must be a host name or address", field="host")
        if not self.user or any(c.isspace() or c == "@" for c in self.user):
            raise InvalidInputError("must be a user name", field="user")
        if not 0 < self.port < 65536:
            raise InvalidInputError(f"must be between 1 and 65535, got {self.port}", field="port")
        if self.key_path is not None and self.key_data is not None:
            raise InvalidInputError("give key_path or key_data, not both", field="key_data")
        if self.keepalive_s <= 0:
            raise InvalidInputError("must be positive", field="keepalive_s")
        if self.connect_timeout_s <= 0:
            raise InvalidInputError("must be positive", field="connect_timeout_s")

    @property
    def address(self) -> str:
        """``user@host:port``, for messages (holds no secret)."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        return f"{self.user}@{host}:{self.port}"
