"""hpcbox-operator on a real Kubernetes (issue 14, item 4): the chart, with the image
``hpcbox images build`` makes (``hpcbox/operator:<version>``), runs SlurmJobs on a
release of the hpcbox-slurm chart in the same cluster, over SSH to its login Service
as a declared user. A SlurmJob created with ``kubectl apply`` goes to COMPLETED;
``kubectl get slurmjobs`` shows the printer columns; ``kubectl logs`` shows the job's
output (the operator's log Pod); deleting an active SlurmJob scancels it; an invalid
SlurmJob is refused by the CRD's schema.

Needs ``$HPCBOX_TEST_KUBECONFIG`` (see conftest.py): fails without it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from hpcbox.clusters.images.roles import version_tag
from hpcbox.clusters.keys import ClusterKeys, load_or_create_keys
from hpcbox.infra.kube import Helm, KubeContext, Kubectl, find_tool

from .conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

SLURM_NS = "hpcbox-it-op-slurm"
OPERATOR_NS = "hpcbox-it-operator"
SLURM = "opslurm"
USER = "alice"
CHARTS = ROOT / "charts"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


class Cli:
    """kubectl as the tests' user types it (argv lists, no shell)."""

    def __init__(self, kubeconfig: str) -> None:
        self.argv = [find_tool("kubectl", None), "--kubeconfig", kubeconfig]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.argv, *args], input=stdin, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip

    def ok(self, *args: str, stdin: str | None = None) -> str:
        proc = self.run(*args, stdin=stdin)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    def slurmjob(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("get", "slurmjob", name, "-n", OPERATOR_NS, "-o", "json")))


@pytest.fixture(scope="module")
def operator_image(kubeconfig: str) -> str:
    """hpcbox/operator:<version>, built and loaded into the cluster."""
    tag = version_tag("operator")
    build = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", "images", "build", "--role=operator"],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    load = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kube.sh"), "load", tag],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert load.returncode == 0, f"scripts/kube.sh load failed:\n{load.stdout}\n{load.stderr}"
    return tag


def controller_exec(kubectl: Kubectl, *argv: str) -> str:
    pods = kubectl.get("pods", SLURM_NS, "app.kubernetes.io/component=controller")
    name = next(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))
    result = kubectl.exec(name, list(argv), namespace=SLURM_NS)
    assert result.exit_code == 0, (argv, result.stdout, result.stderr)
    return result.stdout.decode()


def all_ready(kubectl: Kubectl, namespace: str, count: int) -> bool:
    pods = kubectl.get("pods", namespace)
    return len(pods) == count and all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p["status"].get("conditions", [])
        )
        for p in pods
    )


@pytest.fixture(scope="module")
def slurm_release(
    kubeconfig: str, slurm_images: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterKeys]:
    """The hpcbox-slurm chart with one worker, accounting and the user alice, whose
    authorized_keys hold the admin key the operator's Secret carries."""
    keys = load_or_create_keys(tmp_path_factory.mktemp("keys"), SLURM)
    helm = Helm(find_tool("helm", None), KubeContext(kubeconfig))
    kubectl = Kubectl(find_tool("kubectl", None), KubeContext(kubeconfig))
    values = {
        "workers": {"count": 1, "cpus": 1, "memory": 512},
        "accounting": True,
        "users": [{"name": USER, "uid": 2000}],
        "adminPublicKey": keys.admin_public_key,
        "ssh": {"hostKeys": {"ssh_host_ed25519_key": keys.host_key}},
    }
    try:
        helm.upgrade_install(SLURM, str(CHARTS / "hpcbox-slurm"), SLURM_NS, values)
        wait_for("the SLURM release's pods", lambda: all_ready(kubectl, SLURM_NS, 4), 600)
        wait_for(
            "worker-0 idle",
            lambda: controller_exec(kubectl, "sinfo", "-h", "-o", "%T").strip() == "idle",
        )
        yield keys
    finally:
        helm.uninstall(SLURM, SLURM_NS)
        kubectl.delete("pvc", SLURM_NS, f"app.kubernetes.io/instance={SLURM}")
        Cli(kubeconfig).run("delete", "namespace", SLURM_NS, "--timeout=110s")


@pytest.fixture(scope="module")
def operator(kubeconfig: str, operator_image: str, slurm_release: ClusterKeys) -> Iterator[Cli]:
    helm = Helm(find_tool("helm", None), KubeContext(kubeconfig))
    kubectl = Kubectl(find_tool("kubectl", None), KubeContext(kubeconfig))
    cli = Cli(kubeconfig)
    repository, tag = operator_image.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "target": {
            "host": f"login.{SLURM_NS}.svc.cluster.local",
            "port": 22,
            "user": USER,
            "hostKey": slurm_release.host_public_key,
            "privateKey": slurm_release.admin_key_path.read_text(),
        },
        "verbose": True,
    }
    try:
        helm.upgrade_install(
            "hpcbox-operator", str(CHARTS / "hpcbox-operator"), OPERATOR_NS, values
        )
        wait_for("the operator's pod", lambda: all_ready(kubectl, OPERATOR_NS, 1), 300)
        yield cli
    finally:
        # SlurmJobs first, while the operator still removes its finalizers.
        cli.run("delete", "slurmjobs", "--all", "-n", OPERATOR_NS, "--timeout=120s")
        logs = cli.run("logs", "-n", OPERATOR_NS, "deploy/hpcbox-operator", "--tail=200")
        print(logs.stdout, logs.stderr)
        helm.uninstall("hpcbox-operator", OPERATOR_NS)
        cli.run("delete", "namespace", OPERATOR_NS, "--timeout=110s")


def slurmjob(name: str, script: str, host_key: str) -> str:
    body = {
        "apiVersion": "hpcbox.io/v1alpha1",
        "kind": "SlurmJob",
        "metadata": {"name": name, "namespace": OPERATOR_NS},
        "spec": {
            "target": {
                "host": f"login.{SLURM_NS}.svc.cluster.local",
                "user": USER,
                "secretName": "hpcbox-slurm-login",
                "hostKey": host_key,
            },
            "scriptCode": script,
        },
    }
    return yaml.safe_dump(body)


def test_slurmjob_runs_to_completion_and_shows_its_output(
    operator: Cli, slurm_release: ClusterKeys
) -> None:
    operator.ok(
        "apply", "-f", "-",
        stdin=slurmjob(
            "hello",
            "#!/bin/bash\necho hello from $(hostname) as $(id -un)\n",
            slurm_release.host_public_key,
        ),
    )  # fmt: skip

    def finished() -> bool:
        state = str(operator.slurmjob("hello").get("status", {}).get("state"))
        assert state not in ("FAILED", "ERROR", "CANCELLED"), operator.slurmjob("hello")
        return state == "COMPLETED"

    wait_for("SlurmJob hello to complete", finished, timeout=300)
    status = operator.slurmjob("hello")["status"]
    assert status["jobId"] and status["user"] == USER and status["exitCode"] == 0

    table = operator.ok("get", "slurmjobs", "-n", OPERATOR_NS)
    header, row = table.splitlines()[0].split(), table.splitlines()[1].split()
    assert header == ["NAME", "STATE", "JOB", "ID", "PARTITION", "USER", "TIME", "AGE"]
    assert row[:3] == ["hello", "COMPLETED", status["jobId"]] and USER in row
    wide = operator.ok("get", "slurmjobs", "-n", OPERATOR_NS, "-o", "wide").splitlines()[0]
    assert "REASON" in wide and "ATTEMPTS" in wide

    def logged() -> bool:
        logs = operator.run("logs", "hello", "-n", OPERATOR_NS)
        return logs.returncode == 0 and "hello from worker-0 as alice" in logs.stdout

    wait_for("kubectl logs hello", logged, timeout=120)


def test_deleting_an_active_slurmjob_cancels_it(
    operator: Cli, kubeconfig: str, slurm_release: ClusterKeys
) -> None:
    kubectl = Kubectl(find_tool("kubectl", None), KubeContext(kubeconfig))
    script = "#!/bin/bash\nsleep 600\n"
    operator.ok(
        "apply", "-f", "-", stdin=slurmjob("sleeper", script, slurm_release.host_public_key)
    )

    def running() -> bool:
        return str(operator.slurmjob("sleeper").get("status", {}).get("state")) == "RUNNING"

    wait_for("SlurmJob sleeper to run", running, timeout=300)
    job = operator.slurmjob("sleeper")["status"]["jobId"]
    assert controller_exec(kubectl, "squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING"
    operator.ok("delete", "slurmjob", "sleeper", "-n", OPERATOR_NS, "--timeout=120s")

    def cancelled() -> bool:
        queued = controller_exec(kubectl, "squeue", "-h", "-j", job, "-o", "%T").strip()
        sacct = controller_exec(kubectl, "sacct", "-n", "-X", "-j", job, "-o", "State").split()
        return not queued and bool(sacct) and sacct[0].startswith("CANCELLED")

    wait_for(f"SLURM job {job} cancelled", cancelled, timeout=120)


@pytest.mark.parametrize(
    ("name", "spec", "error"),
    [
        ("no-target", {"scriptCode": "hostname"}, "spec.target: Required value"),
        (
            "bad-port",
            {
                "target": {"host": "login", "secretName": "s", "port": 70000},
                "scriptCode": "hostname",
            },
            "spec.target.port: Invalid value: 70000",
        ),
    ],
)
def test_an_invalid_slurmjob_is_refused_by_the_schema(
    operator: Cli, name: str, spec: dict[str, Any], error: str
) -> None:
    body = {
        "apiVersion": "hpcbox.io/v1alpha1",
        "kind": "SlurmJob",
        "metadata": {"name": name, "namespace": OPERATOR_NS},
        "spec": spec,
    }
    proc = operator.run("apply", "-f", "-", stdin=yaml.safe_dump(body))
    assert proc.returncode != 0
    assert error in proc.stderr, proc.stderr
    assert operator.run("get", "slurmjob", name, "-n", OPERATOR_NS).returncode != 0
