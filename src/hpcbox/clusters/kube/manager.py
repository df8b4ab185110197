"""``KubeClusters``: a ClusterSpec as a Helm release on the current kubeconfig context,
behind the same commands as on Podman (:class:`~hpcbox.clusters.manager.ClusterManager`
hands clusters whose runtime is ``kubernetes`` to it).

- ``up``: ``helm upgrade --install`` of the kind's chart with the spec's values
  (:mod:`hpcbox.clusters.render.helm`), hpcbox's admin key and SSH host key added so
  that the login node is hpcbox's as on Podman; then waits until every pod is Ready
  and, for SLURM, ``sinfo`` on the controller shows every worker idle (for
  jupyter, the ipyparallel controller counts every engine). Images are
  never loaded here: a pod waiting for one (ErrImageNeverPull, ImagePullBackOff)
  stops the wait with the images to load (``scripts/kube.sh load IMAGE...``).
  With a NodePort login Service, the cluster is registered as a job target.
- ``status``: pods (and SLURM's view); for jupyter the hub's URL (its NodePort
  Service ``hub-http`` on a node's address) and the engines the controller counts.
- ``scale``: SLURM scale-in drains the workers that go (``scontrol update
  nodename=X state=drain``), waits until they run no job, then ``helm upgrade
  --reuse-values --set workers.count=N`` and ``scontrol delete nodename=X``;
  scale-out upgrades, then waits for the new workers to be idle. The chart's
  hostfile ConfigMap follows, and the wait ends when the controller sees it.
  jupyter: upgrades, then waits until the controller counts the new engines.
- ``down``: ``helm uninstall``, then waits until no pod, Secret or claim of the
  release remains (but the homes claim, kept unless ``keepHomes`` is false or
  ``purge``).

helm and kubectl are reached through :class:`~hpcbox.infra.kube.HelmApi` and
:class:`~hpcbox.infra.kube.KubectlApi` only (the unit tests' fakes stand there).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hpcbox.clusters.cluster_lock import cluster_lock
from hpcbox.clusters.jupyter import ENGINE_COUNT_SCRIPT, HUB_PYTHON
from hpcbox.clusters.keys import ClusterKeys, load_or_create_keys, remove_keys
from hpcbox.clusters.kube.charts import charts_dir
from hpcbox.clusters.kube.placement import KubePlacement
from hpcbox.clusters.kube.pods import (
    LOAD_HINT,
    component,
    images_missing,
    node_name,
    pod_ready,
    pod_state,
)
from hpcbox.clusters.registration import register_target, unregister_target
from hpcbox.clusters.render.helm import HelmOptions, chart_name, helm_values
from hpcbox.clusters.render.jupyter import HUB_HOST, front_host
from hpcbox.clusters.render.layout import CONTROLLER_HOST, HOSTFILE
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.spec import ClusterKind, ClusterSpec, ClusterState, UpAction, up_action
from hpcbox.clusters.status import PARTITIONS_ARGV, ClusterStatus, NodeState, parse_partitions
from hpcbox.clusters.store import ClusterRecord, ClusterStore
from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    UnavailableError,
)
from hpcbox.core.progress import Reporter
from hpcbox.core.settings import Settings
from hpcbox.infra.kube import Helm, HelmApi, Kubectl, KubectlApi, find_tool
from hpcbox.infra.runtimes import ExecResult

__all__ = ["RUNTIME", "KubeClusters", "ToolsFactory", "default_tools"]

#: The ``runtime`` a Kubernetes cluster's record holds.
RUNTIME = "kubernetes"
INSTANCE = "app.kubernetes.io/instance"
#: The claim the charts keep at uninstall when ``keepHomes`` is true.
HOME_CLAIM = "home"
#: The Services that publish a cluster: SLURM's SSH login, the jupyter chart's hub.
LOGIN_SERVICE = "login"
HUB_SERVICE = "hub-http"

ToolsFactory = Callable[[KubePlacement], tuple[HelmApi, KubectlApi]]


def default_tools(settings: Settings) -> ToolsFactory:
    """helm and kubectl as subprocesses, found as :func:`~hpcbox.infra.kube.find_tool` says."""

    def make(placement: KubePlacement) -> tuple[HelmApi, KubectlApi]:
        context = placement.context_
        helm = Helm(find_tool("helm", settings.kube.helm), context)
        kubectl = Kubectl(find_tool("kubectl", settings.kube.kubectl), context)
        return helm, kubectl

    return make


def _text(result: ExecResult) -> str:
    return result.stdout.decode("utf-8", "replace")


class KubeClusters:
    """Clusters as Helm releases. ``tools`` makes the helm/kubectl adapters for a
    placement; ``ready_timeout``: how long one wait (pods Ready, workers idle, a drain
    with no timeout of its own excepted) may last."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ClusterStore,
        reporter: Reporter,
        tools: ToolsFactory | None = None,
        charts: Path | None = None,
        ready_timeout: float = 600.0,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.reporter = reporter
        self._tools = tools or default_tools(settings)
        self._charts = charts
        self.ready_timeout = ready_timeout
        self.poll = poll
        self._sleep = sleep
        self._clock = clock

    # -- plumbing -------------------------------------------------------------------

    def charts(self) -> Path:
        if self._charts is None:
            self._charts = charts_dir(self.settings)
        return self._charts

    def _keys(self, name: str) -> ClusterKeys:
        return load_or_create_keys(self.settings.home, name)

    def _placement(self, name: str) -> KubePlacement:
        return KubePlacement.load(self.settings.home, name)

    def _wait(
        self,
        what: str,
        done: Callable[[], bool],
        *,
        timeout: float | None = None,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Poll ``done`` until true; ``check`` may raise to stop early (a missing image)."""
        limit = self.ready_timeout if timeout is None else timeout
        deadline = self._clock() + limit
        self.reporter.waiting(what)
        last: HpcboxError | None = None
        while True:
            if check is not None:
                check()
            try:
                if done():
                    return
            except HpcboxError as exc:
                last = exc  # not answering yet: asked again until the deadline
            if self._clock() > deadline:
                said = f" (last: {last})" if last is not None else ""
                raise UnavailableError(f"gave up after {limit:.0f} s waiting for {what}{said}")
            self._sleep(self.poll)

    def _pods(self, kubectl: KubectlApi, placement: KubePlacement, name: str) -> list[Any]:
        return kubectl.get("pods", placement.namespace, f"{INSTANCE}={name}")

    def _pod_for(self, kubectl: KubectlApi, placement: KubePlacement, name: str, node: str) -> Any:
        for pod in self._pods(kubectl, placement, name):
            if node_name(pod) == node and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                return pod
        raise NotFoundError(f"cluster {name} has no node {node!r}")

    def _exec(
        self,
        kubectl: KubectlApi,
        placement: KubePlacement,
        name: str,
        node: str,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = 60.0,
    ) -> ExecResult:
        pod = self._pod_for(kubectl, placement, name, node)
        return kubectl.exec(
            pod["metadata"]["name"],
            argv,
            namespace=placement.namespace,
            stdin=stdin,
            timeout=timeout,
        )

    def _slurm(
        self, kubectl: KubectlApi, placement: KubePlacement, name: str, argv: Sequence[str]
    ) -> str:
        result = self._exec(kubectl, placement, name, CONTROLLER_HOST, argv)
        if result.exit_code != 0:
            raise PermanentError(
                f"{' '.join(argv[:3])} on the controller failed: "
                f"{result.stderr.decode('utf-8', 'replace').strip()}"
            )
        return _text(result)

    # -- bring-up -------------------------------------------------------------------

    def values(self, spec: ClusterSpec, keys: ClusterKeys, options: HelmOptions) -> dict[str, Any]:
        """The chart's values: the spec's, and for SLURM hpcbox's admin key and SSH
        host key (root logs in with the key ``cluster status`` shows, and the host key
        is pinned, as on Podman)."""
        if spec.kind is not ClusterKind.JUPYTER and options.admin_public_key is None:
            options = dataclasses.replace(options, admin_public_key=keys.admin_public_key)
        values = helm_values(spec, options)
        if spec.kind is not ClusterKind.JUPYTER:
            values["ssh"] = {"hostKeys": {"ssh_host_ed25519_key": keys.host_key}}
        return values

    def up(
        self,
        spec: ClusterSpec,
        placement: KubePlacement,
        *,
        options: HelmOptions | None = None,
        replace: bool = False,
    ) -> ClusterRecord:
        """Install (or upgrade) the release and wait until the cluster is usable."""
        options = options or HelmOptions(service_type="NodePort")
        with cluster_lock(self.settings.home, spec.name):
            existing = self.store.find(spec.name)
            action = up_action(existing.state if existing else None, replace=replace)
            if action is UpAction.REFUSE:
                state = existing.state if existing else "?"
                raise ConflictError(
                    f"cluster {spec.name!r} is already up ({state}): take it down first "
                    f"(`hpcbox cluster down {spec.name}`), or bring it up again with --replace"
                )
            if (
                existing is not None
                and existing.runtime != RUNTIME
                and existing.state != ClusterState.DOWN
            ):
                raise ConflictError(
                    f"cluster {spec.name!r} is on {existing.runtime} ({existing.state}): "
                    f"`hpcbox cluster down {spec.name}` first"
                )
            helm, kubectl = self._tools(placement)
            chart = str(self.charts() / chart_name(spec))
            keys = self._keys(spec.name)
            values = self.values(spec, keys, options)
            if existing is not None and action is UpAction.REPLACE:
                self.reporter(f"cluster {spec.name} is {existing.state}: replacing it")
                self._uninstall(helm, kubectl, self._placement(spec.name), spec.name, keep=True)
            self.store.create(spec, runtime=RUNTIME, replace=action is not UpAction.CREATE)
            placement.save(self.settings.home, spec.name)
            started = self._clock()
            try:
                with self.reporter.step(
                    f"installing cluster {spec.name} (chart {chart_name(spec)}, namespace "
                    f"{placement.namespace})",
                    waiting_for="helm",
                ):
                    helm.upgrade_install(spec.name, chart, placement.namespace, values)
                    self._wait_ready(kubectl, placement, spec)
                    port, host = self._login(kubectl, placement, spec)
                self.store.update(spec.name, state="RUNNING", ssh_port=port, message=None)
                if port is not None and host is not None:
                    register_target(self.store.engine, spec, keys, port, host=host)
            except HpcboxError as exc:
                self._failed(spec.name, str(exc))
                raise
            except BaseException as exc:
                what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
                self._failed(spec.name, f"interrupted ({what}) while coming up")
                raise
            self.reporter(
                f"cluster {spec.name} is up on Kubernetes: {spec.workers.count} workers "
                f"({self._clock() - started:.1f} s)"
            )
        return self.store.get(spec.name)

    def _failed(self, name: str, message: str) -> None:
        hint = f"; `hpcbox cluster up` again retries, `hpcbox cluster down {name}` uninstalls it"
        self.store.update(
            name, state=ClusterState.FAILED.value, message=message[: 4000 - len(hint)] + hint
        )

    @staticmethod
    def expected_pods(spec: ClusterSpec) -> int:
        if spec.kind is ClusterKind.JUPYTER:
            return 1 + spec.workers.count
        return 1 + spec.workers.count + (2 if spec.accounting else 0)

    def _check_images(self, kubectl: KubectlApi, placement: KubePlacement, name: str) -> None:
        missing = sorted(
            {image for pod in self._pods(kubectl, placement, name) for image in images_missing(pod)}
        )
        if missing:
            raise UnavailableError(
                f"the cluster's nodes lack the images {', '.join(missing)} (hpcbox loads "
                f"none itself): build them (`hpcbox images build`) and load them into the "
                f"cluster (`{LOAD_HINT} {' '.join(missing)}`), or push them to a registry "
                f"the cluster pulls from (--image-prefix)"
            )

    def _wait_ready(self, kubectl: KubectlApi, placement: KubePlacement, spec: ClusterSpec) -> None:
        self._wait_pods(kubectl, placement, spec)
        if spec.kind is ClusterKind.JUPYTER:
            self._wait_engines(kubectl, placement, spec, spec.workers.count)
        else:
            self._wait_idle(kubectl, placement, spec, _workers(spec.workers.count))
            self._wait_hostfile(kubectl, placement, spec, spec.workers.count)

    def _wait_idle(
        self,
        kubectl: KubectlApi,
        placement: KubePlacement,
        spec: ClusterSpec,
        workers: Sequence[str],
    ) -> None:
        def idle() -> bool:
            states = self._node_states(kubectl, placement, spec.name)
            return all(states.get(w, ("",))[0].startswith("idle") for w in workers)

        what = f"{', '.join(workers)} idle (sinfo)" if workers else "slurmctld (sinfo)"
        self._wait(what, idle)

    def _wait_hostfile(
        self, kubectl: KubectlApi, placement: KubePlacement, spec: ClusterSpec, count: int
    ) -> None:
        wanted = render_hostfile(
            [f"{w}.worker" for w in _workers(count)], slots=spec.workers.cpus, flavour=spec.mpi
        )

        def current() -> bool:
            result = self._exec(kubectl, placement, spec.name, CONTROLLER_HOST, ["cat", HOSTFILE])
            return result.exit_code == 0 and _text(result) == wanted

        self._wait(f"the hostfile with {count} workers on the controller", current)

    def _engines(
        self,
        kubectl: KubectlApi,
        placement: KubePlacement,
        name: str,
        *,
        want: int = -1,
        wait: float = 0.0,
    ) -> int:
        """The engines the ipyparallel controller counts (a client on the hub, as the
        ipyparallel account), after waiting up to ``wait`` s for ``want`` of them."""
        argv = [
            "runuser", "-u", "ipyparallel", "--",
            HUB_PYTHON, "-c", ENGINE_COUNT_SCRIPT, str(want), f"{wait:.0f}",
        ]  # fmt: skip
        result = self._exec(kubectl, placement, name, HUB_HOST, argv, timeout=wait + 60)
        if result.exit_code != 0:
            raise PermanentError(
                "counting the engines on the hub failed: "
                f"{result.stderr.decode('utf-8', 'replace').strip()[-2000:]}"
            )
        try:
            return int(json.loads(_text(result).strip().splitlines()[-1])["engines"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise PermanentError(f"the engine count on the hub is unreadable: {exc}") from exc

    def _wait_engines(
        self, kubectl: KubectlApi, placement: KubePlacement, spec: ClusterSpec, workers: int
    ) -> None:
        want = workers * spec.engines_per_worker
        self._wait(
            f"{want} ipyparallel engines (the controller's count)",
            lambda: self._engines(kubectl, placement, spec.name, want=want, wait=10) == want,
        )

    def _login(
        self, kubectl: KubectlApi, placement: KubePlacement, spec: ClusterSpec
    ) -> tuple[int | None, str | None]:
        """The login node's NodePort and a node address, or (None, None)."""
        if spec.kind is ClusterKind.JUPYTER:
            return None, None
        return self._node_port(kubectl, placement, spec.name, LOGIN_SERVICE)

    def _hub_url(self, kubectl: KubectlApi, placement: KubePlacement, name: str) -> str | None:
        """``http://NODE:PORT/``: the jupyter chart's hub on its NodePort, or None."""
        port, host = self._node_port(kubectl, placement, name, HUB_SERVICE)
        if port is None or host is None:
            return None
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def _node_port(
        self, kubectl: KubectlApi, placement: KubePlacement, name: str, service_name: str
    ) -> tuple[int | None, str | None]:
        """The NodePort of the release's Service ``service_name`` and a node address,
        or (None, None)."""
        services = kubectl.get("services", placement.namespace, f"{INSTANCE}={name}")
        port: int | None = None
        for service in services:
            if service["metadata"]["name"] != service_name:
                continue
            for entry in service.get("spec", {}).get("ports", []):
                if entry.get("nodePort"):
                    port = int(entry["nodePort"])
        if port is None:
            return None, None
        for node in kubectl.get("nodes", placement.namespace):
            for address in node.get("status", {}).get("addresses", []):
                if address.get("type") == "InternalIP":
                    return port, str(address["address"])
        return None, None

    # -- inspection -----------------------------------------------------------------

    def _node_states(
        self, kubectl: KubectlApi, placement: KubePlacement, name: str
    ) -> dict[str, tuple[str, tuple[str, ...]]]:
        out = self._slurm(kubectl, placement, name, ["sinfo", "-h", "-N", "-o", "%N|%T|%P"])
        return parse_node_states(out)

    def status(self, record: ClusterRecord) -> ClusterStatus:
        placement = self._placement(record.name)
        _, kubectl = self._tools(placement)
        pods = self._pods(kubectl, placement, record.name)
        slurm: dict[str, tuple[str, tuple[str, ...]]] = {}
        partitions: tuple[dict[str, Any], ...] = ()
        hub_url: str | None = None
        engines: int | None = None
        if record.spec.kind is ClusterKind.JUPYTER and record.state in ("RUNNING", "SCALING"):
            try:
                hub_url = self._hub_url(kubectl, placement, record.name)
                engines = self._engines(kubectl, placement, record.name)
            except HpcboxError:
                pass
        elif record.state in ("RUNNING", "SCALING"):
            try:
                slurm = self._node_states(kubectl, placement, record.name)
                partitions = parse_partitions(
                    self._slurm(kubectl, placement, record.name, list(PARTITIONS_ARGV))
                )
            except (HpcboxError, ValueError):
                pass
        nodes = []
        for pod in pods:
            host = node_name(pod)
            state, parts = slurm.get(host, (None, ()))
            nodes.append(
                NodeState(
                    host, component(pod), pod["metadata"]["name"], pod_state(pod), state, parts
                )
            )
        nodes.sort(key=lambda n: (n.role not in ("controller", "hub"), n.name))
        keys = self._keys(record.name)
        login_host: str | None = None
        if record.ssh_port is not None:
            _, login_host = self._login(kubectl, placement, record.spec)
        ssh = {
            "host": login_host,
            "port": record.ssh_port,
            "user": "root",
            "admin_key": str(keys.admin_key_path),
            "known_hosts": str(keys.known_hosts_path),
            "host_key": keys.host_public_key,
            "namespace": placement.namespace,
        }
        return ClusterStatus(record, tuple(nodes), partitions, ssh, hub_url, engines)

    def exec(
        self,
        record: ClusterRecord,
        argv: Sequence[str],
        *,
        node: str | None = None,
        user: str | None = None,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """``kubectl exec`` on a node (default: the controller, or the hub); ``user``:
        as that user, in their home (``runuser``)."""
        if not argv:
            raise InvalidInputError("give a command to run", field="CMD")
        placement = self._placement(record.name)
        _, kubectl = self._tools(placement)
        command = list(argv)
        if user is not None and user != "root":
            command = [
                "runuser", "-u", user, "--",
                "env", "-C", f"/home/{user}", f"HOME=/home/{user}", f"USER={user}",
                f"LOGNAME={user}", *command,
            ]  # fmt: skip
        return self._exec(
            kubectl,
            placement,
            record.name,
            node or front_host(record.spec),
            command,
            stdin=stdin,
            timeout=None,
        )

    # -- scaling --------------------------------------------------------------------

    def scale(
        self, name: str, workers: int, *, force: bool = False, timeout: float | None = None
    ) -> ClusterRecord:
        with cluster_lock(self.settings.home, name):
            record = self.store.get(name)
            if record.state != ClusterState.RUNNING:
                raise PermanentError(f"cluster {name} is {record.state}, not RUNNING")
            spec = record.spec
            placement = self._placement(name)
            helm, kubectl = self._tools(placement)
            chart = str(self.charts() / chart_name(spec))
            current = spec.workers.count
            self.store.update(name, state="SCALING")
            count = current
            try:
                with self.reporter.step(
                    f"scaling cluster {name} from {current} to {workers} workers",
                    waiting_for="helm",
                ):
                    count = self._scale(
                        helm, kubectl, placement, spec, chart, current, workers, force, timeout
                    )
            finally:
                self.store.update(
                    name,
                    state="RUNNING",
                    workers=count,
                    spec=spec.model_copy(
                        update={"workers": spec.workers.model_copy(update={"count": count})}
                    ),
                )
        return self.store.get(name)

    def _scale(
        self,
        helm: HelmApi,
        kubectl: KubectlApi,
        placement: KubePlacement,
        spec: ClusterSpec,
        chart: str,
        current: int,
        workers: int,
        force: bool,
        timeout: float | None,
    ) -> int:
        """Returns the worker count the cluster has at the end."""
        if workers == current:
            return current
        slurm = spec.kind is not ClusterKind.JUPYTER
        going = _workers(current)[workers:]
        if slurm and going:
            self._drain(kubectl, placement, spec.name, going, force=force, timeout=timeout)
        helm.upgrade_install(
            spec.name,
            chart,
            placement.namespace,
            reuse_values=True,
            set_values={"workers.count": str(workers)},
        )
        scaled = spec.model_copy(
            update={"workers": spec.workers.model_copy(update={"count": workers})}
        )
        self._wait_pods(kubectl, placement, scaled)
        if not slurm:
            self._wait_engines(kubectl, placement, spec, workers)
        else:
            for host in going:
                self._slurm(
                    kubectl, placement, spec.name, ["scontrol", "delete", f"nodename={host}"]
                )
            self._wait_idle(kubectl, placement, spec, _workers(workers)[current:])
            self._wait_hostfile(kubectl, placement, spec, workers)
        return workers

    def _wait_pods(self, kubectl: KubectlApi, placement: KubePlacement, spec: ClusterSpec) -> None:
        expected = self.expected_pods(spec)

        def ready() -> bool:
            # Terminating pods (scale-in, a replaced release) count until they are gone.
            pods = self._pods(kubectl, placement, spec.name)
            return len(pods) == expected and all(pod_ready(p) for p in pods)

        self._wait(
            f"{expected} pods Ready",
            ready,
            check=lambda: self._check_images(kubectl, placement, spec.name),
        )

    def _drain(
        self,
        kubectl: KubectlApi,
        placement: KubePlacement,
        name: str,
        hosts: Sequence[str],
        *,
        force: bool,
        timeout: float | None,
    ) -> None:
        """Drain ``hosts`` (all at once), then wait until none runs a job."""
        self.reporter(f"draining {', '.join(hosts)}")
        for host in hosts:
            self._slurm(
                kubectl,
                placement,
                name,
                [
                    "scontrol",
                    "update",
                    f"nodename={host}",
                    "state=drain",
                    "reason=hpcbox-scale-down",
                ],
            )
            if force:
                self._exec(kubectl, placement, name, CONTROLLER_HOST, ["scancel", "-w", host])
        deadline = None if timeout is None else self._clock() + timeout
        for host in hosts:

            def empty(host: str = host) -> bool:
                argv = ["squeue", "-h", "-w", host, "-o", "%i"]
                return not self._slurm(kubectl, placement, name, argv).strip()

            left = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                self._wait(f"{host} to run no job", empty, timeout=10**9 if left is None else left)
            except UnavailableError as exc:
                # They stay: back to service, as they were.
                for back in hosts:
                    argv = ["scontrol", "update", f"nodename={back}", "state=resume"]
                    self._exec(kubectl, placement, name, CONTROLLER_HOST, argv)
                raise UnavailableError(
                    f"{host} still runs jobs after {timeout} s (the workers are back in "
                    "service); use --force to cancel them"
                ) from exc

    # -- teardown -------------------------------------------------------------------

    def down(self, record: ClusterRecord, *, purge: bool = False) -> None:
        """Uninstall the release; homes (the ``home`` claim) stay unless the values say
        ``keepHomes: false`` or ``purge``."""
        placement = self._placement(record.name)
        helm, kubectl = self._tools(placement)
        with self.reporter.step(f"uninstalling cluster {record.name}", waiting_for="helm"):
            self._uninstall(helm, kubectl, placement, record.name, keep=not purge)
        unregister_target(self.store.engine, record.name)
        if purge:
            remove_keys(self.settings.home, record.name)
            self.store.delete(record.name)
        else:
            self.store.update(record.name, state=ClusterState.DOWN.value, ssh_port=None)

    def _uninstall(
        self,
        helm: HelmApi,
        kubectl: KubectlApi,
        placement: KubePlacement,
        name: str,
        *,
        keep: bool,
    ) -> None:
        values = helm.get_values(name, placement.namespace)
        keep_homes = keep and (values or {}).get("keepHomes", True) is not False
        helm.uninstall(name, placement.namespace)
        selector = f"{INSTANCE}={name}"
        if not keep_homes:
            kubectl.delete("pvc", placement.namespace, selector)

        def gone() -> bool:
            left = [
                *self._pods(kubectl, placement, name),
                *kubectl.get("secrets", placement.namespace, selector),
                *[
                    c
                    for c in kubectl.get("pvc", placement.namespace, selector)
                    if not (keep_homes and c["metadata"]["name"] == HOME_CLAIM)
                ],
            ]
            return not left

        self._wait("no pod, Secret or claim of the release", gone)


def _workers(count: int) -> list[str]:
    """The chart's worker pods (StatefulSet ordinals): ``worker-0`` ... ``worker-<count-1>``."""
    return [f"worker-{i}" for i in range(count)]


def parse_node_states(out: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``sinfo -h -N -o %N|%T|%P`` as {node: (state, partitions)}."""
    states: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3:
            continue
        node, state, partition = parts
        prev = states.get(node, (state, ()))
        states[node] = (state, (*prev[1], partition.rstrip("*")))
    return states
