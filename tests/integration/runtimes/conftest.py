"""Real containers on a real engine (hpcbox's own Podman service); skipped without podman."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from hpcbox.infra.runtimes import ContainerSpec, EngineRuntime
from tests.integration.runtimes.podman_session import debian_test_image, podman_session


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRuntime]:
    with podman_session(tmp_path_factory.getbasetemp()) as engine:
        yield engine


@pytest.fixture(scope="session")
def image(runtime: EngineRuntime) -> str:
    return debian_test_image(runtime)


@pytest.fixture
def prefix() -> str:
    """A name prefix of this test's own, so parallel sessions do not collide."""
    return f"hbt-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def network(runtime: EngineRuntime, prefix: str) -> Iterator[str]:
    name = f"{prefix}-net"
    runtime.ensure_network(name, labels={"io.hpcbox.test": prefix})
    yield name
    for info in runtime.list(labels={"io.hpcbox.test": prefix}):
        runtime.remove(info.name)
    runtime.remove_network(name)


@pytest.fixture
def make_container(
    runtime: EngineRuntime, image: str, network: str, prefix: str
) -> Callable[..., str]:
    """Create (and start, unless told not to) a container; removed with the network."""

    def make(suffix: str, *, start: bool = True, **changes: object) -> str:
        fields: dict[str, object] = {
            "name": f"{prefix}-{suffix}",
            "image": image,
            "hostname": suffix,
            "network": network,
            "command": ("sleep", "infinity"),
            "labels": {"io.hpcbox.test": prefix},
        }
        fields.update(changes)
        spec = ContainerSpec(**fields)  # type: ignore[arg-type]
        runtime.create(spec)
        if start:
            runtime.start(spec.name)
        return spec.name

    return make
