"""A SLURM cluster as a job target: registered when it comes up, named after it, so
that ``hpcbox job submit --cluster NAME`` works at once; removed when it goes down.

The one place clusters reaches into jobs, through :mod:`hpcbox.jobs.targets` (an
import-linter contract keeps it so).
"""

from __future__ import annotations

from sqlalchemy import Engine

from hpcbox.clusters.keys import ClusterKeys
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.jobs.targets import register_cluster_target, unregister_cluster_target

__all__ = ["register_target", "unregister_target"]


def register_target(
    engine: Engine, spec: ClusterSpec, keys: ClusterKeys, port: int, *, host: str = "127.0.0.1"
) -> None:
    """Register the cluster, whose SSH login is published on ``port`` of ``host`` (the
    loopback on Podman; a node's address for a NodePort on Kubernetes).

    Jobs go in as the first spec user (a regular user, as on any site), or root
    when there is none; the admin key is accepted for every user and the host key
    is pinned."""
    register_cluster_target(
        engine,
        spec.name,
        host=host,
        port=port,
        user=spec.users[0].name if spec.users else "root",
        key_path=str(keys.admin_key_path),
        host_key=keys.host_public_key,
        # root's own home is not on the shared volume; its job files must be.
        job_root=None if spec.users else "/home/root",
    )


def unregister_target(engine: Engine, cluster: str) -> None:
    """Remove the cluster's job target, if there is one (its SSH endpoint is gone)."""
    unregister_cluster_target(engine, cluster)
