"""A cluster's secrets: munge key, SSH host key, admin key pair, database password.

Generated once per cluster and kept as 0600 files under
``$HPCBOX_HOME/clusters/<name>/`` — never in an image, the database, a log or
command output. Nodes receive them as files at container creation.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncssh

__all__ = ["ClusterKeys", "load_or_create_keys", "remove_keys"]

_MUNGE_KEY_BYTES = 1024  # what `mungekey` generates by default


@dataclass(frozen=True)
class ClusterKeys:
    """Paths and contents of one cluster's secrets (reprs hide the contents)."""

    directory: Path

    @property
    def munge_key(self) -> bytes:
        return (self.directory / "munge.key").read_bytes()

    @property
    def host_key(self) -> str:
        return (self.directory / "ssh_host_ed25519_key").read_text()

    @property
    def host_public_key(self) -> str:
        return (self.directory / "ssh_host_ed25519_key.pub").read_text().strip()

    @property
    def admin_key_path(self) -> Path:
        """Private key for root on the login node (``cluster status`` shows the path)."""
        return self.directory / "admin_ed25519"

    @property
    def admin_public_key(self) -> str:
        return (self.directory / "admin_ed25519.pub").read_text().strip()

    @property
    def db_password(self) -> str:
        return (self.directory / "db_password").read_text().strip()

    @property
    def known_hosts_path(self) -> Path:
        """known_hosts for reaching the login node on 127.0.0.1 (any published port)."""
        return self.directory / "known_hosts"


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _keypair(path: Path, comment: str) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    _write_secret(path, key.export_private_key("openssh"))
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))


def load_or_create_keys(home: Path, cluster: str) -> ClusterKeys:
    """The cluster's secrets, generating whichever are missing (kept across
    ``down``/``up`` so users' known_hosts stay valid; removed by ``down --purge``)."""
    directory = home / "clusters" / cluster
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    if not (directory / "munge.key").exists():
        _write_secret(directory / "munge.key", secrets.token_bytes(_MUNGE_KEY_BYTES))
    if not (directory / "ssh_host_ed25519_key").exists():
        _keypair(directory / "ssh_host_ed25519_key", f"hpcbox-{cluster}-host")
    if not (directory / "admin_ed25519").exists():
        _keypair(directory / "admin_ed25519", f"hpcbox-{cluster}-admin")
    if not (directory / "db_password").exists():
        _write_secret(directory / "db_password", secrets.token_urlsafe(24).encode())
    keys = ClusterKeys(directory)
    known = f"[127.0.0.1]:*,[localhost]:* {keys.host_public_key}\n"
    (directory / "known_hosts").write_text(known)
    return keys


def remove_keys(home: Path, cluster: str) -> None:
    """Remove the cluster's secrets (``down --purge``)."""
    directory = home / "clusters" / cluster
    for path in sorted(directory.glob("*"), reverse=True):
        path.unlink()
    if directory.exists():
        directory.rmdir()
