"""Container engines behind one narrow interface.

:class:`Runtime` is what cluster code calls; :func:`connect_runtime` finds an
engine (Docker, or Podman's Docker-compatible API service, which hpcbox starts
itself where none runs) and returns one. Everything goes through the Docker
Engine API via the docker SDK, so Docker and Podman share one implementation,
:class:`EngineRuntime`.
"""

from hpcbox.infra.runtimes.base import (
    ContainerInfo,
    ContainerSpec,
    ExecResult,
    FileEntry,
    Mount,
    PortBinding,
    Runtime,
)
from hpcbox.infra.runtimes.detect import connect_runtime
from hpcbox.infra.runtimes.engine import EngineRuntime
from hpcbox.infra.runtimes.podman_service import PodmanService, podman_env

__all__ = [
    "ContainerInfo",
    "ContainerSpec",
    "EngineRuntime",
    "ExecResult",
    "FileEntry",
    "Mount",
    "PodmanService",
    "PortBinding",
    "Runtime",
    "connect_runtime",
    "podman_env",
]
