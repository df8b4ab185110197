"""Image builds on a real engine (hpcbox's own Podman service); skipped without podman.

Every image a test looks at is built here by the session's ``built`` fixture
when it is missing (all of them on a fresh machine), with the builder's
defaults: the machine's CA bundle is handed to build steps, so the jupyter
image (pip and npm over TLS) builds behind a TLS-intercepting proxy too. An
image found present carries the tag of its exact build context, so it is the
image this code would build; HPCBOX_TEST_REBUILD_IMAGES=1 rebuilds all anyway.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hpcbox.clusters.images import ImageBuilder
from hpcbox.clusters.images.debian import BOOTSTRAPPED_IMAGE, UPSTREAM_IMAGE
from hpcbox.infra.runtimes import EngineRuntime, ExecResult
from tests.conftest import require
from tests.integration.runtimes.podman_session import CACHE_DIR, podman_session

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineRuntime]:
    with podman_session(tmp_path_factory.getbasetemp()) as engine:
        yield engine


@pytest.fixture(scope="session")
def built(runtime: EngineRuntime) -> list[str]:
    """Build whatever is missing (everything on a fresh machine); return the progress lines."""
    lines: list[str] = []
    began = time.monotonic()

    def progress(line: str) -> None:
        lines.append(line)
        print(f"{time.monotonic() - began:7.1f}s {line}")

    builder = ImageBuilder(runtime, state_dir=CACHE_DIR / "images", progress=progress)
    force = os.environ.get("HPCBOX_TEST_REBUILD_IMAGES") == "1"
    missing = builder.missing()
    if missing and not (
        runtime.image_exists(UPSTREAM_IMAGE) or runtime.image_exists(BOOTSTRAPPED_IMAGE)
    ):
        require(os.geteuid() == 0, "bootstrapping Debian with debootstrap needs root")
    started = time.monotonic()
    tags = builder.build(force=force)
    took = time.monotonic() - started
    print(f"built {len(tags)} images in {took:.0f}s (log: {builder.log_path})")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "images-build.txt").write_text(
        f"missing {missing or 'nothing'}; built {len(tags)} images in {took:.1f} s\n"
        + "".join(f"{line}\n" for line in lines)
    )
    assert builder.missing() == []
    return lines


class Node:
    """A throwaway container of one image, for looking inside.

    It joins no network (``none``): what is checked inside needs none, and the
    engine's network stack is tested where clusters come up.
    """

    def __init__(self, runtime: EngineRuntime, image: str, hostname: str) -> None:
        self.runtime = runtime
        self.name = f"hbt-img-{hostname}-{uuid.uuid4().hex[:6]}"
        # Created through the SDK: hpcbox's Runtime always joins a (bridge) network.
        api = engine_api(runtime)
        api.create_container(
            image,
            command=["sleep", "infinity"],
            name=self.name,
            hostname=hostname,
            labels={"io.hpcbox.test": "images"},
            host_config=api.create_host_config(init=True, network_mode="none"),
        )
        api.start(self.name)

    def run(self, *argv: str, stdin: bytes | None = None, ok: bool = True) -> ExecResult:
        result = self.runtime.exec(self.name, list(argv), stdin=stdin, timeout=300)
        if ok:
            assert result.exit_code == 0, (argv, result)
        return result

    def text(self, *argv: str) -> str:
        result = self.run(*argv)
        return (result.stdout + result.stderr).decode()

    def close(self) -> None:
        self.runtime.remove(self.name)


def engine_api(runtime: EngineRuntime) -> Any:
    """The SDK's low-level API client (Any: its stubs leave the calls untyped)."""
    return runtime.client.api
