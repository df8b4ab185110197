"""Cluster specs shared by the rendering tests (kept small and explicit, so a
golden file's diff points at the renderer, not at a changed example)."""

from __future__ import annotations

from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec

ED25519_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHBsYWNlaG9sZGVyLXJlcGxhY2Utd2l0aC1vd24ta2V5 alice@laptop"
)
SHA512_HASH = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YO3wTxvD6n7/2E6xPpp0G8wM8FkHbzBtsyM/."


def basic() -> ClusterSpec:
    """Defaults: one partition, OpenMPI, no accounting, one user with a key."""
    return parse_cluster_spec(
        {
            "name": "demo",
            "workers": {"count": 2, "cpus": 2, "memory": "1G"},
            "users": [{"name": "alice", "ssh_keys": [ED25519_KEY]}],
        }
    )


def accounting() -> ClusterSpec:
    """Accounting on, two partitions (one with a time limit), two users."""
    return parse_cluster_spec(
        {
            "name": "acct",
            "workers": {"count": 3, "cpus": 4, "memory": "3G"},
            "accounting": True,
            "partitions": [
                {"name": "debug", "max_time": "30m"},
                {"name": "long", "default": True, "max_time": "2-12"},
            ],
            "users": [
                {"name": "alice", "uid": 2001, "password_hash": SHA512_HASH},
                {"name": "bob"},
            ],
        }
    )


def mpich() -> ClusterSpec:
    """MPICH, one CPU per worker, an odd memory size (rounded down to MiB)."""
    return parse_cluster_spec(
        {
            "name": "mpich",
            "workers": {"count": 2, "cpus": 1, "memory": "1536M"},
            "mpi": "mpich",
        }
    )


SPECS = {"basic": basic, "accounting": accounting, "mpich": mpich}
