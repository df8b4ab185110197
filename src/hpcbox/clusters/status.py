"""What ``hpcbox cluster status`` shows: the record, each node (its container and what
SLURM says of it), the partitions, how to log in, the hub and its engines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpcbox.clusters.spec import ClusterKind
from hpcbox.clusters.store import ClusterRecord

__all__ = ["PARTITIONS_ARGV", "ClusterStatus", "NodeState", "parse_partitions"]

#: What both runtimes run on the controller for ``cluster status``'s partitions.
PARTITIONS_ARGV = ("sinfo", "-h", "-o", "%P|%a|%l|%D|%N")


@dataclass(frozen=True)
class NodeState:
    name: str
    role: str
    container: str
    container_status: str
    slurm_state: str | None
    partitions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "container": self.container,
            "container_status": self.container_status,
            "slurm_state": self.slurm_state,
            "partitions": list(self.partitions),
        }


@dataclass(frozen=True)
class ClusterStatus:
    record: ClusterRecord
    nodes: tuple[NodeState, ...]
    partitions: tuple[dict[str, Any], ...]
    ssh: dict[str, Any]
    #: Where JupyterHub is published (kind jupyter, or a SLURM login node's hub).
    hub_url: str | None = None
    #: ipyparallel engines the controller counts (kind jupyter, when it answers).
    engines: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = self.record.to_json()
        data.update(
            mpi=self.record.spec.mpi.value,
            accounting=self.record.spec.accounting,
            users=[u.name for u in self.record.spec.users],
            nodes=[node.to_json() for node in self.nodes],
            partitions=list(self.partitions),
            ssh=self.ssh,
        )
        if self.record.spec.has_jupyterhub:
            data["hub_url"] = self.hub_url
        if self.record.spec.kind is ClusterKind.JUPYTER:
            data["engines"] = self.engines
        return data


def parse_partitions(out: str) -> tuple[dict[str, Any], ...]:
    """The output of :data:`PARTITIONS_ARGV` as ``cluster status`` shows partitions."""
    partitions = []
    for line in out.splitlines():
        part, avail, limit, count, nodelist = line.strip().split("|")
        partitions.append(
            {
                "name": part.rstrip("*"),
                "default": part.endswith("*"),
                "available": avail,
                "time_limit": limit,
                "nodes": int(count),
                "nodelist": nodelist,
            }
        )
    return tuple(partitions)
