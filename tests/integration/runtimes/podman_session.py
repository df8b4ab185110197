"""One engine for a whole test session: hpcbox's own Podman service, started the real way.

Shared by the runtimes and images integration tests. The service's state dir
is the session's base temp dir, so a second fixture reuses the service the
first one started; only the one that started it stops it, and a service that
was already running before the session is left alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hpcbox.clusters.images import ImageBuilder
from hpcbox.core.errors import UnavailableError
from hpcbox.infra.runtimes import EngineRuntime, PodmanService, connect_runtime
from tests.conftest import require

#: Survives test sessions: the bootstrapped Debian tarball and nothing else.
CACHE_DIR = Path(os.environ.get("HPCBOX_TEST_CACHE", "/var/tmp/hpcbox-test-cache"))


@contextmanager
def podman_session(base_temp: Path) -> Iterator[EngineRuntime]:
    require(
        shutil.which("podman") is not None, "podman is not installed (apt-get install podman runc)"
    )
    state_dir = base_temp / "engine"
    service = PodmanService(state_dir)
    was_running = service.running_pid() is not None
    runtime = connect_runtime("podman", state_dir=state_dir)
    assert isinstance(runtime, EngineRuntime)
    try:
        yield runtime
    finally:
        runtime.close()
        if not was_running:
            service.stop()


def debian_test_image(runtime: EngineRuntime) -> str:
    """A small local image to run test containers from: the Debian base, bootstrapped once."""
    builder = ImageBuilder(runtime, state_dir=CACHE_DIR / "images", progress=print)
    try:
        return builder.debian_image()
    except UnavailableError as exc:
        require(False, f"no Debian base image can be made here: {exc}")
        raise
