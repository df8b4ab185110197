"""What a cluster kind offers the manager: one class per kind (:class:`~.slurm.SlurmKind`,
:class:`~.jupyter.JupyterKind`), each built on :class:`~.nodes.Nodes` alone.

:class:`~hpcbox.clusters.manager.ClusterManager` does what every kind shares (the
lock, the preflight, images, the network and homes volume, the record in the store,
teardown) and hands the rest to the spec's kind through this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hpcbox.clusters.spec import ClusterSpec

__all__ = ["Kind", "KindStatus", "Up"]


@dataclass(frozen=True)
class Up:
    """A cluster that came up: where its SSH login is published (None: no SSH
    endpoint, and no job target), and what to tell the user (``N workers idle``)."""

    ssh_port: int | None
    summary: str


@dataclass(frozen=True)
class KindStatus:
    """What a kind adds to ``cluster status``: SLURM's view of each node (state and
    partitions, by host name) and its partitions, or the engines ipyparallel counts."""

    node_states: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    partitions: tuple[dict[str, Any], ...] = ()
    engines: int | None = None


class Kind(Protocol):
    """Made with the cluster's :class:`~.nodes.Nodes` and its :class:`~.keys.ClusterKeys`."""

    def image_roles(self, spec: ClusterSpec) -> list[str]:
        """The node images the cluster needs, in build order."""
        ...

    def up(self, spec: ClusterSpec) -> Up:
        """Start the nodes (network and homes volume exist) and wait until they are
        ready; ClusterError naming the component that is not."""
        ...

    def scale(
        self,
        spec: ClusterSpec,
        current: Sequence[str],
        workers: int,
        *,
        force: bool,
        timeout: float | None,
    ) -> None:
        """From the ``current`` workers to ``workers`` of them, while jobs run."""
        ...

    def status(self, spec: ClusterSpec) -> KindStatus:
        """What the running cluster says of itself; raises HpcboxError when it
        does not answer."""
        ...
