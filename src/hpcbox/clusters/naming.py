"""Names of a cluster's containers, network, labels — one place, used everywhere."""

from __future__ import annotations

__all__ = [
    "LABEL_CLUSTER",
    "LABEL_NODE",
    "LABEL_ROLE",
    "container_name",
    "labels",
    "network_name",
]

LABEL_CLUSTER = "io.hpcbox.cluster"
LABEL_ROLE = "io.hpcbox.role"
LABEL_NODE = "io.hpcbox.node"


def network_name(cluster: str) -> str:
    return f"hpcbox-{cluster}"


def container_name(cluster: str, host: str) -> str:
    return f"hpcbox-{cluster}-{host}"


def labels(cluster: str, role: str | None = None, host: str | None = None) -> dict[str, str]:
    out = {LABEL_CLUSTER: cluster}
    if role:
        out[LABEL_ROLE] = role
    if host:
        out[LABEL_NODE] = host
    return out
