"""``ClusterManager``: bring a ClusterSpec up on a container runtime, scale it, take
it down — the engine behind ``hpcbox cluster``.

The manager does what every cluster kind shares and hands the rest to the spec's
kind (:class:`~.slurm.SlurmKind` for ``slurm`` and ``mpi``,
:class:`~.jupyter.JupyterKind` for ``jupyter``; see :mod:`.kind`), which builds on
the public node operations of :mod:`.nodes`. Shared: the lock, the preflight,
the images, the cluster's network and homes volume, its record in the store, its
job target (:mod:`.registration`), status, ``exec`` on a node, and teardown.

Before anything is created, ``up`` runs the container preflight of
``hpcbox doctor`` (a container starts with an init; two containers on one
network resolve each other by name) and fails within seconds with the fix.

A failing step raises :class:`~.nodes.ClusterError` naming the component, with
the tail of its log, and the cluster is recorded as FAILED; so is an up
interrupted by Ctrl-C. Its containers are left for inspection: ``down`` removes
them, and so does the next ``up`` of that name, which then tries again. A
process that brings a cluster up (or scales it) holds the cluster's lock
(:mod:`.cluster_lock`), so an up left CREATING by a process that is gone is told
from one still running, and retried too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence

from hpcbox.clusters import preflight as container_checks
from hpcbox.clusters.cluster_lock import cluster_lock
from hpcbox.clusters.images import ImageBuilder, image_tag
from hpcbox.clusters.jupyter import JupyterKind, hub_url
from hpcbox.clusters.keys import ClusterKeys, load_or_create_keys, remove_keys
from hpcbox.clusters.kind import Kind, KindStatus
from hpcbox.clusters.kube import KubeClusters, KubePlacement, ToolsFactory
from hpcbox.clusters.kube.manager import RUNTIME as KUBERNETES
from hpcbox.clusters.naming import LABEL_NODE, LABEL_ROLE
from hpcbox.clusters.nodes import Nodes
from hpcbox.clusters.registration import register_target, unregister_target
from hpcbox.clusters.render.helm import HelmOptions
from hpcbox.clusters.render.jupyter import front_host
from hpcbox.clusters.slurm import SlurmKind, db_volume
from hpcbox.clusters.spec import (
    ClusterKind,
    ClusterSpec,
    ClusterState,
    RuntimeName,
    UpAction,
    up_action,
)
from hpcbox.clusters.status import ClusterStatus, NodeState
from hpcbox.clusters.store import ClusterRecord, ClusterStore
from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    UnavailableError,
)
from hpcbox.core.progress import Reporter, as_reporter
from hpcbox.core.settings import Settings
from hpcbox.infra.runtimes import ExecResult, Runtime, connect_runtime

__all__ = ["ClusterManager"]

Progress = Callable[[str], None]


class ClusterManager:
    """Clusters on a container runtime. Methods raise :class:`HpcboxError` subclasses."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ClusterStore,
        runtime: Runtime | None = None,
        progress: Reporter | Progress | None = None,
        ready_timeout: float = 180.0,
        host_ca: str | None = None,
        preflight: bool = True,
        kube_tools: ToolsFactory | None = None,
    ) -> None:
        """``host_ca``: a CA bundle that image builds trust (for pip and npm behind a
        TLS-intercepting proxy); see :class:`~hpcbox.clusters.images.ImageBuilder`.
        ``preflight``: run the container checks before each ``up``. ``progress``:
        a :class:`~hpcbox.core.progress.Reporter` (a bring-up is one step, and what
        it waits for is shown) or a plain line callable. ``kube_tools``: helm and
        kubectl for clusters on Kubernetes (default: the binaries, found as
        :func:`~hpcbox.infra.kube.find_tool` says)."""
        self.settings = settings
        self.store = store
        self._runtime = runtime
        self.reporter: Reporter = as_reporter(progress)
        self.progress: Progress = self.reporter
        self.ready_timeout = ready_timeout
        self.host_ca = host_ca
        self.preflight = preflight
        self._kube_tools = kube_tools
        self._kube: KubeClusters | None = None

    def kube(self) -> KubeClusters:
        """Clusters whose runtime is ``kubernetes`` (:mod:`hpcbox.clusters.kube`)."""
        if self._kube is None:
            self._kube = KubeClusters(
                self.settings, store=self.store, reporter=self.reporter, tools=self._kube_tools
            )
        return self._kube

    def runtime(self, preference: str = "auto") -> Runtime:
        if self._runtime is None:
            self._runtime = connect_runtime(
                preference,  # type: ignore[arg-type]
                state_dir=self.settings.home / "runtime",
            )
        return self._runtime

    def nodes(self, name: str) -> Nodes:
        """The nodes of cluster ``name`` (on the runtime, connected if need be)."""
        return Nodes(self.runtime(), name, self.reporter, self.ready_timeout)

    def _keys(self, name: str) -> ClusterKeys:
        return load_or_create_keys(self.settings.home, name)

    def _kind(self, spec: ClusterSpec, keys: ClusterKeys) -> Kind:
        nodes = self.nodes(spec.name)
        if spec.kind is ClusterKind.JUPYTER:
            return JupyterKind(nodes, keys)
        return SlurmKind(nodes, keys)

    # -- bring-up -------------------------------------------------------------------

    def up(
        self,
        spec: ClusterSpec,
        *,
        replace: bool = False,
        placement: KubePlacement | None = None,
        helm_options: HelmOptions | None = None,
    ) -> ClusterRecord:
        """Bring ``spec`` up and return its record once every node is ready.

        Runtime ``kubernetes``: installs the kind's Helm chart in ``placement``
        (default: the current kubeconfig context, namespace ``hpcbox-<name>``) with
        ``helm_options`` (see :meth:`KubeClusters.up`).

        A cluster of that name that FAILED, or whose up was interrupted, is
        cleaned up (containers and network; homes and keys are kept) and brought
        up again. A RUNNING one is refused (ConflictError) unless ``replace``,
        which takes it down first. UnavailableError, before anything is created
        or removed, when the container preflight fails.
        """
        if spec.runtime is RuntimeName.KUBERNETES:
            return self.kube().up(
                spec,
                placement or KubePlacement.for_cluster(spec.name),
                options=helm_options,
                replace=replace,
            )
        with cluster_lock(self.settings.home, spec.name):
            existing = self.store.find(spec.name)
            if (
                existing is not None
                and existing.runtime == KUBERNETES
                and existing.state != ClusterState.DOWN
            ):
                raise ConflictError(
                    f"cluster {spec.name!r} is on Kubernetes ({existing.state}): "
                    f"`hpcbox cluster down {spec.name}` first"
                )
            action = up_action(existing.state if existing else None, replace=replace)
            if action is UpAction.REFUSE:
                state = existing.state if existing else "?"
                raise ConflictError(
                    f"cluster {spec.name!r} is already up ({state}): take it down first "
                    f"(`hpcbox cluster down {spec.name}`), or bring it up again with --replace"
                )
            rt = self.runtime(spec.runtime.value)
            builder = self._image_builder(rt)
            self._preflight(rt, builder)
            if existing is not None and action is not UpAction.CREATE:
                why = "replacing it" if action is UpAction.REPLACE else "removing what it left"
                self.progress(f"cluster {spec.name} is {existing.state}: {why}")
                self._remove_nodes(spec.name)
            self.store.create(spec, runtime=rt.name, replace=action is not UpAction.CREATE)
            try:
                with self.reporter.step(
                    f"bringing up cluster {spec.name}", waiting_for="the controller"
                ):
                    self._bring_up(spec, builder)
            except HpcboxError as exc:
                self._failed(spec.name, str(exc))
                raise
            except Exception as exc:
                self._failed(spec.name, f"internal error: {exc}")
                raise
            except BaseException as exc:  # Ctrl-C, or the process told to exit
                what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
                self._failed(spec.name, f"interrupted ({what}) while coming up")
                raise
        return self.store.get(spec.name)

    def _failed(self, name: str, message: str) -> None:
        hint = (
            f"; `hpcbox cluster up` again cleans up and retries, "
            f"`hpcbox cluster down {name}` removes it"
        )
        self.store.update(
            name, state=ClusterState.FAILED.value, message=message[: 4000 - len(hint)] + hint
        )

    def _image_builder(self, rt: Runtime) -> ImageBuilder:
        return ImageBuilder(
            rt,
            state_dir=self.settings.home / "images",
            progress=self.progress,
            host_ca=self.host_ca,
        )

    def _preflight(self, rt: Runtime, builder: ImageBuilder) -> None:
        """The container checks of ``hpcbox doctor``; UnavailableError with the fix.

        What is certain without a container (Podman on CNI, say) fails before
        any image is built; then the base image (built now if missing, as the
        bring-up needs it anyway) runs the real checks, in seconds.
        """
        if not self.preflight:
            return
        started = time.monotonic()
        failed = container_checks.static_checks(rt.name, container_checks.podman_facts(rt))
        if failed:
            raise UnavailableError(container_checks.preflight_message(failed))
        base = image_tag("base")
        if not rt.image_exists(base):
            builder.build(["base"])
        self.progress("checking the container engine: an init, names resolved between containers")
        failed = [
            check for check in container_checks.preflight_checks(rt, image=base) if not check.ok
        ]
        if failed:
            raise UnavailableError(container_checks.preflight_message(failed))
        self.progress(f"container engine ok ({time.monotonic() - started:.1f} s)")

    def _bring_up(self, spec: ClusterSpec, builder: ImageBuilder) -> None:
        started = time.monotonic()
        keys = self._keys(spec.name)
        kind = self._kind(spec, keys)
        roles = kind.image_roles(spec)
        missing = builder.missing(roles)
        if missing:
            self.progress(f"building images: {', '.join(missing)}")
            builder.build(roles)
        nodes = self.nodes(spec.name)
        nodes.ensure_network()
        nodes.ensure_volume(spec.home_volume)
        up = kind.up(spec)
        self.store.update(spec.name, state="RUNNING", ssh_port=up.ssh_port, message=None)
        if up.ssh_port is not None:
            register_target(self.store.engine, spec, keys, up.ssh_port)
        self.progress(
            f"cluster {spec.name} is up: {up.summary} ({time.monotonic() - started:.1f} s)"
        )

    # -- inspection -----------------------------------------------------------------

    def list_clusters(self) -> list[ClusterRecord]:
        return self.store.list_clusters()

    def status(self, name: str) -> ClusterStatus:
        record = self.store.get(name)
        if record.runtime == KUBERNETES:
            return self.kube().status(record)
        keys = self._keys(name)
        nodes = self.nodes(name)
        kind_status = KindStatus()
        if record.state in ("RUNNING", "SCALING"):
            # One that does not answer (yet) shows its containers only.
            with contextlib.suppress(HpcboxError, ValueError, KeyError):
                kind_status = self._kind(record.spec, keys).status(record.spec)
        node_states: list[NodeState] = []
        for container in nodes.containers():
            host = container.labels.get(LABEL_NODE, container.name)
            state, parts = kind_status.node_states.get(host, (None, ()))
            node_states.append(
                NodeState(
                    host,
                    container.labels.get(LABEL_ROLE, ""),
                    container.name,
                    container.status,
                    state,
                    parts,
                )
            )
        node_states.sort(key=lambda n: (n.role != "controller", n.name))
        ssh = {
            "host": "127.0.0.1",
            "port": record.ssh_port,
            "user": "root",
            "admin_key": str(keys.admin_key_path),
            "known_hosts": str(keys.known_hosts_path),
            "host_key": keys.host_public_key,
        }
        return ClusterStatus(
            record,
            tuple(node_states),
            kind_status.partitions,
            ssh,
            hub_url=hub_url(nodes, record.spec),
            engines=kind_status.engines,
        )

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        node: str | None = None,
        user: str | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run ``argv`` (no shell) on a node (default: the controller/login node, or
        the hub of kind jupyter)."""
        record = self.store.get(name)
        if record.runtime == KUBERNETES:
            return self.kube().exec(record, argv, node=node, user=user, stdin=stdin)
        if not argv:
            raise InvalidInputError("give a command to run", field="CMD")
        host = node or front_host(record.spec)
        nodes = self.nodes(name)
        if not nodes.exists(host):
            raise NotFoundError(f"cluster {record.name} has no node {host!r}")
        return nodes.exec(host, argv, user=user, stdin=stdin, check=False, timeout=None)

    def ssh_argv(self, name: str, *, user: str | None = None) -> list[str]:
        """The ``ssh`` command line that logs in to the cluster's login node."""
        record = self.store.get(name)
        if record.ssh_port is None:
            raise PermanentError(f"cluster {name} has no SSH endpoint (state {record.state})")
        host = "127.0.0.1"
        if record.runtime == KUBERNETES:
            host = self.kube().status(record).ssh["host"] or host
        keys = self._keys(name)
        return [
            "ssh",
            "-p",
            str(record.ssh_port),
            "-i",
            str(keys.admin_key_path),
            "-o",
            f"UserKnownHostsFile={keys.known_hosts_path}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            f"{user or 'root'}@{host}",
        ]

    # -- scaling --------------------------------------------------------------------

    def scale(
        self, name: str, workers: int, *, force: bool = False, timeout: float | None = None
    ) -> ClusterRecord:
        """Add or remove workers while jobs run. Removing SLURM workers drains them and
        waits for their jobs to finish (or kills them with ``force``) before removing
        them."""
        if not 0 <= workers <= 64:
            raise InvalidInputError("must be between 0 and 64", field="--workers")
        if self.store.get(name).runtime == KUBERNETES:
            return self.kube().scale(name, workers, force=force, timeout=timeout)
        with cluster_lock(self.settings.home, name):
            return self._scale(name, workers, force=force, timeout=timeout)

    def _scale(
        self, name: str, workers: int, *, force: bool, timeout: float | None
    ) -> ClusterRecord:
        record = self.store.get(name)
        if record.state != ClusterState.RUNNING:
            raise PermanentError(f"cluster {name} is {record.state}, not RUNNING")
        spec = record.spec
        nodes = self.nodes(name)
        current = nodes.workers()
        self.store.update(name, state="SCALING")
        try:
            kind = self._kind(spec, self._keys(name))
            kind.scale(spec, current, workers, force=force, timeout=timeout)
        finally:
            count = len(nodes.workers())
            self.store.update(
                name,
                state="RUNNING",
                workers=count,
                spec=spec.model_copy(
                    update={"workers": spec.workers.model_copy(update={"count": count})}
                ),
            )
        return self.store.get(name)

    # -- teardown -------------------------------------------------------------------

    def down(self, name: str, *, purge: bool = False) -> None:
        """Remove the cluster's containers and network; homes (and accounting data,
        and the cluster's keys) are kept unless ``purge``."""
        record = self.store.get(name)
        if record.runtime == KUBERNETES:
            self.kube().down(record, purge=purge)
            return
        rt = self.runtime(record.runtime)
        self._remove_nodes(name)
        if purge:
            for volume in (record.spec.home_volume, db_volume(name)):
                if rt.volume_exists(volume):
                    rt.remove_volume(volume)
            remove_keys(self.settings.home, name)
            self.store.delete(name)
        else:
            self.store.update(name, state=ClusterState.DOWN.value, ssh_port=None)

    def _remove_nodes(self, name: str) -> None:
        """Remove the cluster's containers, its network and its job target; volumes
        (homes, accounting data) and keys stay."""
        self.nodes(name).remove_all()
        # Its SSH endpoint is gone (a new `up` publishes a new port and re-registers).
        unregister_target(self.store.engine, name)
