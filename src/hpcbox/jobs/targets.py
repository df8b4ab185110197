"""Targets as the shells see them: add, list, remove (and, with a transport, check);
and the one way in for :mod:`hpcbox.clusters`, which registers each SLURM cluster it
brings up as a target named after it (:func:`register_cluster_target`, and
:func:`unregister_cluster_target` when it goes down). No other module of jobs is
imported from clusters (an import-linter contract).

A target never holds a secret: a key is referenced by path, and a password is
read from the environment when connecting, never stored.
"""

from __future__ import annotations

import contextlib
import os

from sqlalchemy import Engine

from hpcbox.core.errors import InvalidInputError, NotFoundError
from hpcbox.jobs.model.target import TargetSpec, parse_ssh_url, parse_target
from hpcbox.jobs.target_store import TargetStore

__all__ = ["TargetService", "register_cluster_target", "unregister_cluster_target"]


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


def register_cluster_target(
    engine: Engine,
    cluster: str,
    *,
    host: str,
    port: int,
    user: str,
    key_path: str,
    host_key: str,
    job_root: str | None = None,
) -> None:
    """Make hpcbox cluster ``cluster`` a job target named after it (replacing a
    target of that name), so that ``hpcbox job submit --cluster NAME`` works at once.

    Jobs go in over SSH as ``user`` with the private key at ``key_path``; the host
    key (one ``known_hosts`` key line) is pinned. ``job_root``: where job files go
    (default: the user's home). InvalidInputError for a value a target refuses.
    """
    target = parse_target(
        {
            "name": cluster,
            "host": host,
            "port": port,
            "user": user,
            "key_path": key_path,
            "host_key": host_key,
            "cluster": cluster,
            "job_root": job_root,
        }
    )
    TargetStore(engine).add(target, replace=True)


def unregister_cluster_target(engine: Engine, cluster: str) -> None:
    """Remove the target of hpcbox cluster ``cluster``, if there is one."""
    with contextlib.suppress(NotFoundError):
        TargetStore(engine).remove(cluster)
