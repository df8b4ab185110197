"""Pure conversions between hpcbox's runtime values and Engine API JSON.

Kept apart from the client code so the mapping, including where Podman's copy
of the API differs from Docker's, is unit-tested without an engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.runtimes.base import ContainerInfo, ContainerSpec, Mount

__all__ = [
    "engine_from_ping",
    "engine_name",
    "info_from_inspect",
    "info_from_summary",
    "label_filters",
    "mount_json",
    "port_bindings",
    "tag_matches",
    "validate_spec",
]


def engine_name(version: Mapping[str, Any]) -> str:
    """``"podman"`` when ``GET /version`` names a Podman engine, else ``"docker"``."""
    for component in version.get("Components") or ():
        if "podman" in str(component.get("Name", "")).lower():
            return "podman"
    return "docker"


def engine_from_ping(headers: Mapping[str, str]) -> tuple[str, str | None]:
    """Engine name and API version from ``GET /_ping``'s headers (names lower-cased)."""
    podman = "libpod-api-version" in headers or headers.get("server", "").startswith("Libpod")
    return ("podman" if podman else "docker"), headers.get("api-version") or None


def validate_spec(spec: ContainerSpec) -> None:
    """Refuse what the engine would refuse less clearly (InvalidInputError naming the field)."""
    if not spec.name or not (spec.name[0].isalnum() and _NAME_CHARS.issuperset(spec.name)):
        raise InvalidInputError(f"bad container name {spec.name!r}", field="name")
    for mount in spec.mounts:
        if not mount.target.startswith("/"):
            raise InvalidInputError(f"mount target must be absolute: {mount.target!r}")
        if mount.kind == "bind" and not mount.source.startswith("/"):
            raise InvalidInputError(f"bind source must be an absolute path: {mount.source!r}")
        if mount.kind == "volume" and not mount.source:
            raise InvalidInputError("a volume mount needs a volume name", field="mounts")
    for port in spec.ports:
        if not (0 < port.container_port < 65536 and 0 <= port.host_port < 65536):
            raise InvalidInputError(f"bad port binding {port}", field="ports")
        if port.protocol not in ("tcp", "udp", "sctp"):
            raise InvalidInputError(f"bad protocol {port.protocol!r}", field="ports")
    if spec.cpus is not None and spec.cpus <= 0:
        raise InvalidInputError("must be positive", field="cpus")
    if spec.memory_bytes is not None and spec.memory_bytes <= 0:
        raise InvalidInputError("must be positive", field="memory_bytes")


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def mount_json(mount: Mount) -> dict[str, Any]:
    """The ``HostConfig.Mounts`` entry for ``mount``."""
    entry: dict[str, Any] = {
        "Target": mount.target,
        "Type": mount.kind,
        "ReadOnly": mount.read_only,
    }
    if mount.kind != "tmpfs":
        entry["Source"] = mount.source
    return entry


def port_bindings(spec: ContainerSpec) -> dict[str, list[dict[str, str]]]:
    """``HostConfig.PortBindings`` for the spec; host port 0 is left empty (engine picks)."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in spec.ports:
        host_port = str(port.host_port) if port.host_port else ""
        bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
            {"HostIp": port.host_ip, "HostPort": host_port}
        )
    return bindings


def label_filters(labels: Mapping[str, str]) -> dict[str, list[str]]:
    """The ``filters`` argument that keeps objects carrying every label in ``labels``."""
    return {"label": [f"{key}={value}" for key, value in labels.items()]} if labels else {}


def info_from_inspect(attrs: Mapping[str, Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from ``GET /containers/{id}/json``."""
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    published: dict[int, int] = {}
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in sorted(ports.items(), key=_tcp_last):
        for binding in bindings or ():
            if binding.get("HostPort"):
                published[int(key.split("/")[0])] = int(binding["HostPort"])
                break
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "unknown")),
        labels=dict(config.get("Labels") or {}),
        ports=published,
    )


def info_from_summary(entry: Mapping[str, Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from one element of ``GET /containers/json``."""
    names = entry.get("Names") or [""]
    published: dict[int, int] = {}
    for port in sorted(entry.get("Ports") or (), key=lambda p: p.get("Type") == "tcp"):
        if port.get("PublicPort"):
            published[int(port["PrivatePort"])] = int(port["PublicPort"])
    return ContainerInfo(
        id=str(entry.get("Id", "")),
        name=str(names[0]).lstrip("/"),
        status=str(entry.get("State", "unknown")),
        labels=dict(entry.get("Labels") or {}),
        ports=published,
    )


def _tcp_last(item: tuple[str, Any]) -> bool:
    # Sorted so that a tcp binding, coming last, wins over udp for the same port.
    return item[0].endswith("/tcp")


def tag_matches(requested: str, repo_tags: Iterable[str]) -> bool:
    """True when ``requested`` names one of ``repo_tags``, as an engine would resolve it.

    Podman's API resolves a short name by suffix (``debian:bookworm`` finds
    ``localhost/hpcbox/debian:bookworm``), so the image it returns must be
    checked. A stored tag is read the way Docker stores it (short names are
    on ``docker.io``); a requested short name may also mean ``localhost/``,
    where Podman keeps local builds.
    """
    name, tag = _split_reference(requested)
    if _has_registry(name):
        wanted = {f"{name}:{tag}"}
    else:
        wanted = {f"{_docker_io(name)}:{tag}", f"localhost/{name}:{tag}"}
    for stored in repo_tags:
        stored_name, stored_tag = _split_reference(stored)
        if not _has_registry(stored_name):
            stored_name = _docker_io(stored_name)
        if f"{stored_name}:{stored_tag}" in wanted:
            return True
    return False


def _split_reference(reference: str) -> tuple[str, str]:
    head, _, last = reference.rpartition("/")
    tag = "latest"
    if ":" in last:
        last, tag = last.rsplit(":", 1)
    return (f"{head}/{last}" if head else last), tag


def _has_registry(name: str) -> bool:
    first, slash, _ = name.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _docker_io(name: str) -> str:
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"
