"""Public node operations on a container runtime: what every cluster kind builds on.

A node is one container of a cluster, named by its host name (``controller``,
``worker1``, ``hub``...) and labelled with its role. :class:`Nodes` starts one
with the files it needs (the start-up script, which runs the role's daemons, and
what the kind rendered), runs commands on it, waits until it answers, reads its
log, hands it files and removes it. The kinds (:mod:`.slurm`, :mod:`.jupyter`)
bring clusters up with these operations and nothing else of the runtime's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hpcbox.clusters.images import image_tag
from hpcbox.clusters.naming import LABEL_NODE, container_name, labels, network_name
from hpcbox.clusters.render.node import NODE_SCRIPT_PATH, node_script
from hpcbox.clusters.spec import ClusterSpec
from hpcbox.core.errors import HpcboxError, PermanentError
from hpcbox.core.progress import Reporter
from hpcbox.infra.runtimes import (
    ContainerInfo,
    ContainerSpec,
    ExecResult,
    FileEntry,
    Mount,
    PortBinding,
    Runtime,
)

__all__ = [
    "CLUSTER_MTU",
    "ClusterError",
    "NodeLimits",
    "Nodes",
    "home_mount",
    "node_script_file",
    "output",
]

#: Jumbo frames, as on an HPC interconnect: MPI traffic between nodes stays on this
#: machine, and 64 KiB frames (loopback's own MTU) cut per-packet costs that a
#: 1500-byte bridge pays on every message.
CLUSTER_MTU = 65520
#: Memory a worker gets above what it offers to jobs, for the node's own daemons.
_DAEMON_HEADROOM = 256 * 1024**2


class ClusterError(PermanentError):
    """A component of a cluster failed; the message names it and shows its log tail."""


@dataclass(frozen=True)
class NodeLimits:
    """A node's CPU and memory limits."""

    cpus: float
    memory_bytes: int

    @classmethod
    def worker(cls, spec: ClusterSpec) -> NodeLimits:
        """A worker's: its CPUs, and its memory plus room for its daemons."""
        return cls(float(spec.workers.cpus), spec.workers.memory + _DAEMON_HEADROOM)


def node_script_file() -> FileEntry:
    """The nodes' start-up script (:mod:`hpcbox.clusters.render.node`, the one the
    Kubernetes manifests carry too), as the file every container gets."""
    return FileEntry(NODE_SCRIPT_PATH, node_script().encode(), mode=0o755)


def home_mount(spec: ClusterSpec) -> Mount:
    """The cluster's shared homes, mounted at ``/home``."""
    return Mount(source=spec.home_volume, target="/home")


def output(result: ExecResult) -> str:
    """What a command printed on its standard output, as text."""
    return result.stdout.decode("utf-8", "replace")


class Nodes:
    """The nodes of cluster ``cluster`` on ``runtime``. ``reporter`` is told what
    is started and waited for; a wait gives up after ``ready_timeout`` seconds."""

    def __init__(
        self, runtime: Runtime, cluster: str, reporter: Reporter, ready_timeout: float
    ) -> None:
        self.runtime = runtime
        self.cluster = cluster
        self.reporter = reporter
        self.ready_timeout = ready_timeout

    def progress(self, message: str) -> None:
        self.reporter(message)

    def container(self, host: str) -> str:
        """The container name of node ``host``."""
        return container_name(self.cluster, host)

    # -- the cluster's network and volumes ------------------------------------------

    def ensure_network(self) -> None:
        """The cluster's own network (see :data:`CLUSTER_MTU`)."""
        self.runtime.ensure_network(
            network_name(self.cluster), labels=labels(self.cluster), mtu=CLUSTER_MTU
        )

    def ensure_volume(self, volume: str) -> None:
        self.runtime.ensure_volume(volume, labels=labels(self.cluster))

    # -- one node -------------------------------------------------------------------

    def start(
        self,
        host: str,
        role: str,
        image_role: str,
        files: Sequence[FileEntry],
        *,
        env: dict[str, str] | None = None,
        mounts: tuple[Mount, ...] = (),
        ports: tuple[PortBinding, ...] = (),
        limits: NodeLimits | None = None,
        script_role: str | None = None,
    ) -> None:
        """Create node ``host`` from the image of ``image_role``, labelled ``role``
        (a container of that name is replaced), hand it ``files`` and start it; its
        start-up script runs ``script_role`` (default: ``role``)."""
        name = self.container(host)
        if self.runtime.inspect(name) is not None:
            self.runtime.remove(name, force=True)
        self.runtime.create(
            ContainerSpec(
                name=name,
                image=image_tag(image_role),
                hostname=host,
                network=network_name(self.cluster),
                aliases=(host,),
                command=(NODE_SCRIPT_PATH, script_role or role),
                env=env or {},
                mounts=mounts,
                ports=ports,
                labels=labels(self.cluster, role, host),
                cpus=limits.cpus if limits else None,
                memory_bytes=limits.memory_bytes if limits else None,
            )
        )
        self.runtime.put_files(name, list(files))
        self.runtime.start(name)

    def exec(
        self,
        host: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = 120,
    ) -> ExecResult:
        """Run ``argv`` (no shell) on ``host``; with ``check``, ClusterError (with its
        standard error) when it fails."""
        result = self.runtime.exec(
            self.container(host), list(argv), user=user, stdin=stdin, timeout=timeout
        )
        if check and result.exit_code != 0:
            err = result.stderr.decode("utf-8", "replace").strip()[-2000:]
            raise ClusterError(f"{argv[0]} on {host} failed ({result.exit_code}): {err}")
        return result

    def put_files(self, host: str, files: Sequence[FileEntry]) -> None:
        self.runtime.put_files(self.container(host), list(files))

    def log_tail(self, host: str, lines: int = 20) -> str:
        """The last ``lines`` of the node's log, or why there is none."""
        try:
            return self.runtime.logs(self.container(host), tail=lines).strip()
        except HpcboxError as exc:
            return f"(no log: {exc})"

    def published_port(self, host: str, port: int) -> int | None:
        """The host port the node's ``port`` is published on, or None."""
        info = self.runtime.inspect(self.container(host))
        return info.ports.get(port) if info is not None else None

    def exists(self, host: str) -> bool:
        return self.runtime.inspect(self.container(host)) is not None

    def remove(self, host: str) -> None:
        self.runtime.remove(self.container(host), force=True)

    # -- waiting --------------------------------------------------------------------

    def wait(
        self, host: str, what: str, check: Callable[[], bool], timeout: float | None = None
    ) -> None:
        """Return once ``check()`` is true; ClusterError with the node's log tail when
        ``timeout`` (default: ``ready_timeout``) passes first or the node stops. A
        check raising HpcboxError counts as not yet."""
        timeout = self.ready_timeout if timeout is None else timeout
        self.reporter.waiting(f"{what} on {host}")
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            try:
                if check():
                    return
            except HpcboxError as exc:
                # Not up yet; keep trying until the deadline, and say why if it passes.
                last_error = f" (last check: {exc})"
            info = self.runtime.inspect(self.container(host))
            if info is None or info.status in ("exited", "dead", "stopped"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        raise ClusterError(
            f"{what} on {host} did not come up within {int(timeout)} s{last_error}; "
            f"last log lines:\n{self.log_tail(host)}"
        )

    def wait_names(self, hosts: Sequence[str], names: Sequence[str]) -> None:
        """Wait until each of ``hosts`` resolves every one of ``names``.

        The engine's DNS (aardvark-dns on Podman) may answer for a container only
        some seconds after it started: until then a lookup times out, and an MPI
        launcher run on a fresh cluster stalled for minutes (MPICH's ssh launches
        failing on lookups and retried ten times; seen in CI, and in about 1 run in
        5 of `mpirun -f hostfile` started right after bring-up here). A cluster is
        up only once every worker can reach the others by name.
        """
        argv = ["timeout", "5", "getent", "hosts", *names]

        def resolves(host: str) -> bool:
            return self.exec(host, argv, check=False).exit_code == 0

        for host in hosts:
            self.wait(
                host, f"name resolution of {', '.join(names)}", functools.partial(resolves, host)
            )

    # -- all of them ----------------------------------------------------------------

    def containers(self, role: str | None = None) -> list[ContainerInfo]:
        """The cluster's containers (of ``role``, if given)."""
        return self.runtime.list(labels=labels(self.cluster, role))

    def workers(self) -> list[str]:
        """The host names of the workers, ``worker2`` before ``worker10``."""
        found = [c.labels.get(LABEL_NODE, "") for c in self.containers("worker")]
        return sorted((h for h in found if h), key=lambda h: int(h.removeprefix("worker") or 0))

    def remove_all(self) -> None:
        """Remove every node of the cluster, then its network; volumes stay."""
        for container in self.containers():
            self.progress(f"removing {container.name}")
            self.runtime.remove(container.name, force=True)
        self.runtime.remove_network(network_name(self.cluster))
