"""Real clusters: podman containers running munge, slurmctld, slurmd, sshd (and
slurmdbd + MariaDB with accounting). Images are built once (cached by podman)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.runtimes import ExecResult
from tests.conftest import require

# One state dir for the whole session, so the podman service and image cache are shared.
SESSION_HOME = Path("/var/tmp/hpcbox-test-clusters")


def require_podman() -> None:
    require(shutil.which("podman") is not None, "podman is not installed (apt-get install podman)")


@pytest.fixture(scope="session")
def cluster_settings() -> Settings:
    require_podman()
    SESSION_HOME.mkdir(parents=True, exist_ok=True)
    return Settings(home=SESSION_HOME)


@pytest.fixture(scope="session")
def manager(cluster_settings: Settings) -> ClusterManager:
    store = ClusterStore(open_engine(cluster_settings))
    return ClusterManager(cluster_settings, store=store, progress=print)


Up = Callable[[dict[str, object]], ClusterSpec]


@pytest.fixture(scope="session")
def bring_up(manager: ClusterManager) -> Iterator[Up]:
    """Bring clusters up; every one is taken down (purged) at the end of the session."""
    names: list[str] = []

    def up(data: dict[str, object]) -> ClusterSpec:
        spec = parse_cluster_spec(data)
        for record in manager.list_clusters():
            if record.name == spec.name:
                manager.down(spec.name, purge=True)
        names.append(spec.name)
        manager.up(spec)
        return spec

    yield up
    for name in names:
        try:
            manager.down(name, purge=True)
        except Exception as exc:  # report, keep cleaning the others
            print(f"could not take {name} down: {exc}")


def run(
    manager: ClusterManager,
    cluster: str,
    argv: list[str],
    *,
    node: str | None = None,
    user: str | None = None,
) -> ExecResult:
    result = manager.exec(cluster, argv, node=node, user=user)
    assert result.exit_code == 0, (argv, result.stdout, result.stderr)
    return result
