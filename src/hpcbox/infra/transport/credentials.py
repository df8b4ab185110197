"""Credentials handed to SSH connections at run time, held in process memory only.

A :class:`~hpcbox.jobs.model.target.TargetSpec` never holds a secret. Some callers (the
Kubernetes operator, reading a Secret) have a key or a password that must reach
the SSH connections of a target without ever being written to the database, a
file or a log: they put it in a :class:`CredentialStore`, which the engine's
watcher consults by target name each time it makes an :class:`SshTarget`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["CredentialStore", "SshCredentials"]


@dataclass(frozen=True)
class SshCredentials:
    """What a target's connections authenticate with, beside what its spec says.

    ``key_data`` (private key text) and ``password`` are secrets and stay out of
    ``repr``. ``known_hosts`` is known_hosts text (public, but it decides which
    host keys are trusted). ``user`` overrides the target's user when given
    (the original prototype's Secrets name the user).
    """

    key_data: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    known_hosts: str | None = None


class CredentialStore:
    """Target name -> :class:`SshCredentials`, in memory. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, SshCredentials] = {}

    def set(self, name: str, credentials: SshCredentials) -> None:
        with self._lock:
            self._items[name] = credentials

    def get(self, name: str) -> SshCredentials | None:
        with self._lock:
            return self._items.get(name)

    def discard(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._items

    def __repr__(self) -> str:
        # Names only: never the credentials themselves.
        with self._lock:
            return f"CredentialStore({sorted(self._items)})"
