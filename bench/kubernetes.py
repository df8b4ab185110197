#!/usr/bin/env python3
"""Benchmark a SLURM cluster on Kubernetes against the same spec on Podman, in one run.

For each runtime, the same ClusterSpec (2 workers, 1 CPU and 512 MiB each, one user,
no accounting unless ``--accounting``) and the same job, timed from the moment hpcbox
is asked:

- **up**: ``cluster up`` until the cluster is usable (Podman: containers started and
  every worker idle in SLURM; Kubernetes: ``helm upgrade --install`` of hpcbox-slurm,
  every pod Ready, every worker idle);
- **first MPI job**: from there to a first job COMPLETED: ``sbatch`` of a script that
  compiles an MPI hello (``mpicc``) and runs it with ``srun`` on both workers, watched
  with ``scontrol show job`` (``sbatch --wait`` polls too seldom to time it);
- **down**: ``cluster down --purge`` until nothing of the cluster is left (Kubernetes:
  ``helm uninstall`` and every pod, claim and secret of the release gone).

Images are built and (for Kubernetes) loaded into the cluster before anything is timed:
the figures are those of a user whose images are in place. For scale, the Flux
Operator publishes 11.4 s for create, a small job and teardown of a MiniCluster.

Needs a Kubernetes (``KUBECONFIG``, or ``scripts/kube.sh``'s, which this script starts
when none is given), podman, and hpcbox's SLURM images.

Usage: .venv/bin/python bench/kubernetes.py [--rounds 2] [--accounting] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hpcbox.clusters.images.roles import version_tag
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("slurm-controller", "slurm-worker", "slurmdbd", "mariadb")
JOB = b"""#!/bin/bash
#SBATCH --nodes=2 --ntasks-per-node=1 --output=mpi.out
cat > hello.c <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, len; char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Get_processor_name(host, &len);
    printf("rank %d of %d on %s\\n", rank, size, host);
    MPI_Finalize();
    return 0;
}
EOF
mpicc -o hello hello.c
srun ./hello
"""


def spec_for(name: str, runtime: str, *, accounting: bool) -> ClusterSpec:
    return parse_cluster_spec(
        {
            "name": name,
            "runtime": runtime,
            "workers": {"count": 2, "cpus": 1, "memory": "512M"},
            "accounting": accounting,
            "users": [{"name": "bench", "uid": 2100}],
        }
    )


def first_mpi_job(manager: ClusterManager, name: str) -> None:
    """Submit the MPI job as ``bench`` and return once it is COMPLETED on 2 nodes."""
    # --chdir: an exec on Podman starts in /, one on Kubernetes in the user's home.
    argv = ["sbatch", "--parsable", "--chdir=/home/bench"]
    submitted = manager.exec(name, argv, user="bench", stdin=JOB)
    assert submitted.exit_code == 0, submitted.stderr.decode(errors="replace")
    job_id = submitted.stdout.decode().strip().split(";")[0]
    while True:
        shown = manager.exec(name, ["scontrol", "-o", "show", "job", job_id]).stdout.decode()
        if "JobState=COMPLETED" in shown:
            break
        for bad in ("FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"):
            assert f"JobState={bad}" not in shown, shown
        time.sleep(0.05)
    out = manager.exec(name, ["cat", "/home/bench/mpi.out"], user="bench").stdout.decode()
    ranks = [line for line in out.splitlines() if line.startswith("rank ")]
    assert len(ranks) == 2, out


def one_round(manager: ClusterManager, spec: ClusterSpec) -> dict[str, float]:
    t0 = time.perf_counter()
    manager.up(spec)
    t1 = time.perf_counter()
    first_mpi_job(manager, spec.name)
    t2 = time.perf_counter()
    manager.down(spec.name, purge=True)
    t3 = time.perf_counter()
    return {
        "up_s": round(t1 - t0, 2),
        "first_mpi_job_s": round(t2 - t1, 2),
        "down_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2),
    }


def kubeconfig() -> str:
    """``KUBECONFIG``, else the one ``scripts/kube.sh`` prints (it starts the cluster)."""
    given = os.environ.get("KUBECONFIG")
    if given:
        return given
    started = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kube.sh")], stdout=subprocess.PIPE, text=True, check=True
    )
    return started.stdout.strip()


def prepare_images() -> None:
    """Build what is missing and copy it into the cluster's containerd (not timed)."""
    hpcbox = [sys.executable, "-m", "hpcbox.cli.main"]
    subprocess.run([*hpcbox, "images", "build", *[f"--role={r}" for r in ROLES]], check=True)
    tags = [version_tag(role) for role in ROLES]
    subprocess.run(["bash", str(ROOT / "scripts" / "kube.sh"), "load", *tags], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per runtime (median)")
    parser.add_argument("--accounting", action="store_true", help="MariaDB and slurmdbd too")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["KUBECONFIG"] = kubeconfig()
    prepare_images()
    home = Path(os.environ.get("HPCBOX_BENCH_HOME", "/var/tmp/hpcbox-bench-kube"))
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home)
    manager = ClusterManager(
        settings,
        store=ClusterStore(open_engine(settings)),
        progress=lambda m: print(f"  {m}", file=sys.stderr),
    )
    names = {"podman": "benchpod", "kubernetes": "benchkube"}
    for name in names.values():
        if manager.store.find(name) is not None:
            manager.down(name, purge=True)
    rounds: dict[str, list[dict[str, float]]] = {runtime: [] for runtime in names}
    # Alternated, so that a noisy minute weighs on both runtimes alike.
    for _ in range(args.rounds):
        for runtime, name in names.items():
            spec = spec_for(name, runtime, accounting=args.accounting)
            print(f"{runtime}: round {len(rounds[runtime]) + 1}", file=sys.stderr)
            rounds[runtime].append(one_round(manager, spec))
    medians: dict[str, dict[str, float]] = {
        runtime: {key: round(statistics.median(r[key] for r in results), 2) for key in results[0]}
        for runtime, results in rounds.items()
    }
    ratio = {
        key: round(medians["kubernetes"][key] / medians["podman"][key], 2)
        for key in medians["podman"]
    }
    result: dict[str, Any] = {
        "spec": {"workers": 2, "accounting": args.accounting},
        "rounds": rounds,
        "median": medians,
        "ratio_kubernetes_to_podman": ratio,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    what = "with accounting" if args.accounting else "no accounting"
    print(f"2 workers, {what}; median of {args.rounds} rounds per runtime, alternated")
    print(f"{'':12}{'up':>10}{'first MPI job':>16}{'down':>10}{'total':>10}")
    for runtime, m in medians.items():
        print(
            f"{runtime:12}{m['up_s']:>9.2f}s{m['first_mpi_job_s']:>15.2f}s"
            f"{m['down_s']:>9.2f}s{m['total_s']:>9.2f}s"
        )
    print(
        f"{'k8s/podman':12}{ratio['up_s']:>9.2f}x{ratio['first_mpi_job_s']:>15.2f}x"
        f"{ratio['down_s']:>9.2f}x{ratio['total_s']:>9.2f}x"
    )
    print("(Flux Operator publishes 11.4 s for create, a small job and teardown of a MiniCluster)")


if __name__ == "__main__":
    main()
