"""The :class:`~hpcbox.infra.runtimes.base.Runtime` over the Docker Engine API (docker SDK).

One implementation serves Docker and Podman's API service alike; the few
places where Podman's copy of the API differs are handled here and in
:mod:`hpcbox.infra.runtimes.convert`, with the reason written beside them.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import EndpointConfig

from hpcbox.core.errors import InvalidInputError, PermanentError, TransientError
from hpcbox.infra.runtimes.base import ContainerInfo, ContainerSpec, ExecResult, FileEntry
from hpcbox.infra.runtimes.convert import (
    engine_from_ping,
    engine_name,
    info_from_inspect,
    info_from_summary,
    label_filters,
    mount_json,
    port_bindings,
    tag_matches,
    validate_spec,
)
from hpcbox.infra.runtimes.probe import ping_headers
from hpcbox.infra.runtimes.pump import ExecTimeout, pump
from hpcbox.infra.runtimes.tarball import build_tar
from hpcbox.infra.runtimes.translate import engine_errors

__all__ = ["EngineRuntime"]

#: Seconds an ordinary API call may take before the engine counts as unresponsive.
API_TIMEOUT = 120.0
#: How long to wait for an exec's exit code once its output has ended.
_EXIT_CODE_WAIT = 10.0


class EngineRuntime:
    """A container engine behind the Docker Engine API.

    Build one with :meth:`connect` (or :func:`hpcbox.infra.runtimes.connect_runtime`,
    which finds the engine). ``url`` is the engine's address (``unix://...``,
    ``tcp://...``, ``ssh://...``). ``containers_conf`` is the containers.conf the
    Podman service behind ``url`` was started with, when hpcbox started it:
    podman CLI commands against the same store must use it too.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        name: str,
        url: str,
        containers_conf: Path | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.containers_conf = containers_conf
        self.client = client
        # Typed as Any on purpose: the SDK's stubs are wrong in places this
        # module relies on (networking config maps, untyped image calls).
        self._api: Any = client.api

    @classmethod
    def connect(
        cls,
        url: str | None,
        *,
        containers_conf: Path | None = None,
        timeout: float = API_TIMEOUT,
    ) -> EngineRuntime:
        """Connect to the engine at ``url`` (``None``: from DOCKER_HOST and friends).

        Raises TransientError when nothing answers there.
        """
        if url is not None and url.startswith("unix://"):
            return cls._connect_unix(url, containers_conf=containers_conf, timeout=timeout)
        where = url or "DOCKER_HOST"
        with engine_errors(f"connect to {where}"):
            if url is None:
                client = docker.from_env(timeout=int(timeout))
            else:
                client = docker.DockerClient(base_url=url, timeout=int(timeout))
            try:
                name = engine_name(client.version())
            except BaseException:
                client.close()
                raise
        # Keep the address as the user wrote it: the SDK rewrites unix and
        # ssh addresses into internal http+docker:// forms.
        address = url or os.environ.get("DOCKER_HOST") or client.api.base_url
        return cls(client, name=name, url=address, containers_conf=containers_conf)

    @classmethod
    def _connect_unix(
        cls, url: str, *, containers_conf: Path | None, timeout: float
    ) -> EngineRuntime:
        # One ping says which engine it is and its API version; given the
        # version, the SDK skips the GET /version it would otherwise make.
        headers = ping_headers(Path(url.removeprefix("unix://")))
        if headers is None:
            raise TransientError(f"connect to {url}: no engine answers there")
        name, version = engine_from_ping(headers)
        with engine_errors(f"connect to {url}"):
            client = docker.DockerClient(base_url=url, version=version, timeout=int(timeout))
        return cls(client, name=name, url=url, containers_conf=containers_conf)

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()

    def ping(self) -> None:
        with engine_errors(f"ping {self.name} at {self.url}"):
            self._api.ping()

    # Networks and volumes

    def ensure_network(
        self, name: str, *, labels: Mapping[str, str], mtu: int | None = None
    ) -> None:
        with engine_errors(f"create network {name}"):
            # The name filter matches substrings on Docker: compare exactly.
            if any(net.get("Name") == name for net in self._api.networks(names=[name])):
                return
            try:
                # A user-defined bridge gets the engine's DNS (Docker's embedded
                # server, aardvark-dns on Podman): containers resolve by name.
                # Docker's MTU option, which Podman's compatible API maps to its own.
                options = {"com.docker.network.driver.mtu": str(mtu)} if mtu else None
                self._api.create_network(
                    name, driver="bridge", labels=dict(labels), options=options
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: created meanwhile by someone else
                    raise

    def remove_network(self, name: str) -> None:
        with engine_errors(f"remove network {name}"):
            try:
                self._api.remove_network(name)
            except docker.errors.NotFound:
                return

    def ensure_volume(self, name: str, *, labels: Mapping[str, str]) -> None:
        with engine_errors(f"create volume {name}"):
            if self.volume_exists(name):
                return
            try:
                self._api.create_volume(name, driver="local", labels=dict(labels))
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise

    def remove_volume(self, name: str) -> None:
        with engine_errors(f"remove volume {name}"):
            try:
                self._api.remove_volume(name)
            except docker.errors.NotFound:
                return

    def volume_exists(self, name: str) -> bool:
        with engine_errors(f"inspect volume {name}"):
            try:
                self._api.inspect_volume(name)
            except docker.errors.NotFound:
                return False
            return True

    # Containers

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        validate_spec(spec)
        api = self._api
        host_config = api.create_host_config(
            init=spec.init,
            network_mode=spec.network,
            privileged=spec.privileged,
            cap_add=list(spec.cap_add) or None,
            nano_cpus=int(spec.cpus * 1e9) if spec.cpus else None,
            mem_limit=spec.memory_bytes,
        )
        # Set as JSON: the SDK's helpers cannot leave HostPort empty for
        # "any free port" nor express a tmpfs Mount without a source.
        host_config["Mounts"] = [mount_json(mount) for mount in spec.mounts]
        host_config["PortBindings"] = port_bindings(spec)
        # Engines resolve a container's name and aliases, not its hostname:
        # make the hostname an alias too, as ContainerSpec promises.
        aliases = [a for a in dict.fromkeys((*spec.aliases, spec.hostname)) if a]
        endpoint = EndpointConfig(api.api_version, aliases=aliases)
        with engine_errors(f"create container {spec.name}"):
            api.create_container(
                spec.image,
                command=list(spec.command) if spec.command is not None else None,
                name=spec.name,
                hostname=spec.hostname,
                environment=dict(spec.env),
                labels=dict(spec.labels),
                ports=[(port.container_port, port.protocol) for port in spec.ports],
                host_config=host_config,
                networking_config=api.create_networking_config({spec.network: endpoint}),
            )
            return info_from_inspect(api.inspect_container(spec.name))

    def start(self, name: str) -> ContainerInfo:
        with engine_errors(f"start container {name}"):
            self._api.start(name)
            return info_from_inspect(self._api.inspect_container(name))

    def put_files(self, name: str, files: Sequence[FileEntry]) -> None:
        if not files:
            return
        archive = build_tar(files)
        with engine_errors(f"put files into {name}"):
            if not self._api.put_archive(name, "/", archive):
                raise PermanentError(f"put files into {name}: the engine refused the archive")

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
        if not argv:
            raise InvalidInputError("an empty command", field="argv")
        what = f"exec {argv[0]} in {name}"
        with engine_errors(what):
            exec_id = self._api.exec_create(
                name,
                list(argv),
                stdout=True,
                stderr=True,
                stdin=stdin is not None,
                tty=False,
                user=user or "",
                environment=dict(env) if env else None,
                workdir=workdir,
            )["Id"]
            # The attached socket rather than exec_run: it alone can feed stdin
            # and close it, and lets us keep our own deadline.
            handle = self._api.exec_start(exec_id, socket=True)
            try:
                output = pump(_raw_socket(handle), stdin, timeout)
            except ExecTimeout as exc:
                raise TransientError(
                    f"{what}: no end after {timeout}s (it may still be running)"
                ) from exc
            finally:
                _close_attached(handle)
            return ExecResult(self._exit_code(exec_id), output.stdout, output.stderr)

    def _exit_code(self, exec_id: str) -> int:
        # The output stream can end a moment before the engine records the exit.
        deadline = time.monotonic() + _EXIT_CODE_WAIT
        while True:
            state = self._api.exec_inspect(exec_id)
            if not state.get("Running") and state.get("ExitCode") is not None:
                return int(state["ExitCode"])
            if time.monotonic() >= deadline:
                raise TransientError(f"exec {exec_id[:12]}: output ended but no exit code came")
            time.sleep(0.02)

    def inspect(self, name: str) -> ContainerInfo | None:
        with engine_errors(f"inspect container {name}"):
            try:
                return info_from_inspect(self._api.inspect_container(name))
            except docker.errors.NotFound:
                return None

    def list(self, *, labels: Mapping[str, str]) -> builtins.list[ContainerInfo]:
        with engine_errors("list containers"):
            entries = self._api.containers(all=True, filters=label_filters(labels))
        return [info_from_summary(entry) for entry in entries]

    def logs(self, name: str, *, tail: int = 100) -> str:
        with engine_errors(f"logs of {name}"):
            raw = self._api.logs(name, stdout=True, stderr=True, tail=tail)
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    def stop(self, name: str, *, timeout: float = 10) -> None:
        with engine_errors(f"stop container {name}"):
            try:
                self._api.stop(name, timeout=max(0, round(timeout)))
            except docker.errors.NotFound:
                return

    def remove(self, name: str, *, force: bool = True) -> None:
        with engine_errors(f"remove container {name}"):
            try:
                self._api.remove_container(name, force=force, v=False)
            except docker.errors.NotFound:
                return

    def image_exists(self, tag: str) -> bool:
        with engine_errors(f"inspect image {tag}"):
            try:
                attrs = self._api.inspect_image(tag)
            except docker.errors.NotFound:
                return False
        if tag.startswith("sha256:"):
            return str(attrs.get("Id", "")).startswith(tag)
        return tag_matches(tag, attrs.get("RepoTags") or ())


def _raw_socket(handle: Any) -> socket.socket:
    """The socket under what the SDK's ``exec_start(socket=True)`` returns."""
    sock = handle if isinstance(handle, socket.socket) else getattr(handle, "_sock", None)
    if not isinstance(sock, socket.socket):
        raise PermanentError(
            f"exec: cannot feed stdin over this engine connection ({type(handle).__name__})"
        )
    return sock


def _close_attached(handle: Any) -> None:
    # The socket's file descriptor is shared by the SDK's file wrapper and its
    # HTTP response; it is freed only once all three are closed.
    response = getattr(handle, "_response", None)
    for closable in (response, handle, getattr(handle, "_sock", None)):
        if closable is not None:
            with contextlib.suppress(OSError, ValueError):
                closable.close()
