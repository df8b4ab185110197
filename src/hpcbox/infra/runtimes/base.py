"""What hpcbox needs from a container engine: values and the ``Runtime`` protocol.

Cluster bring-up, scaling and teardown are written against :class:`Runtime`
only, so they run unchanged on Docker, on Podman's Docker-compatible API
service, or on a fake in unit tests. The values here are plain frozen data;
they carry no engine objects, so they can be logged, compared and persisted.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "ContainerInfo",
    "ContainerSpec",
    "ExecResult",
    "FileEntry",
    "Mount",
    "PortBinding",
    "Runtime",
]


@dataclass(frozen=True)
class Mount:
    """A filesystem mounted into a container.

    ``kind`` ``"volume"``: ``source`` is a named volume (created on first use);
    ``"bind"``: ``source`` is an absolute host path; ``"tmpfs"``: ``source`` is
    ignored and a fresh in-memory filesystem is mounted.
    """

    source: str
    target: str
    kind: Literal["volume", "bind", "tmpfs"] = "volume"
    read_only: bool = False


@dataclass(frozen=True)
class PortBinding:
    """A container port published on the host; ``host_port`` 0 picks any free port."""

    container_port: int
    host_port: int = 0
    host_ip: str = "127.0.0.1"
    protocol: str = "tcp"


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create one container.

    ``network`` is the one network the container joins; other containers on it
    reach this one by ``name``, ``hostname`` and each of ``aliases``.
    ``command`` ``None`` keeps the image's default command. ``cpus`` is a
    fraction of CPUs (``1.5``), ``memory_bytes`` a hard memory limit. ``init``
    runs a small init as PID 1 that forwards signals and reaps zombies, so a
    stop is immediate instead of waiting out the engine's kill timeout.
    """

    name: str
    image: str
    hostname: str
    network: str
    aliases: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    ports: tuple[PortBinding, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    cpus: float | None = None
    memory_bytes: int | None = None
    init: bool = True
    cap_add: tuple[str, ...] = ()
    privileged: bool = False


@dataclass(frozen=True)
class ContainerInfo:
    """A container as the engine reports it.

    ``status`` is the engine's word (``created``, ``running``, ``exited``, ...).
    ``ports`` maps a container port to the host port it is published on, once
    the engine has assigned one (Podman at create, Docker at start).
    """

    id: str
    name: str
    status: str
    labels: Mapping[str, str]
    ports: Mapping[int, int]


@dataclass(frozen=True)
class ExecResult:
    """How a command run inside a container ended, with its output kept apart."""

    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class FileEntry:
    """A regular file to place in a container: absolute ``path``, content and owner."""

    path: str
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


class Runtime(Protocol):
    """A container engine reached through the Docker Engine API (or a fake).

    Errors: :class:`~hpcbox.core.errors.NotFoundError` for a missing container,
    network, volume or image the call needs; :class:`~hpcbox.core.errors.ConflictError`
    when the object is in the wrong state (name taken, container not running,
    network still in use); :class:`~hpcbox.core.errors.TransientError` when the
    engine does not answer; :class:`~hpcbox.core.errors.InvalidInputError` for a
    spec the engine refuses; :class:`~hpcbox.core.errors.PermanentError` otherwise.
    """

    #: ``"docker"`` or ``"podman"``: which engine answers the API.
    name: str

    def ping(self) -> None:
        """Return when the engine answers; raise TransientError when it does not."""

    def ensure_network(
        self, name: str, *, labels: Mapping[str, str], mtu: int | None = None
    ) -> None:
        """Create a bridge network with name resolution between its containers, unless
        one of that name exists already (then it is kept as it is). ``mtu`` sets the
        interfaces' MTU (default: the engine's, usually 1500)."""

    def remove_network(self, name: str) -> None:
        """Remove the network; a missing network is not an error."""

    def ensure_volume(self, name: str, *, labels: Mapping[str, str]) -> None:
        """Create a named volume unless it exists (then it is kept, data and all)."""

    def remove_volume(self, name: str) -> None:
        """Remove the volume and its data; a missing volume is not an error."""

    def volume_exists(self, name: str) -> bool:
        """True when a volume of that name exists."""

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the container without starting it, so files can be put in first."""

    def start(self, name: str) -> ContainerInfo:
        """Start a created (or stopped) container; starting a running one is a no-op."""

    def put_files(self, name: str, files: Sequence[FileEntry]) -> None:
        """Write regular files into the container, created or running.

        Missing parent directories are created (root-owned, mode 0755);
        existing ones keep their owner and mode. Existing files are replaced.
        """

    def exec(
        self,
        name: str,
        argv: Sequence[str],
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run ``argv`` (no shell) in the running container and wait for it.

        ``stdin`` is fed to the command and then closed; without it the command
        reads end-of-file. A non-zero exit is reported in the result, not raised.
        Past ``timeout`` seconds, TransientError is raised; the command may
        still be running in the container.
        """

    def inspect(self, name: str) -> ContainerInfo | None:
        """The container, or ``None`` when there is none of that name."""

    def list(self, *, labels: Mapping[str, str]) -> builtins.list[ContainerInfo]:
        """Every container (running or not) carrying all the given labels."""

    def logs(self, name: str, *, tail: int = 100) -> str:
        """The last ``tail`` lines of the container's output (stdout and stderr)."""

    def stop(self, name: str, *, timeout: float = 10) -> None:
        """Stop the container: SIGTERM, then SIGKILL after ``timeout`` seconds.
        A missing or already stopped container is not an error."""

    def remove(self, name: str, *, force: bool = True) -> None:
        """Remove the container (killing it first when ``force``); named volumes
        are kept. A missing container is not an error."""

    def image_exists(self, tag: str) -> bool:
        """True when the image is present locally (no registry is asked)."""
