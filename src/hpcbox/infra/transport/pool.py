"""One :class:`SshTransport` per named target, shared by everything in the process.

The engine's watcher, submissions and log readers for one target all go through
the same connection; this is where they find it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from hpcbox.infra.transport.ssh import SshTransport
from hpcbox.infra.transport.target import SshTarget

__all__ = ["TransportPool"]


class TransportPool:
    """Hands out one transport per target name and closes them all at the end. Thread-safe."""

    def __init__(self, *, factory: Callable[[SshTarget], SshTransport] = SshTransport) -> None:
        """``factory`` makes a transport for a target (a different Backoff, in tests)."""
        self._factory = factory
        self._lock = threading.Lock()
        self._transports: dict[str, SshTransport] = {}

    def get(self, name: str, target: SshTarget) -> SshTransport:
        """Return the transport for ``name``, making it on first use.

        When ``target`` differs from the one the existing transport was made
        for (the target was edited), the old transport is closed and replaced.
        """
        with self._lock:
            current = self._transports.get(name)
            if current is not None and current.target == target:
                return current
            transport = self._factory(target)
            self._transports[name] = transport
        if current is not None:
            current.close()
        return transport

    def discard(self, name: str) -> None:
        """Close and forget the transport for ``name`` (a removed target); no-op if none."""
        with self._lock:
            transport = self._transports.pop(name, None)
        if transport is not None:
            transport.close()

    def close_all(self) -> None:
        """Close every transport; the pool can be used again afterwards."""
        with self._lock:
            transports = list(self._transports.values())
            self._transports.clear()
        for transport in transports:
            transport.close()
