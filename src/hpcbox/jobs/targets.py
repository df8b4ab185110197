"""Targets as the shells see them: add, list, remove (and, with a transport, check).

A target never holds a secret: a key is referenced by path, and a password is
read from the environment when connecting, never stored.
"""

from __future__ import annotations

import os

from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.model.target import TargetSpec, parse_ssh_url, parse_target
from hpcbox.jobs.target_store import TargetStore

__all__ = ["TargetService"]


class TargetService:
    def __init__(self, store: TargetStore) -> None:
        self.store = store

    def add(
        self,
        name: str,
        url: str,
        *,
        key_path: str | None = None,
        known_hosts: str | None = None,
        host_key: str | None = None,
        rate_limit: float | None = None,
    ) -> TargetSpec:
        """Register ``name`` -> ``ssh://USER@HOST[:PORT]``; the key file must exist."""
        data = {"name": name, **parse_ssh_url(url)}
        if key_path is not None:
            key_path = os.path.abspath(os.path.expanduser(key_path))
            if not os.path.isfile(key_path):
                raise InvalidInputError(f"no key file at {key_path}", field="--key")
            data["key_path"] = key_path
        if known_hosts is not None:
            known_hosts = os.path.abspath(os.path.expanduser(known_hosts))
            if not os.path.isfile(known_hosts):
                raise InvalidInputError(f"no file at {known_hosts}", field="--known-hosts")
            data["known_hosts"] = known_hosts
        if host_key is not None:
            data["host_key"] = host_key
        if rate_limit is not None:
            data["rate_limit"] = rate_limit
        return self.store.add(parse_target(data))

    def get(self, name: str) -> TargetSpec:
        return self.store.get(name)

    def list_targets(self) -> list[TargetSpec]:
        return self.store.list_targets()

    def remove(self, name: str) -> None:
        self.store.remove(name)
