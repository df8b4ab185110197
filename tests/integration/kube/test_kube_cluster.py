"""The real single-node Kubernetes of ``scripts/kube.sh`` (issue 14), checked with kubectl:
a Pod runs; a ClusterIP Service answers from another pod; a headless Service gives a
StatefulSet's pods DNS names that resolve from another pod; a PersistentVolumeClaim
binds to the default StorageClass and a pod writes to it; a Secret mounts; RBAC denies a
ServiceAccount without a Role and allows it with one; a second ``kube.sh`` is quick and
prints the same kubeconfig.

The cluster comes from ``HPCBOX_TEST_KUBECONFIG`` (``scripts/test.sh`` starts it), else
this module starts it with ``scripts/kube.sh`` (the first, cold run builds Kubernetes
from its Go modules: long on two cores)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

REPO = Path(__file__).resolve().parents[3]
KUBE_SH = REPO / "scripts" / "kube.sh"
BUSYBOX = "busybox:1.36"


def _cache_dir() -> Path:
    if os.environ.get("HPCBOX_KUBE_CACHE"):
        return Path(os.environ["HPCBOX_KUBE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hpcbox" / "kube"


def _start_cluster() -> str:
    """Run scripts/kube.sh; its stdout is the admin kubeconfig's path, nothing else."""
    proc = subprocess.run(
        ["bash", str(KUBE_SH)], capture_output=True, text=True, timeout=3600, check=False
    )
    assert proc.returncode == 0, f"scripts/kube.sh failed:\n{proc.stderr[-4000:]}"
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = os.environ.get("HPCBOX_TEST_KUBECONFIG")
    if path and Path(path).is_file():
        return path
    require(os.geteuid() == 0, "scripts/kube.sh needs root (containerd, kubelet, iptables)")
    require(shutil.which("podman") is not None, "scripts/kube.sh builds its images with podman")
    require(shutil.which("go") is not None or Path("/usr/local/go/bin/go").exists(), "no Go")
    return _start_cluster()


@pytest.fixture(scope="session")
def kubectl_bin(kubeconfig: str) -> str:
    path = _cache_dir() / "bin" / "kubectl"
    assert path.exists(), f"scripts/kube.sh links kubectl at {path}"
    return str(path)


class Kubectl:
    """kubectl with the cluster's admin kubeconfig; argv lists, never a shell."""

    def __init__(self, binary: str, kubeconfig: str, namespace: str) -> None:
        self.base = [binary, f"--kubeconfig={kubeconfig}"]
        self.ns = namespace

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, ns: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.base, *(["-n", self.ns] if ns else []), *args]
        proc = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=300, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}:\n{proc.stderr}")
        return proc

    def out(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def apply(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", stdin=json.dumps(manifest))

    def wait_ready(self, what: str, timeout: str = "180s") -> None:
        self.run("wait", "--for=condition=Ready", what, f"--timeout={timeout}")

    def exec(self, pod: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("exec", pod, "--", *cmd, check=check)


@pytest.fixture(scope="module")
def k(kubeconfig: str, kubectl_bin: str) -> Iterator[Kubectl]:
    ns = f"kubetest-{uuid.uuid4().hex[:8]}"
    kube = Kubectl(kubectl_bin, kubeconfig, ns)
    kube.run("create", "namespace", ns, ns=False)
    # The namespace's default ServiceAccount appears shortly after the namespace.
    deadline = time.monotonic() + 60
    while kube.run("get", "serviceaccount", "default", check=False).returncode != 0:
        assert time.monotonic() < deadline, "no default ServiceAccount"
        time.sleep(0.5)
    yield kube
    kube.run("delete", "namespace", ns, "--wait=false", ns=False, check=False)


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": BUSYBOX, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": spec.pop("labels", {"app": name})},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1, **spec},
    }


SLEEP = ["sh", "-c", "sleep 3600"]


@pytest.fixture(scope="module")
def client(k: Kubectl) -> str:
    """A pod to run checks from."""
    k.apply(pod("client", SLEEP))
    k.wait_ready("pod/client")
    return "client"


def test_node_is_ready_and_reports_its_version(k: Kubectl) -> None:
    nodes = json.loads(k.out("get", "nodes", "-o", "json", ns=False))["items"]
    assert len(nodes) == 1
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    version = json.loads(k.out("version", "-o", "json", ns=False))
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]


def test_a_pod_runs_and_logs(k: Kubectl) -> None:
    k.apply(pod("hello", ["sh", "-c", "echo hello from a pod; sleep 3600"]))
    k.wait_ready("pod/hello")
    deadline = time.monotonic() + 30
    while "hello from a pod" not in k.out("logs", "hello"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert k.exec("hello", "cat", "/etc/hostname").stdout.strip() == "hello"


def test_a_cluster_ip_service_is_reachable_from_a_pod(k: Kubectl, client: str) -> None:
    web = pod(
        "web",
        [
            "sh",
            "-c",
            "mkdir -p /www && echo served-by-web > /www/index.html && "
            "exec httpd -f -p 8080 -h /www",
        ],
        container={"ports": [{"containerPort": 8080}]},
    )
    k.apply(web)
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )
    k.wait_ready("pod/web")
    ip = k.out("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
    assert ip.startswith("10.96.")
    for url in (f"http://{ip}/", f"http://web.{k.ns}.svc.cluster.local/", "http://web/"):
        deadline = time.monotonic() + 60
        while True:
            # (Debian's static busybox 1.35 wget crashes with -T: `timeout` instead.)
            got = k.exec(client, "timeout", "5", "wget", "-q", "-O", "-", url, check=False)
            if got.returncode == 0:
                break
            assert time.monotonic() < deadline, f"{url}: {got.stderr}"
            time.sleep(1)
        assert got.stdout.strip() == "served-by-web"


def test_a_headless_service_names_each_statefulset_pod(k: Kubectl, client: str) -> None:
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5}]},
        }
    )
    k.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 2,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": pod("x", SLEEP)["spec"],
                },
            },
        }
    )
    k.run("rollout", "status", "statefulset/db", "--timeout=180s")
    for i in (0, 1):
        pod_ip = k.out("get", "pod", f"db-{i}", "-o", "jsonpath={.status.podIP}")
        name = f"db-{i}.db.{k.ns}.svc.cluster.local"
        deadline = time.monotonic() + 60
        while True:
            got = k.exec(client, "nslookup", name, check=False)
            if got.returncode == 0 and pod_ip in got.stdout:
                break
            assert time.monotonic() < deadline, f"{name}: {got.stdout} {got.stderr}"
            time.sleep(1)


def test_a_claim_binds_and_a_pod_writes_to_it(k: Kubectl) -> None:
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "16Mi"}},
            },
        }
    )
    writer = pod(
        "writer",
        ["sh", "-c", "echo persisted > /data/file && sleep 3600"],
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    k.apply(writer)
    k.wait_ready("pod/writer", timeout="240s")
    claim = json.loads(k.out("get", "pvc", "data", "-o", "json"))
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "local-path"  # the default class
    assert k.exec("writer", "cat", "/data/file").stdout.strip() == "persisted"


def test_a_read_write_many_claim_is_shared_by_two_pods(k: Kubectl) -> None:
    # The charts' homes: one claim, mounted by every node at once.
    k.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "shared"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "16Mi"}},
            },
        }
    )
    mount = {"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    volumes = [{"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]
    k.apply(
        pod(
            "rwx-a",
            ["sh", "-c", "echo from-a > /shared/a && sleep 3600"],
            container=mount,
            volumes=volumes,
        )
    )
    k.apply(pod("rwx-b", SLEEP, container=mount, volumes=volumes))
    k.wait_ready("pod/rwx-a", timeout="240s")
    k.wait_ready("pod/rwx-b", timeout="240s")
    assert k.exec("rwx-b", "cat", "/shared/a").stdout.strip() == "from-a"


def test_a_secret_mounts(k: Kubectl) -> None:
    k.run("create", "secret", "generic", "creds", "--from-literal=password=s3cr3t-value")
    reader = pod(
        "secret-reader",
        SLEEP,
        container={"volumeMounts": [{"name": "s", "mountPath": "/etc/creds", "readOnly": True}]},
        volumes=[{"name": "s", "secret": {"secretName": "creds"}}],
    )
    k.apply(reader)
    k.wait_ready("pod/secret-reader")
    got = k.exec("secret-reader", "cat", "/etc/creds/password").stdout
    assert got == "s3cr3t-value"


def _token_kubeconfig(k: Kubectl, token: str, path: Path) -> str:
    """A kubeconfig that authenticates with the token alone (no admin certificate)."""
    admin = json.loads(k.out("config", "view", "--raw", "--minify", "-o", "json", ns=False))
    cluster = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return str(path)


def test_rbac_denies_a_service_account_until_a_role_allows_it(k: Kubectl, tmp_path: Path) -> None:
    k.run("create", "serviceaccount", "reader")
    token = k.out("create", "token", "reader", "--duration=10m").strip()
    as_reader = Kubectl(k.base[0], _token_kubeconfig(k, token, tmp_path / "sa.conf"), k.ns)

    denied = as_reader.run("get", "pods", check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower(), denied.stderr
    assert f"system:serviceaccount:{k.ns}:reader" in denied.stderr

    k.run("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    k.run(
        "create",
        "rolebinding",
        "reader-reads",
        "--role=pod-reader",
        f"--serviceaccount={k.ns}:reader",
    )
    deadline = time.monotonic() + 30
    while (allowed := as_reader.run("get", "pods", check=False)).returncode != 0:
        assert time.monotonic() < deadline, allowed.stderr
        time.sleep(0.5)
    # ... and only what the Role says.
    assert as_reader.run("get", "secrets", check=False).returncode != 0


def test_load_copies_a_podman_image_into_the_cluster(k: Kubectl, tmp_path: Path) -> None:
    """hpcbox's own images (hpcbox/<role>:<tag>) reach the cluster this way."""
    require(shutil.which("podman") is not None, "no podman")
    tag = f"hpcbox/kube-load-test:{uuid.uuid4().hex[:8]}"
    (tmp_path / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (tmp_path / "busybox").chmod(0o755)
    (tmp_path / "Containerfile").write_text(
        'FROM scratch\nCOPY busybox /busybox\nENTRYPOINT ["/busybox", "echo", "loaded"]\n'
    )
    # The image has another name listed first: the name asked for is the one loaded.
    first = f"hpcbox/kube-load-test:first-{uuid.uuid4().hex[:8]}"
    subprocess.run(["podman", "build", "-q", "-t", first, str(tmp_path)], check=True, timeout=300)
    subprocess.run(["podman", "tag", first, tag], check=True, timeout=60)
    try:
        subprocess.run(["bash", str(KUBE_SH), "load", tag], check=True, timeout=300)
    finally:
        subprocess.run(["podman", "rmi", "-f", first, tag], check=False, timeout=120)
    spec = pod("loaded", [], restartPolicy="Never")
    del spec["spec"]["containers"][0]["command"]
    spec["spec"]["containers"][0].update(image=tag, imagePullPolicy="Never")
    k.apply(spec)
    k.run("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/loaded", "--timeout=120s")
    assert k.out("logs", "loaded").strip() == "loaded"


def test_a_second_start_is_quick_and_prints_the_same_kubeconfig(kubeconfig: str) -> None:
    started = time.monotonic()
    again = _start_cluster()
    elapsed = time.monotonic() - started
    assert again == kubeconfig
    assert elapsed < 30, f"a second scripts/kube.sh took {elapsed:.1f} s"
