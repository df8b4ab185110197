"""Cluster variants: accounting (slurmdbd + MariaDB) and MPICH."""

from __future__ import annotations

import time

import pytest

from hpcbox.clusters.manager import ClusterManager
from hpcbox.infra.runtimes import FileEntry
from tests.integration.cluster.conftest import Up, run
from tests.integration.cluster.test_slurm_cluster import MPI_HELLO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_accounting_sacct_shows_finished_jobs(manager: ClusterManager, bring_up: Up) -> None:
    spec = bring_up(
        {
            "name": "hpcbox-acct",
            "accounting": True,
            "workers": {"count": 1, "cpus": 1, "memory": "512M"},
            "partitions": [{"name": "short", "max_time": "10:00"}, {"name": "long"}],
            "users": [{"name": "carol"}],
        }
    )
    name = spec.name
    assoc = run(manager, name, ["sacctmgr", "-n", "-P", "show", "assoc", "format=user"])
    assert "carol" in assoc.stdout.decode().split()
    job = run(
        manager,
        name,
        ["sbatch", "--parsable", "--wait", "-p", "short", "-o", "/dev/null", "--wrap", "true"],
        user="carol",
    )
    job_id = job.stdout.decode().strip()
    deadline = time.monotonic() + 60
    while True:
        out = run(
            manager,
            name,
            ["sacct", "-n", "-P", "-X", "-j", job_id, "--format=JobID,User,State,Partition"],
        ).stdout.decode()
        if "COMPLETED" in out or time.monotonic() > deadline:
            break
        time.sleep(1)
    # sacct's Partition can be empty for a job that ended within the same second it
    # was recorded; the controller's record (MinJobAge keeps it) is authoritative.
    assert out.strip().split("|")[:3] == [job_id, "carol", "COMPLETED"], out
    shown = run(manager, name, ["scontrol", "-o", "show", "job", job_id]).stdout.decode()
    assert "Partition=short" in shown
    status = manager.status(name)
    assert {n.role for n in status.nodes} == {"controller", "worker", "slurmdbd", "mariadb"}
    assert [p["name"] for p in status.partitions] == ["short", "long"]
    assert status.partitions[0]["default"]


def test_mpich_srun_and_hostfile(manager: ClusterManager, bring_up: Up) -> None:
    spec = bring_up(
        {
            "name": "hpcbox-mpich",
            "mpi": "mpich",
            "workers": {"count": 2, "cpus": 1, "memory": "512M"},
            "users": [{"name": "dave"}],
        }
    )
    name = spec.name
    uid = spec.user_ids()["dave"][0]
    manager.runtime().put_files(
        f"hpcbox-{name}-controller",
        [FileEntry("/home/dave/hello.c", MPI_HELLO.encode(), uid=uid, gid=uid)],
    )
    run(manager, name, ["mpicc.mpich", "-o", "/home/dave/hello", "/home/dave/hello.c"], user="dave")
    out = run(manager, name, ["srun", "-N2", "-n2", "/home/dave/hello"], user="dave")
    lines = [line for line in out.stdout.decode().splitlines() if line.startswith("rank")]
    assert len(lines) == 2, out
    assert {line.split()[-1] for line in lines} == {"worker1", "worker2"}
    hostfile = run(manager, name, ["cat", "/etc/hpcbox/hostfile"]).stdout.decode()
    assert hostfile.split() == ["worker1:1", "worker2:1"]
    out = run(
        manager,
        name,
        ["mpirun.mpich", "-f", "/etc/hpcbox/hostfile", "-n", "2", "/home/dave/hello"],
        node="worker1",
        user="dave",
    )
    hosts = {
        line.split()[-1] for line in out.stdout.decode().splitlines() if line.startswith("rank")
    }
    assert hosts == {"worker1", "worker2"}
