"""The two build paths on a real engine: the podman CLI, and the Engine API (what Docker uses).

No Docker Engine is available here; Podman's compatible API is the closest
real engine, and it has quirks of its own that the API path must survive (a
pull failure reported inside a 200 stream, an import that ignores its tag).
Both paths get the host CA bundle the same way, as a file of the build
context that only a build stage sees.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from hpcbox.clusters.images import image_tag
from hpcbox.clusters.images.backends import BuildBackend, DockerApiBackend, PodmanCliBackend
from hpcbox.clusters.images.builder import select_backend
from hpcbox.clusters.images.context import context_files
from hpcbox.clusters.images.debian import UPSTREAM_IMAGE
from hpcbox.clusters.images.hostca import HostCa, host_ca_context, resolve_host_ca
from hpcbox.core.errors import PermanentError
from hpcbox.infra.runtimes import EngineRuntime
from tests.conftest import require
from tests.integration.images.conftest import Node, engine_api
from tests.unit.images.fakes import RecordingReporter

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

#: A build stage that records what it saw of the CA bundle; the image keeps only that.
CA_PROBE = b"""\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS install
ARG NONCE
COPY hostca/ /hostca/
RUN if [ -f /hostca/ca-certificates.crt ]; then \\
        sha256sum < /hostca/ca-certificates.crt | cut -d' ' -f1 > /seen; \\
    else echo none > /seen; fi \\
    && echo "$NONCE" > /nonce
FROM ${BASE_IMAGE}
COPY --from=install /seen /seen
COPY --from=install /nonce /nonce
"""


@pytest.fixture
def test_repo(runtime: EngineRuntime) -> Iterator[str]:
    repo = f"hbtest/api-{uuid.uuid4().hex[:8]}"
    yield repo
    api = runtime.client.api
    ids = {image["Id"] for image in api.images(name=repo) + api.images(name=f"docker.io/{repo}")}
    for image_id in ids:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(image_id, force=True)


def backend_of(kind: str, runtime: EngineRuntime, reporter: RecordingReporter) -> BuildBackend:
    if kind == "api":
        return DockerApiBackend(runtime, runtime.client, reporter=reporter, network_host=True)
    backend = select_backend(runtime, reporter=reporter, network_host=True)
    assert isinstance(backend, PodmanCliBackend)
    return backend


def tiny_rootfs(path: Path) -> Path:
    """A root filesystem tarball of one file: all an import needs."""
    data = b"hello from a test rootfs\n"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("etc/hbtest")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_api_pull_failure_and_import(
    runtime: EngineRuntime, test_repo: str, tmp_path: Path
) -> None:
    reporter = RecordingReporter()
    backend = backend_of("api", runtime, reporter)
    if not runtime.image_exists(UPSTREAM_IMAGE):
        # No registry here: the failure must come back as False, not as success.
        assert backend.pull(UPSTREAM_IMAGE) is False
        assert any("pull" in line for line in reporter.of("output"))
    backend.import_rootfs(tiny_rootfs(tmp_path / "rootfs.tar.gz"), f"{test_repo}:rootfs")
    assert runtime.image_exists(f"{test_repo}:rootfs")


def test_api_build_of_a_role(runtime: EngineRuntime, built: list[str], test_repo: str) -> None:
    reporter = RecordingReporter()
    backend = backend_of("api", runtime, reporter)
    backend.build(
        {**context_files("slurmdbd"), **host_ca_context(None)},
        tags=[f"{test_repo}:1", f"{test_repo}:latest"],
        build_args={"BASE_IMAGE": image_tag("base"), "HPCBOX_VERSION": "api-test"},
    )
    assert runtime.image_exists(f"{test_repo}:1")
    assert runtime.image_exists(f"{test_repo}:latest")
    raw = reporter.of("output")
    assert any("COMMIT" in line or "Successfully" in line for line in raw)
    # The Containerfile's steps came through as what the build waits for.
    assert any("STEP" in what.upper() and "RUN" in what for what in reporter.of("waiting"))


@pytest.mark.parametrize("kind", ["cli", "api"])
@pytest.mark.parametrize("with_ca", [True, False], ids=["ca", "no-ca"])
def test_the_host_ca_reaches_build_steps_only(
    runtime: EngineRuntime, built: list[str], test_repo: str, kind: str, with_ca: bool
) -> None:
    host_ca: HostCa | None = resolve_host_ca("auto" if with_ca else "none", {})
    if with_ca:
        require(host_ca is not None, "this machine has no system CA bundle")
    assert host_ca is not None or not with_ca
    backend = backend_of(kind, runtime, RecordingReporter())
    tag = f"{test_repo}:probe"
    backend.build(
        {"Containerfile": CA_PROBE, **host_ca_context(host_ca)},
        tags=[tag],
        build_args={"BASE_IMAGE": image_tag("base"), "NONCE": uuid.uuid4().hex},
    )
    probe = Node(runtime, tag, "caprobe")
    try:
        seen = probe.text("cat", "/seen").strip()
        if host_ca is not None:
            assert seen == hashlib.sha256(host_ca.path.read_bytes()).hexdigest()
        else:
            assert seen == "none"
        assert probe.run("test", "-e", "/hostca", ok=False).exit_code != 0
    finally:
        probe.close()
    history = engine_api(runtime).history(tag)
    assert not any("hostca" in str(layer.get("CreatedBy", "")) for layer in history)


@pytest.mark.parametrize("kind", ["cli", "api"])
def test_a_failed_build_quotes_its_last_output(
    runtime: EngineRuntime, built: list[str], test_repo: str, kind: str
) -> None:
    reporter = RecordingReporter()
    backend = backend_of(kind, runtime, reporter)
    failing = b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo 'hbtest: about to fail' && exit 7\n"
    with pytest.raises(PermanentError) as caught:
        backend.build(
            {"Containerfile": failing, **host_ca_context(None)},
            tags=[f"{test_repo}:broken"],
            build_args={"BASE_IMAGE": image_tag("base")},
        )
    first, _, rest = str(caught.value).partition("\n")
    assert f"{test_repo}:broken" in first and "failed" in first
    assert "hbtest: about to fail" in rest
    assert "hbtest: about to fail" in reporter.of("output")
