from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.clusters.spec import parse_cluster_yaml
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.errors import ConflictError, NotFoundError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine


@pytest.fixture
def store(home: Path) -> ClusterStore:
    return ClusterStore(open_engine(Settings(home=home)))


def test_lifecycle(store: ClusterStore) -> None:
    spec = parse_cluster_yaml("name: c1\nworkers: {count: 3}\n")
    record = store.create(spec, runtime="podman")
    assert record.state == "CREATING"
    assert record.workers == 3
    with pytest.raises(ConflictError):
        store.create(spec, runtime="podman")
    store.update("c1", state="RUNNING", ssh_port=2222)
    assert store.get("c1").to_json()["ssh_port"] == 2222
    assert [r.name for r in store.list_clusters()] == ["c1"]
    store.update("c1", state="DOWN")
    again = store.create(spec, runtime="podman")  # a DOWN cluster may come up again
    assert again.state == "CREATING"
    store.delete("c1")
    with pytest.raises(NotFoundError):
        store.get("c1")
    with pytest.raises(NotFoundError):
        store.update("c1", state="RUNNING")


def test_find_and_replace(store: ClusterStore) -> None:
    spec = parse_cluster_yaml("name: c2\n")
    assert store.find("c2") is None
    store.create(spec, runtime="podman")
    store.update("c2", state="FAILED", message="slurmctld did not come up")
    found = store.find("c2")
    assert found is not None and found.state == "FAILED"
    with pytest.raises(ConflictError) as info:
        store.create(spec, runtime="podman")
    assert "hpcbox cluster down c2" in str(info.value) and "--replace" in str(info.value)
    again = store.create(spec, runtime="docker", replace=True)
    assert (again.state, again.runtime, again.message) == ("CREATING", "docker", None)
    assert [r.name for r in store.list_clusters()] == ["c2"]
