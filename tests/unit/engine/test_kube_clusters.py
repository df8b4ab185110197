"""Clusters on Kubernetes (``KubeClusters``, through ``ClusterManager``) against a fake
at hpcbox's own seam: :class:`~hpcbox.infra.kube.HelmApi` and
:class:`~hpcbox.infra.kube.KubectlApi`. The fake is a tiny cluster: a release makes the
pods its chart would (controller, workers, MariaDB and slurmdbd), ``exec`` answers
sinfo/squeue/scontrol/cat as slurmctld would. The real thing is
tests/integration/kube/."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hpcbox.clusters.jupyter import HUB_PYTHON
from hpcbox.clusters.kube import KubePlacement
from hpcbox.clusters.kube.manager import parse_node_states
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.render.layout import HOSTFILE
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.spec import ClusterSpec, MpiFlavour, parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.errors import ConflictError, NotFoundError, UnavailableError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.kube import HelmApi, KubectlApi, find_tool
from hpcbox.infra.kube.helm import Helm
from hpcbox.infra.kube.kubectl import Kubectl
from hpcbox.infra.kube.tools import Completed
from hpcbox.infra.runtimes import ExecResult
from hpcbox.jobs.target_store import TargetStore

INSTANCE = "app.kubernetes.io/instance"


def _pod(release: str, name: str, role: str, *, hostname: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": role}]}
    if hostname:
        spec["hostname"] = hostname
    return {
        "metadata": {
            "name": name,
            "labels": {INSTANCE: release, "app.kubernetes.io/component": role},
        },
        "spec": spec,
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"image": f"hpcbox/{role}:0.1.0", "state": {"running": {}}}],
        },
    }


@dataclass
class FakeKube:
    """One namespace's worth of Kubernetes, and what was asked of it."""

    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    claims: dict[str, set[str]] = field(default_factory=dict)
    #: node -> SLURM state; jobs: node -> job ids (squeue -w).
    slurm: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, list[str]] = field(default_factory=dict)
    #: Set to make every pod wait for its image.
    image_missing: bool = False
    #: How many squeue polls a draining node's jobs survive.
    job_polls: int = 0
    #: jupyter: how many engine counts come back short (engines still registering).
    engine_polls: int = 0

    # -- helm --------------------------------------------------------------------
    def template(self, release: str, chart: str, namespace: str, values: Mapping[str, Any]) -> str:
        raise AssertionError("not used")

    def upgrade_install(
        self,
        release: str,
        chart: str,
        namespace: str,
        values: Mapping[str, Any] | None = None,
        *,
        reuse_values: bool = False,
        set_values: Mapping[str, str] | None = None,
    ) -> None:
        self.calls.append(
            ("upgrade", release, Path(chart).name, namespace, reuse_values, dict(set_values or {}))
        )
        current = dict(self.releases.get(release, {})) if reuse_values else {}
        current.update(values or {})
        for key, value in (set_values or {}).items():
            assert key == "workers.count"
            current["workers"] = {**current["workers"], "count": int(value)}
        self.releases[release] = current
        self.claims[release] = {"home", "controller-state"}
        count = current["workers"]["count"]
        for i in range(count):
            self.slurm.setdefault(f"worker-{i}", "idle")
        for node in [n for n in self.slurm if int(n.split("-")[1]) >= count]:
            self.slurm[node] = "drained"  # deleted from SLURM by scontrol delete

    def uninstall(self, release: str, namespace: str) -> bool:
        self.calls.append(("uninstall", release, namespace))
        keep = self.releases.pop(release, {}).get("keepHomes", True)
        self.claims[release] = {"home"} if keep else set()
        return True

    def get_values(self, release: str, namespace: str) -> dict[str, Any] | None:
        return self.releases.get(release)

    # -- kubectl -----------------------------------------------------------------
    def _release_pods(self, release: str) -> list[dict[str, Any]]:
        values = self.releases.get(release)
        if values is None:
            return []
        if "jupyter" in values:
            pods = [_pod(release, "hub-7d9f", "hub", hostname="hub")]
            pods += [
                _pod(release, f"engines-{i}", "engines") for i in range(values["workers"]["count"])
            ]
        else:
            pods = [_pod(release, "controller-5c6b", "controller", hostname="controller")]
            pods += [
                _pod(release, f"worker-{i}", "worker") for i in range(values["workers"]["count"])
            ]
            if values.get("accounting"):
                pods += [
                    _pod(release, "mariadb-1", "mariadb"),
                    _pod(release, "slurmdbd-1", "slurmdbd"),
                ]
        if self.image_missing:
            for pod in pods:
                pod["status"]["containerStatuses"][0]["state"] = {
                    "waiting": {"reason": "ErrImageNeverPull"}
                }
        return pods

    def get(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        release = (selector or "=").split("=", 1)[1]
        if kind == "pods":
            return self._release_pods(release)
        if kind == "pvc":
            return [{"metadata": {"name": n}} for n in sorted(self.claims.get(release, set()))]
        if kind == "secrets":
            return [{"metadata": {"name": "munge-key"}}] if release in self.releases else []
        if kind == "services" and "jupyter" in self.releases.get(release, {}):
            hub = self.releases[release].get("hub", {})
            port = {"port": 8000}
            if hub.get("serviceType") == "NodePort":
                port["nodePort"] = hub.get("nodePort") or 30800
            return [
                {"metadata": {"name": "hub"}, "spec": {"ports": [{"port": 8000}]}},
                {"metadata": {"name": "hub-http"}, "spec": {"ports": [port]}},
            ]
        if kind == "services":
            values = self.releases.get(release, {})
            login = values.get("login", {})
            port = {"port": 22}
            if login.get("serviceType") == "NodePort":
                port["nodePort"] = login.get("nodePort") or 31022
            return [{"metadata": {"name": "login"}, "spec": {"ports": [port]}}]
        if kind == "nodes":
            return [{"status": {"addresses": [{"type": "InternalIP", "address": "10.1.2.3"}]}}]
        raise AssertionError(kind)

    def exec(
        self,
        pod: str,
        argv: Sequence[str],
        *,
        namespace: str,
        container: str | None = None,
        stdin: bytes | None = None,
        timeout: float | None = 60.0,
    ) -> ExecResult:
        self.calls.append(("exec", pod, tuple(argv)))
        (release,) = self.releases or {"?": None}
        out = ""
        if argv[:2] == ["sinfo", "-h"] and "-N" in argv:
            out = "".join(f"{n}|{s}|batch*\n" for n, s in sorted(self.slurm.items()))
        elif argv[:2] == ["sinfo", "-h"]:
            out = f"batch*|up|infinite|{len(self.slurm)}|worker-[0-9]\n"
        elif argv[0] == "squeue":
            node = argv[argv.index("-w") + 1]
            if self.job_polls > 0:
                self.job_polls -= 1
            else:
                self.jobs.pop(node, None)
            out = "".join(f"{j}\n" for j in self.jobs.get(node, []))
        elif argv[0] == "scontrol" and argv[1] == "update":
            self.slurm[argv[2].split("=")[1]] = "drained"
        elif argv[0] == "scontrol" and argv[1] == "delete":
            self.slurm.pop(argv[2].split("=")[1], None)
        elif list(argv[:5]) == ["runuser", "-u", "ipyparallel", "--", HUB_PYTHON]:
            values = self.releases[release]
            per = values["jupyter"]["engines_per_worker"] or values["workers"]["cpus"]
            engines = values["workers"]["count"] * per
            if self.engine_polls > 0:
                self.engine_polls -= 1
                engines -= 1
            out = json.dumps({"engines": engines}) + "\n"
        elif argv[:2] == ["cat", HOSTFILE]:
            values = self.releases[release]
            hosts = [f"worker-{i}.worker" for i in range(values["workers"]["count"])]
            out = render_hostfile(
                hosts, slots=values["workers"]["cpus"], flavour=MpiFlavour(values["mpi"])
            )
        return ExecResult(0, out.encode(), b"")

    def delete(self, kind: str, namespace: str, selector: str) -> None:
        self.calls.append(("delete", kind, selector))
        if kind == "pvc":
            self.claims[selector.split("=", 1)[1]] = set()


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def manager(settings: Settings, kube: FakeKube, tmp_path: Path) -> ClusterManager:
    charts = tmp_path / "charts"
    (charts / "hpcbox-slurm").mkdir(parents=True)
    (charts / "hpcbox-slurm" / "Chart.yaml").write_text("name: hpcbox-slurm\n")
    placements: list[KubePlacement] = []

    def tools(placement: KubePlacement) -> tuple[HelmApi, KubectlApi]:
        placements.append(placement)
        return kube, kube

    manager = ClusterManager(
        settings,
        store=ClusterStore(open_engine(settings)),
        progress=lambda _: None,
        kube_tools=tools,
    )
    clusters = manager.kube()
    clusters._charts = charts
    clusters.poll = 0.0
    clusters.ready_timeout = 5.0
    return manager


def spec(**extra: Any) -> ClusterSpec:
    return parse_cluster_spec(
        {"name": "k1", "runtime": "kubernetes", "workers": {"count": 2}, **extra}
    )


def up(manager: ClusterManager, s: ClusterSpec | None = None) -> None:
    manager.up(s or spec(), placement=KubePlacement("hpcbox-k1", "/k/config", "ctx"))


def test_up_installs_the_chart_waits_and_records(manager: ClusterManager, kube: FakeKube) -> None:
    up(manager)
    ((_, release, chart, namespace, reuse, sets),) = [c for c in kube.calls if c[0] == "upgrade"]
    assert (release, chart, namespace, reuse, sets) == (
        "k1",
        "hpcbox-slurm",
        "hpcbox-k1",
        False,
        {},
    )
    values = kube.releases["k1"]
    assert values["workers"]["count"] == 2 and values["name"] == "k1"
    # hpcbox's admin key and host key: root logs in as on Podman, the host key is pinned.
    keys = manager.kube()._keys("k1")
    assert values["adminPublicKey"] == keys.admin_public_key.strip()
    assert values["ssh"]["hostKeys"] == {"ssh_host_ed25519_key": keys.host_key}
    record = manager.store.get("k1")
    assert (record.state, record.runtime, record.ssh_port) == ("RUNNING", "kubernetes", 31022)
    # sinfo was asked on the controller pod, and the hostfile read there.
    assert ("exec", "controller-5c6b", ("sinfo", "-h", "-N", "-o", "%N|%T|%P")) in kube.calls
    assert ("exec", "controller-5c6b", ("cat", HOSTFILE)) in kube.calls
    target = TargetStore(manager.store.engine).get("k1")
    assert (target.host, target.port) == ("10.1.2.3", 31022)
    placement = KubePlacement.load(manager.settings.home, "k1")
    assert placement == KubePlacement("hpcbox-k1", "/k/config", "ctx")


def test_a_missing_image_stops_the_wait_naming_kube_sh_load(
    manager: ClusterManager, kube: FakeKube
) -> None:
    kube.image_missing = True
    with pytest.raises(UnavailableError, match=r"scripts/kube.sh load hpcbox/controller:0.1.0"):
        up(manager)
    record = manager.store.get("k1")
    assert record.state == "FAILED" and "hpcbox images build" in (record.message or "")


def test_a_cluster_that_never_gets_ready_fails_with_what_it_waited_for(
    manager: ClusterManager, kube: FakeKube
) -> None:
    kube.slurm["worker-1"] = "down"  # never idle: setdefault keeps it
    manager.kube().ready_timeout = 0.05
    with pytest.raises(UnavailableError, match="worker-0, worker-1 idle"):
        up(manager)


def test_a_running_cluster_is_refused_then_replaced(
    manager: ClusterManager, kube: FakeKube
) -> None:
    up(manager)
    with pytest.raises(ConflictError, match="already up"):
        up(manager)
    manager.up(spec(), replace=True, placement=KubePlacement("hpcbox-k1"))
    assert [c[0] for c in kube.calls if c[0] in ("upgrade", "uninstall")] == [
        "upgrade", "uninstall", "upgrade"
    ]  # fmt: skip


def test_status_shows_pods_and_slurm(manager: ClusterManager) -> None:
    up(manager, spec(accounting=True))
    status = manager.status("k1")
    nodes = {n.name: n for n in status.nodes}
    assert set(nodes) == {"controller", "worker-0", "worker-1", "mariadb-1", "slurmdbd-1"}
    assert status.nodes[0].name == "controller"
    assert nodes["worker-0"].container_status == "Ready"
    assert nodes["worker-0"].slurm_state == "idle" and nodes["worker-0"].partitions == ("batch",)
    assert status.partitions[0]["name"] == "batch"
    assert status.ssh["namespace"] == "hpcbox-k1" and status.ssh["host"] == "10.1.2.3"


def test_jupyter_up_waits_for_every_engine_and_status_gives_the_hub(
    manager: ClusterManager, kube: FakeKube
) -> None:
    kube.engine_polls = 2  # two counts come back short: the wait goes on
    up(manager, spec(kind="jupyter", jupyter={"engines_per_worker": 3}))
    ((_, _, chart, *_),) = [c for c in kube.calls if c[0] == "upgrade"]
    assert chart == "hpcbox-jupyter"
    counts = [c for c in kube.calls if c[0] == "exec" and HUB_PYTHON in c[2]]
    assert len(counts) == 3 and {c[1] for c in counts} == {"hub-7d9f"}
    assert counts[0][2][-2:] == ("6", "10")  # want 2 x 3 engines, waiting up to 10 s
    record = manager.store.get("k1")
    assert (record.state, record.ssh_port) == ("RUNNING", None)
    status = manager.status("k1")
    assert status.hub_url == "http://10.1.2.3:30800/" and status.engines == 6
    assert status.nodes[0].name == "hub"
    assert status.to_json()["hub_url"] == "http://10.1.2.3:30800/"
    # Scaling waits for the new engines as well.
    kube.calls.clear()
    kube.engine_polls = 1
    assert manager.scale("k1", 3).workers == 3
    counts = [c for c in kube.calls if c[0] == "exec" and HUB_PYTHON in c[2]]
    assert len(counts) == 2 and counts[-1][2][-2:] == ("9", "10")


def test_exec_runs_on_the_node_s_pod_as_the_user(manager: ClusterManager, kube: FakeKube) -> None:
    up(manager)
    manager.exec("k1", ["hostname"], node="worker-1")
    manager.exec("k1", ["sbatch", "job.sh"], user="alice")
    assert ("exec", "worker-1", ("hostname",)) in kube.calls
    assert (
        "exec",
        "controller-5c6b",
        ("runuser", "-u", "alice", "--", "env", "-C", "/home/alice", "HOME=/home/alice",
         "USER=alice", "LOGNAME=alice", "sbatch", "job.sh"),
    ) in kube.calls  # fmt: skip
    with pytest.raises(NotFoundError, match="worker-7"):
        manager.exec("k1", ["true"], node="worker-7")


def test_scale_out_upgrades_and_waits_for_the_new_workers(
    manager: ClusterManager, kube: FakeKube
) -> None:
    up(manager)
    kube.calls.clear()
    record = manager.scale("k1", 3)
    assert record.workers == 3 and record.spec.workers.count == 3 and record.state == "RUNNING"
    (upgrade,) = [c for c in kube.calls if c[0] == "upgrade"]
    assert upgrade[4:] == (True, {"workers.count": "3"})
    assert not [c for c in kube.calls if c[0] == "exec" and c[2][0] == "scontrol"]
    assert ("exec", "controller-5c6b", ("cat", HOSTFILE)) in kube.calls


def test_scale_in_drains_waits_for_jobs_then_upgrades_then_deletes(
    manager: ClusterManager, kube: FakeKube
) -> None:
    up(manager, spec(workers={"count": 3}))
    kube.calls.clear()
    kube.jobs["worker-2"] = ["42"]
    kube.job_polls = 2
    manager.scale("k1", 1)
    steps = [
        c[2][:2] if c[0] == "exec" else (c[0],)
        for c in kube.calls
        if c[0] == "upgrade" or (c[0] == "exec" and c[2][0] in ("scontrol", "squeue"))
    ]
    drains = [("scontrol", "update")] * 2
    assert steps[:2] == drains
    upgrade = steps.index(("upgrade",))
    assert steps[upgrade - 1][0] == "squeue"  # the upgrade comes once no job is left
    assert steps[upgrade + 1 :] == [("scontrol", "delete")] * 2
    assert (
        "exec", "controller-5c6b",
        ("scontrol", "update", "nodename=worker-2", "state=drain", "reason=hpcbox-scale-down"),
    ) in kube.calls  # fmt: skip
    assert manager.store.get("k1").workers == 1


def test_scale_in_with_a_timeout_gives_up_and_keeps_the_workers(
    manager: ClusterManager, kube: FakeKube
) -> None:
    up(manager)
    kube.jobs["worker-1"] = ["7"]
    kube.job_polls = 10**6
    with pytest.raises(UnavailableError, match="--force"):
        manager.scale("k1", 1, timeout=0.01)
    assert manager.store.get("k1").workers == 2
    assert not [c for c in kube.calls if c[0] == "upgrade" and c[4]]
    assert (
        "exec", "controller-5c6b", ("scontrol", "update", "nodename=worker-1", "state=resume")
    ) in kube.calls  # fmt: skip


def test_down_uninstalls_and_keeps_homes(manager: ClusterManager, kube: FakeKube) -> None:
    up(manager)
    manager.down("k1")
    assert kube.claims["k1"] == {"home"}
    assert manager.store.get("k1").state == "DOWN"
    with pytest.raises(NotFoundError):
        TargetStore(manager.store.engine).get("k1")


def test_down_purge_deletes_the_claims(manager: ClusterManager, kube: FakeKube) -> None:
    up(manager)
    manager.down("k1", purge=True)
    assert kube.claims["k1"] == set()
    assert ("delete", "pvc", f"{INSTANCE}=k1") in kube.calls
    assert manager.store.find("k1") is None


def test_a_podman_cluster_of_that_name_is_not_overwritten(
    manager: ClusterManager, settings: Settings
) -> None:
    manager.store.create(parse_cluster_spec({"name": "k1"}), runtime="podman")
    manager.store.update("k1", state="RUNNING")
    with pytest.raises(ConflictError):
        up(manager)


# -- the adapters: argv lists, never a shell ---------------------------------------


@dataclass
class Recorder:
    results: list[Completed] = field(default_factory=list)
    argvs: list[list[str]] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def __call__(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None
    ) -> Completed:
        self.argvs.append(list(argv))
        if "-f" in argv:
            self.values.append(Path(argv[argv.index("-f") + 1]).read_text())
        return self.results.pop(0) if self.results else Completed(0, b"{}", b"")


def test_helm_argv(tmp_path: Path) -> None:
    from hpcbox.infra.kube import KubeContext

    run = Recorder()
    helm = Helm("/bin/helm", KubeContext("/k/config", "ctx"), runner=run)
    helm.upgrade_install("k1", "/charts/hpcbox-slurm", "ns", {"workers": {"count": 2}})
    helm.upgrade_install("k1", "/c", "ns", reuse_values=True, set_values={"workers.count": "3"})
    first, second = run.argvs
    assert first[:8] == [
        "/bin/helm",
        "upgrade",
        "--install",
        "k1",
        "/charts/hpcbox-slurm",
        "-n",
        "ns",
        "--create-namespace",
    ]
    assert first[8:] == ["-f", first[9], "--kubeconfig", "/k/config", "--kube-context", "ctx"]
    assert run.values == ["workers:\n  count: 2\n"]
    assert not Path(first[9]).exists()  # the values file is gone
    assert second[8:11] == ["--reuse-values", "--set", "workers.count=3"]
    assert "-f" not in second
    run.results.append(
        Completed(1, b"", b"Error: uninstall: Release not loaded: k1: release: not found")
    )
    assert helm.uninstall("k1", "ns") is False


def test_kubectl_argv() -> None:
    run = Recorder(results=[Completed(0, b'{"items": [{"metadata": {"name": "p"}}]}', b"")])
    kubectl = Kubectl("/bin/kubectl", runner=run)
    assert kubectl.get("pods", "ns", "a=b") == [{"metadata": {"name": "p"}}]
    kubectl.exec("worker-0", ["echo", "$(id)"], namespace="ns", stdin=b"x")
    assert run.argvs == [
        ["/bin/kubectl", "get", "pods", "-o", "json", "-n", "ns", "-l", "a=b"],
        ["/bin/kubectl", "exec", "-n", "ns", "-i", "worker-0", "--", "echo", "$(id)"],
    ]


def test_find_tool_order_and_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "hpcbox" / "kube" / "bin"
    cache.mkdir(parents=True)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": str(tmp_path / "nothing")}
    with pytest.raises(UnavailableError, match=r"scripts/kube.sh build.*HPCBOX_HELM"):
        find_tool("helm", None, env)
    (cache / "helm").write_text("#!/bin/sh\n")
    (cache / "helm").chmod(0o755)
    assert find_tool("helm", None, env) == str(cache / "helm")
    with pytest.raises(UnavailableError, match="HPCBOX_KUBECTL"):
        find_tool("kubectl", str(tmp_path / "missing"), env)


def test_parse_node_states() -> None:
    out = "worker-0|idle|batch*\nworker-0|idle|long\nworker-1|allocated|batch*\n"
    assert parse_node_states(out) == {
        "worker-0": ("idle", ("batch", "long")),
        "worker-1": ("allocated", ("batch",)),
    }
