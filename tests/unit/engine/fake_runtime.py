"""A fake :class:`~hpcbox.infra.runtimes.Runtime` at hpcbox's own seam, for unit tests.

In memory: networks, volumes, containers (with their spec, status and files).
It behaves as an engine does where hpcbox relies on it: names taken are
conflicts, a missing container is NotFoundError, a container on a network is
found by its name, hostname and aliases from others on that network (when
``dns`` is on), PID 1 is the init when one is asked for. ``exec`` answers the
few commands the doctor and a bring-up run; tests add their own in ``handlers``.
Switches model broken machines: ``init_missing`` (no catatonit), ``dns``
(False: Podman on CNI), ``start_error`` (nothing starts), ``slow_stop``.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hpcbox.core.errors import ConflictError, NotFoundError, PermanentError
from hpcbox.infra.runtimes import ContainerInfo, ContainerSpec, ExecResult, FileEntry

Handler = Callable[["FakeContainer", Sequence[str]], ExecResult | None]


@dataclass
class FakeContainer:
    spec: ContainerSpec
    status: str = "created"
    files: dict[str, bytes] = field(default_factory=dict)

    def info(self) -> ContainerInfo:
        ports = {p.container_port: p.host_port or 40000 + p.container_port for p in self.spec.ports}
        return ContainerInfo(
            id=f"id-{self.spec.name}",
            name=self.spec.name,
            status=self.status,
            labels=dict(self.spec.labels),
            ports=ports,
        )


def ok(stdout: bytes = b"") -> ExecResult:
    return ExecResult(0, stdout, b"")


class FakeRuntime:
    """An in-memory engine; ``calls`` records every mutating call in order."""

    def __init__(self, name: str = "podman") -> None:
        self.name = name
        self.networks: dict[str, dict[str, str]] = {}
        self.volumes: set[str] = set()
        self.containers: dict[str, FakeContainer] = {}
        self.images: set[str] | None = None  # None: every image is present
        self.calls: list[tuple[str, str]] = []
        self.execs: list[tuple[str, tuple[str, ...]]] = []
        self.handlers: list[Handler] = []
        self.init_missing = False
        self.dns = True
        self.start_error: str | None = None
        self.slow_stop = 0.0
        #: Called with (operation, name) before each mutating call: tests raise here.
        self.before: Callable[[str, str], None] = lambda _op, _name: None

    # -- helpers for tests ----------------------------------------------------------

    def _record(self, op: str, name: str) -> None:
        self.before(op, name)
        self.calls.append((op, name))

    def _get(self, name: str) -> FakeContainer:
        try:
            return self.containers[name]
        except KeyError:
            raise NotFoundError(f"no container {name}") from None

    def names_on(self, network: str) -> dict[str, str]:
        """Every name resolvable on ``network``: name -> container."""
        found: dict[str, str] = {}
        for c in self.containers.values():
            if c.spec.network == network and c.status == "running":
                for alias in (c.spec.name, c.spec.hostname, *c.spec.aliases):
                    found[alias] = c.spec.name
        return found

    # -- the Runtime protocol -------------------------------------------------------

    def ping(self) -> None:
        return None

    def ensure_network(
        self, name: str, *, labels: Mapping[str, str], mtu: int | None = None
    ) -> None:
        if name not in self.networks:
            self._record("network", name)
            self.networks[name] = dict(labels)

    def remove_network(self, name: str) -> None:
        if name in self.networks:
            if any(c.spec.network == name for c in self.containers.values()):
                raise ConflictError(f"network {name} is in use")
            self._record("remove-network", name)
            del self.networks[name]

    def ensure_volume(self, name: str, *, labels: Mapping[str, str]) -> None:
        self.volumes.add(name)

    def remove_volume(self, name: str) -> None:
        self.volumes.discard(name)

    def volume_exists(self, name: str) -> bool:
        return name in self.volumes

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        self._record("create", spec.name)
        if spec.name in self.containers:
            raise ConflictError(f"the name {spec.name} is taken")
        if spec.network not in self.networks:
            raise NotFoundError(f"no network {spec.network}")
        if not self.image_exists(spec.image):
            raise NotFoundError(f"no image {spec.image}")
        container = FakeContainer(spec)
        self.containers[spec.name] = container
        return container.info()

    def start(self, name: str) -> ContainerInfo:
        self._record("start", name)
        container = self._get(name)
        if self.start_error is not None:
            raise PermanentError(f"start container {name}: {self.start_error}")
        if container.spec.init and self.init_missing:
            raise PermanentError(
                f"start container {name}: container create: container-init binary not found "
                "on the host: stat /usr/libexec/podman/catatonit: no such file or directory"
            )
        container.status = "running"
        return container.info()

    def put_files(self, name: str, files: Sequence[FileEntry]) -> None:
        container = self._get(name)
        for entry in files:
            container.files[entry.path] = entry.data

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
        container = self._get(name)
        if container.status != "running":
            raise ConflictError(f"container {name} is not running")
        self.execs.append((name, tuple(argv)))
        for handler in self.handlers:
            answer = handler(container, argv)
            if answer is not None:
                return answer
        words = list(argv)
        if words[:1] == ["timeout"]:
            words = words[2:]
        if words == ["cat", "/proc/1/cmdline"]:
            command = list(container.spec.command or ("sleep", "infinity"))
            pid1 = ["/run/podman-init", "--", *command] if container.spec.init else command
            return ok(b"\0".join(part.encode() for part in pid1) + b"\0")
        if words[:2] == ["getent", "hosts"]:
            names = self.names_on(container.spec.network) if self.dns else {}
            if all(n in names for n in words[2:]):
                lines = [f"10.88.0.{i + 2}  {n}" for i, n in enumerate(words[2:])]
                return ok(("\n".join(lines) + "\n").encode())
            return ExecResult(2, b"", b"")
        if words[:2] == ["scontrol", "ping"]:
            return ok(b"Slurmctld(primary) at controller is UP\n")
        return ok()

    def inspect(self, name: str) -> ContainerInfo | None:
        container = self.containers.get(name)
        return None if container is None else container.info()

    def list(self, *, labels: Mapping[str, str]) -> builtins.list[ContainerInfo]:
        return [
            c.info()
            for c in self.containers.values()
            if all(c.spec.labels.get(k) == v for k, v in labels.items())
        ]

    def logs(self, name: str, *, tail: int = 100) -> str:
        return f"(log of {name})"

    def stop(self, name: str, *, timeout: float = 10) -> None:
        container = self.containers.get(name)
        if container is None:
            return
        self._record("stop", name)
        if self.slow_stop:
            time.sleep(self.slow_stop)
        container.status = "exited"

    def remove(self, name: str, *, force: bool = True) -> None:
        if name in self.containers:
            self._record("remove", name)
            del self.containers[name]

    def image_exists(self, tag: str) -> bool:
        return self.images is None or tag in self.images
