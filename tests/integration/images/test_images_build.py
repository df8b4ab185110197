"""All node images built offline (Debian bootstrapped, no registry), then checked inside.

The first run bootstraps Debian and builds everything (a few minutes); later
runs find the images and only check them. HPCBOX_TEST_REBUILD_IMAGES=1 forces
a rebuild of all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hpcbox.clusters.images import ROLES, image_tag
from hpcbox.infra.runtimes import EngineRuntime
from tests.integration.images.conftest import Node, engine_api

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

HELLO_MPI = b"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    printf("rank %d of %d\\n", rank, size);
    MPI_Finalize();
    return 0;
}
"""


MakeNode = Callable[[str], Node]


@pytest.fixture
def node(runtime: EngineRuntime, built: list[str]) -> Iterator[MakeNode]:
    nodes: list[Node] = []

    def make(role: str) -> Node:
        made = Node(runtime, image_tag(role), role)
        nodes.append(made)
        return made

    yield make
    for made in nodes:
        made.close()


def test_all_images_are_present_with_both_tags(runtime: EngineRuntime, built: list[str]) -> None:
    for role in ROLES:
        assert runtime.image_exists(image_tag(role))
        assert runtime.image_exists(f"hpcbox/{role}:latest")


def test_base_has_no_secrets_and_keys_only_sshd(node: MakeNode) -> None:
    base = node("base")
    assert (
        base.run("sh", "-c", "ls /etc/ssh/ssh_host_* /etc/munge/munge.key", ok=False).exit_code != 0
    )
    for tool in ("munged", "sshd", "sudo", "ps", "ip", "less", "vi", "tini"):
        base.run("sh", "-c", f"command -v {tool} || test -x /usr/sbin/{tool}")
    base.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/tmp/test_host_key")
    config = base.text("/usr/sbin/sshd", "-T", "-h", "/tmp/test_host_key")
    assert "passwordauthentication no" in config
    assert "permitrootlogin without-password" in config or "prohibit-password" in config
    assert "kbdinteractiveauthentication no" in config


def test_controller(node: MakeNode) -> None:
    ctl = node("slurm-controller")
    assert "slurm-wlm 22.05" in ctl.text("slurmctld", "-V")
    for tool in ("sbatch", "srun", "squeue", "scontrol", "sinfo", "sacct"):
        ctl.run("sh", "-c", f"command -v {tool}")
    assert ctl.text("id", "-un", "slurm").strip() == "slurm"


def test_worker_compiles_and_runs_mpi_with_openmpi_and_mpich(node: MakeNode) -> None:
    worker = node("slurm-worker")
    assert "slurm-wlm 22.05" in worker.text("slurmd", "-V")
    assert "gcc" in worker.text("mpicc", "--version")
    assert "Open MPI" in worker.text("mpicc", "-showme:version")
    assert "mpich" in worker.text("mpicc.mpich", "-show")
    # OpenMPI is the default for headers too (mpi.h through the alternatives).
    assert "openmpi" in worker.text("sh", "-c", "readlink -f /usr/include/*/mpi/mpi.h")
    worker.run(
        "sh",
        "-c",
        "ls /usr/lib/*/slurm-wlm/mpi_pmix.so /usr/lib/*/libpmix.so.2",
    )
    worker.run("sh", "-c", "cat > /tmp/hello.c", stdin=HELLO_MPI)
    worker.run("mpicc", "-o", "/tmp/hello-openmpi", "/tmp/hello.c")
    worker.run("mpicc.mpich", "-o", "/tmp/hello-mpich", "/tmp/hello.c")
    openmpi = worker.text(
        "mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", "/tmp/hello-openmpi"
    )
    assert sorted(openmpi.split("\n")[:2]) == ["rank 0 of 2", "rank 1 of 2"], openmpi
    mpich = worker.text("mpirun.mpich", "-np", "2", "/tmp/hello-mpich")
    assert sorted(line for line in mpich.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2",
        "rank 1 of 2",
    ], mpich


def test_slurmdbd(node: MakeNode) -> None:
    dbd = node("slurmdbd")
    dbd.run("test", "-x", "/usr/sbin/slurmdbd")
    dbd.run("sh", "-c", "ls /usr/lib/*/slurm-wlm/accounting_storage_mysql.so")
    assert "22.05" in dbd.text("dpkg-query", "-W", "-f", "${Version}", "slurmdbd")


def test_mariadb(node: MakeNode) -> None:
    db = node("mariadb")
    assert "MariaDB" in db.text("mariadbd", "--version")
    db.run("test", "-x", "/usr/sbin/mysqld")
    # Left empty: each cluster initialises its own data directory.
    assert db.text("ls", "-A", "/var/lib/mysql").strip() == ""


def test_jupyter_installed_over_tls_and_keeps_no_ca(runtime: EngineRuntime, node: MakeNode) -> None:
    """pip and npm reached their registries in the build (through this machine's CA
    bundle where TLS is intercepted); the bundle stayed in the build stage."""
    hub = node("jupyter")
    assert hub.text("jupyterhub", "--version").strip() == "6.1.1"
    assert hub.text("configurable-http-proxy", "--version").strip() == "5.3.0"
    hub.run("python", "-c", "import ipyparallel, jupyterlab, numpy")
    assert hub.text("sh", "-c", "command -v ipengine").strip() == "/opt/jupyter/bin/ipengine"
    assert hub.text("id", "-u", "ipyparallel").strip() == "990"
    hub.run("test", "-x", "/usr/local/bin/hpcbox-singleuser")
    # The SLURM login tools of the image it extends are there too.
    hub.run("sh", "-c", "command -v sbatch")
    assert hub.run("test", "-e", "/hostca", ok=False).exit_code != 0
    history = engine_api(runtime).history(image_tag("jupyter"))
    assert history, "no image history"
    assert not any("hostca" in str(layer.get("CreatedBy", "")) for layer in history)
