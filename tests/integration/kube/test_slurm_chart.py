"""hpcbox-slurm on a real Kubernetes through ``hpcbox cluster up --runtime kubernetes``
(issue 14, item 4): every pod Ready; a declared user's MPI job across two worker pods;
scaling 2 -> 3 while a job runs (the job completes, the new worker is idle, the hostfile
follows); scale-in drains; ``down`` leaves nothing of the release, claims included
unless homes are kept.

Needs ``$HPCBOX_TEST_KUBECONFIG`` (see conftest.py): fails without it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.spec import MpiFlavour, parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.kube import Kubectl

from .conftest import env_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

NAME = "kslurm"
INSTANCE = f"app.kubernetes.io/instance={NAME}"
HELLO = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, len; char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    printf("rank %d of %d on %s\n", rank, size, host);
    MPI_Finalize();
    return 0;
}
"""
JOB = """#!/bin/bash
#SBATCH --nodes=2 --ntasks-per-node=1 --output=/home/alice/mpi.out
mpicc -o /home/alice/hello /home/alice/hello.c
srun /home/alice/hello
"""


def hpcbox(settings: Settings, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", *args],
        env=dict(env_for(settings, kubeconfig)), capture_output=True, text=True,
        timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def manager(settings: Settings) -> ClusterManager:
    return ClusterManager(settings, store=ClusterStore(open_engine(settings)))


def as_alice(
    m: ClusterManager, *argv: str, stdin: bytes | None = None, node: str | None = None
) -> str:
    result = m.exec(NAME, list(argv), user="alice", stdin=stdin, node=node)
    assert result.exit_code == 0, (argv, result.stdout, result.stderr)
    return result.stdout.decode()


def wait_for(what: str, check: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(2)


def job_state(m: ClusterManager, job: str) -> str:
    out = m.exec(NAME, ["sacct", "-n", "-X", "-j", job, "-o", "State"]).stdout.decode()
    squeue = m.exec(NAME, ["squeue", "-h", "-j", job, "-o", "%T"]).stdout.decode()
    return (squeue.strip() or out.strip() or "?").split()[0]


@pytest.fixture
def cluster(
    kube_settings: Settings,
    kubeconfig: str,
    slurm_images: list[str],
    namespace: str,
    tmp_path: Path,
) -> Iterator[tuple[Settings, str]]:
    spec = {
        "name": NAME,
        "runtime": "kubernetes",
        "workers": {"count": 2, "cpus": 1, "memory": "512M"},
        "accounting": True,
        "users": [{"name": "alice", "uid": 2000}],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    try:
        up = hpcbox(
            kube_settings, kubeconfig, "cluster", "up", "-f", str(path), "--namespace", namespace,
            "--no-keep-homes", "--json",
        )  # fmt: skip
        status = json.loads(up.stdout)
        assert status["state"] == "RUNNING" and status["runtime"] == "kubernetes"
        yield kube_settings, namespace
    finally:
        subprocess.run(
            [sys.executable, "-m", "hpcbox.cli.main", "cluster", "down", NAME, "--purge"],
            env=dict(env_for(kube_settings, kubeconfig)), capture_output=True, timeout=900,
            check=False,
        )  # fmt: skip


def test_slurm_chart_end_to_end(
    cluster: tuple[Settings, str], kubeconfig: str, kubectl: Kubectl
) -> None:
    settings, namespace = cluster
    m = manager(settings)
    # Every pod Ready; SLURM sees both workers idle.
    pods = kubectl.get("pods", namespace, INSTANCE)
    assert len(pods) == 5  # controller, mariadb, slurmdbd, worker-0, worker-1
    status = json.loads(hpcbox(settings, kubeconfig, "cluster", "status", NAME, "--json").stdout)
    workers = {n["name"]: n for n in status["nodes"] if n["role"] == "worker"}
    assert set(workers) == {"worker-0", "worker-1"}
    assert all(n["container_status"] == "Ready" for n in status["nodes"])
    assert all(n["slurm_state"] == "idle" for n in workers.values())

    # A declared user's MPI program across two worker pods.
    as_alice(m, "tee", "/home/alice/hello.c", stdin=HELLO.encode())
    as_alice(m, "tee", "/home/alice/mpi.sh", stdin=JOB.encode())
    job = as_alice(m, "sbatch", "--parsable", "/home/alice/mpi.sh").strip().split(";")[0]
    wait_for(f"MPI job {job}", lambda: job_state(m, job) in ("COMPLETED", "FAILED", "CANCELLED"))
    assert job_state(m, job) == "COMPLETED"
    out = as_alice(m, "cat", "/home/alice/mpi.out")
    ranks = sorted(line for line in out.splitlines() if line.startswith("rank "))
    assert len(ranks) == 2, out
    assert {line.rsplit(" ", 1)[1].split(".")[0] for line in ranks} == {"worker-0", "worker-1"}

    # Scale 2 -> 3 while a job runs on a worker: it completes, worker-2 is idle, the
    # hostfile lists three workers.
    running = as_alice(m, "sbatch", "--parsable", "-w", "worker-0", "--wrap", "sleep 30").strip()
    wait_for("the job to run", lambda: job_state(m, running) == "RUNNING")
    record = m.scale(NAME, 3)
    assert record.workers == 3
    states = {n.name: n.slurm_state for n in m.status(NAME).nodes}
    assert states["worker-2"] == "idle"
    hostfile = m.exec(NAME, ["cat", "/etc/hpcbox/hostfile"]).stdout.decode()
    hosts = [f"worker-{i}.worker" for i in range(3)]
    assert hostfile == render_hostfile(hosts, slots=1, flavour=MpiFlavour.OPENMPI)
    wait_for("the running job", lambda: job_state(m, running) == "COMPLETED", timeout=120)
    assert len(kubectl.get("pods", namespace, INSTANCE)) == 6

    # Scale-in drains: a job on worker-2 finishes before worker-2 goes.
    last = as_alice(m, "sbatch", "--parsable", "-w", "worker-2", "--wrap", "sleep 20").strip()
    wait_for("the job on worker-2", lambda: job_state(m, last) == "RUNNING")
    seen: list[str | None] = []
    scaler = threading.Thread(target=lambda: m.scale(NAME, 2))
    scaler.start()
    # Read-only views from this thread: the scaler holds the cluster's lock.
    view = manager(settings)

    def drained() -> bool:
        sinfo = view.exec(NAME, ["sinfo", "-h", "-N", "-n", "worker-2", "-o", "%T"]).stdout
        seen.append(sinfo.decode().strip())
        return seen[-1].startswith(("draining", "drained", "drain"))

    wait_for("worker-2 to drain", drained, timeout=60)
    assert job_state(view, last) == "RUNNING"  # drained, not killed
    scaler.join(timeout=600)
    assert not scaler.is_alive()
    assert job_state(view, last) == "COMPLETED"
    assert sorted(
        p["metadata"]["name"]
        for p in kubectl.get("pods", namespace, INSTANCE)
        if p["metadata"]["name"].startswith("worker-")
    ) == ["worker-0", "worker-1"]
    sinfo = view.exec(NAME, ["sinfo", "-h", "-N", "-o", "%N"]).stdout.decode().split()
    assert "worker-2" not in sinfo


@pytest.mark.parametrize("keep_homes", [True, False])
def test_down_leaves_nothing_of_the_release(
    kube_settings: Settings, kubeconfig: str, kubectl: Kubectl, slurm_images: list[str],
    namespace: str, keep_homes: bool,
) -> None:  # fmt: skip
    spec = parse_cluster_spec(
        {"name": NAME, "runtime": "kubernetes", "workers": {"count": 1}, "accounting": False}
    )
    path = Path(kube_settings.home).parent / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    flag = "--keep-homes" if keep_homes else "--no-keep-homes"
    hpcbox(kube_settings, kubeconfig, "cluster", "up", "-f", str(path), "-n", namespace, flag)
    assert {c["metadata"]["name"] for c in kubectl.get("pvc", namespace, INSTANCE)} >= {"home"}
    hpcbox(kube_settings, kubeconfig, "cluster", "down", NAME)
    assert kubectl.get("pods", namespace, INSTANCE) == []
    assert kubectl.get("secrets", namespace, INSTANCE) == []
    left = {c["metadata"]["name"] for c in kubectl.get("pvc", namespace, INSTANCE)}
    assert left == ({"home"} if keep_homes else set())
    # --purge takes the kept homes too.
    hpcbox(kube_settings, kubeconfig, "cluster", "down", NAME, "--purge")
    wait_for("no claim", lambda: kubectl.get("pvc", namespace, INSTANCE) == [], timeout=120)
