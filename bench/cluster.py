#!/usr/bin/env python3
"""Benchmark clusters: bring-up time and MPI ping-pong, each against a baseline
measured in the same run.

(a) Time from ``cluster up`` to a first job COMPLETED, for 2 and 4 workers with
    images cached, next to the time to start the same number of bare containers
    (controller + workers) running ``sleep`` from the same base image.
(b) MPI ping-pong latency (8 B) and bandwidth (4 MiB) between two workers, next to
    the same program between two processes on the host, by default (OpenMPI picks
    shared memory there) and forced over TCP loopback (``--mca btl self,tcp``),
    which is what the containers use between them.

Needs podman (or Docker), and OpenMPI on the host for (b)'s baseline
(apt-get install openmpi-bin libopenmpi-dev).

Usage: .venv/bin/python bench/cluster.py [--workers 2 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hpcbox.clusters.images import image_tag
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.spec import parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.runtimes import ContainerSpec, FileEntry

PINGPONG = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
/* rank 0 <-> rank 1: half the round trip of `reps` exchanges of `size` bytes. */
static double pingpong(int rank, char *buf, int size, int reps) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < reps; i++) {
        if (rank == 0) {
            MPI_Send(buf, size, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, size, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, size, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, size, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
        }
    }
    return (MPI_Wtime() - t0) / (2.0 * reps);
}
int main(int argc, char **argv) {
    int rank;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int big = 4 << 20;
    char *buf = calloc(big, 1);
    pingpong(rank, buf, 8, 100);                       /* warm up */
    double lat = pingpong(rank, buf, 8, 2000);
    pingpong(rank, buf, big, 2);
    double t = pingpong(rank, buf, big, 20);
    if (rank == 0) printf("{\"latency_us\": %.3f, \"bandwidth_MBps\": %.1f}\n",
                          lat * 1e6, big / t / 1e6);
    free(buf);
    MPI_Finalize();
    return 0;
}
"""


def bare_containers(manager: ClusterManager, count: int) -> float:
    """Seconds to create and start ``count`` containers running sleep (then removed)."""
    rt = manager.runtime()
    net = "hpcbox-bench-bare"
    rt.ensure_network(net, labels={"io.hpcbox.bench": "1"})
    names = [f"hpcbox-bench-bare-{i}" for i in range(count)]
    for name in names:
        rt.remove(name, force=True)
    t0 = time.perf_counter()
    for name in names:
        rt.create(
            ContainerSpec(
                name=name,
                image=image_tag("base"),
                hostname=name,
                network=net,
                command=("sleep", "infinity"),
                labels={"io.hpcbox.bench": "1"},
            )
        )
        rt.start(name)
    while not all((info := rt.inspect(n)) is not None and info.status == "running" for n in names):
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    for name in names:
        rt.remove(name, force=True)
    rt.remove_network(net)
    return elapsed


def up_to_first_job(manager: ClusterManager, name: str, workers: int, *, batch: bool) -> float:
    """Seconds from ``up`` to a first job COMPLETED: a batch job (``sbatch``) or an
    interactive one (``srun``, which returns when its job has completed)."""
    spec = parse_cluster_spec(
        {
            "name": name,
            "workers": {"count": workers, "cpus": 1, "memory": "512M"},
            "users": [{"name": "bench"}],
        }
    )
    t0 = time.perf_counter()
    manager.up(spec)
    if not batch:
        result = manager.exec(name, ["srun", "-N1", "true"], user="bench")
        assert result.exit_code == 0, result.stderr
        return time.perf_counter() - t0
    # Watched closely: `sbatch --wait` itself polls only every few seconds, which
    # would measure its back-off rather than the cluster.
    result = manager.exec(
        name, ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"], user="bench"
    )
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.decode().strip().split(";")[0]
    while True:
        shown = manager.exec(name, ["scontrol", "-o", "show", "job", job_id]).stdout.decode()
        if "JobState=COMPLETED" in shown:
            return time.perf_counter() - t0
        assert "JobState=FAILED" not in shown, shown
        time.sleep(0.05)


def cluster_pingpong(manager: ClusterManager, name: str) -> dict[str, float]:
    uid = manager.store.get(name).spec.user_ids()["bench"][0]
    manager.runtime().put_files(
        f"hpcbox-{name}-controller",
        [FileEntry("/home/bench/pingpong.c", PINGPONG.encode(), uid=uid, gid=uid)],
    )
    compiled = manager.exec(
        name, ["mpicc", "-O2", "-o", "/home/bench/pingpong", "/home/bench/pingpong.c"], user="bench"
    )
    assert compiled.exit_code == 0, compiled.stderr
    out = manager.exec(
        name, ["srun", "-N2", "-n2", "--mpi=pmix", "/home/bench/pingpong"], user="bench"
    )
    assert out.exit_code == 0, out.stderr
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def host_pingpong(tcp: bool) -> dict[str, float] | None:
    if shutil.which("mpicc") is None or shutil.which("mpirun") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "pingpong.c", Path(tmp) / "pingpong"
        src.write_text(PINGPONG)
        subprocess.run(["mpicc", "-O2", "-o", str(exe), str(src)], check=True)
        argv = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"]
        if tcp:
            argv += ["--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        out = subprocess.run([*argv, str(exe)], check=True, capture_output=True, text=True, env=env)
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(os.environ.get("HPCBOX_BENCH_HOME", "/var/tmp/hpcbox-bench"))
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home)
    manager = ClusterManager(
        settings,
        store=ClusterStore(open_engine(settings)),
        progress=lambda m: print(f"  {m}", file=sys.stderr),
    )
    results: dict[str, Any] = {"bringup": [], "pingpong": {}}
    name = "bench"
    for record in manager.list_clusters():
        manager.down(record.name, purge=True)
    # Warm the image cache (builds only what is missing) before anything is timed.
    up_to_first_job(manager, name, 1, batch=False)
    manager.down(name, purge=True)
    for workers in args.workers:
        bare = bare_containers(manager, workers + 1)
        with_srun = up_to_first_job(manager, name, workers, batch=False)
        manager.down(name, purge=True)
        with_sbatch = up_to_first_job(manager, name, workers, batch=True)
        results["bringup"].append(
            {
                "workers": workers,
                "containers": workers + 1,
                "bare_start_s": round(bare, 3),
                "up_to_first_srun_job_s": round(with_srun, 3),
                "up_to_first_batch_job_s": round(with_sbatch, 3),
                "ratio_srun": round(with_srun / bare, 2),
                "ratio_batch": round(with_sbatch / bare, 2),
            }
        )
        if workers == args.workers[0]:
            results["pingpong"]["cluster"] = cluster_pingpong(manager, name)
        manager.down(name, purge=True)
    results["pingpong"]["host_default"] = host_pingpong(tcp=False)
    results["pingpong"]["host_tcp"] = host_pingpong(tcp=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for row in results["bringup"]:
        print(
            f"{row['workers']} workers: {row['containers']} bare containers "
            f"{row['bare_start_s']} s; up to a first job COMPLETED: srun "
            f"{row['up_to_first_srun_job_s']} s (x{row['ratio_srun']}), sbatch "
            f"{row['up_to_first_batch_job_s']} s (x{row['ratio_batch']})   [target <= 5x]"
        )
    pp = results["pingpong"]
    c = pp["cluster"]
    print(f"ping-pong between 2 workers: {c['latency_us']} us, {c['bandwidth_MBps']} MB/s")
    for key in ("host_default", "host_tcp"):
        h = pp[key]
        if h is None:
            print(f"{key}: no host MPI (apt-get install openmpi-bin libopenmpi-dev)")
            continue
        print(
            f"{key}: {h['latency_us']} us, {h['bandwidth_MBps']} MB/s -> cluster latency "
            f"x{c['latency_us'] / h['latency_us']:.2f} [target <= 1.5], bandwidth "
            f"x{c['bandwidth_MBps'] / h['bandwidth_MBps']:.2f} [target >= 0.9]"
        )


if __name__ == "__main__":
    main()
