"""Engine API JSON to and from hpcbox's values, including Podman's differences."""

from __future__ import annotations

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.runtimes import ContainerSpec, Mount, PortBinding
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

# Trimmed from podman 4.3.1's GET /containers/{id}/json and /containers/json.
PODMAN_INSPECT = {
    "Id": "b745f0e206624c263c85b55aaf4705a4ba1809188554d73edb8462dc89b9aa6b",
    "Name": "/hbs-a",
    "State": {"Status": "running", "Running": True},
    "Config": {"Labels": {"hb": "1", "role": "a"}},
    "NetworkSettings": {
        "Ports": {
            "22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "37391"}],
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "40001"}],
            "8080/tcp": None,
        }
    },
}
PODMAN_SUMMARY = {
    "Id": "1f8e2a1f930fa84b85882274ae4e1a0725a1fe0d7619ec078cccf9d052c4a1c1",
    "Names": ["/pa"],
    "Ports": [{"IP": "127.0.0.1", "PrivatePort": 22, "PublicPort": 36611, "Type": "tcp"}],
    "Labels": {"x": "y"},
    "State": "running",
    "Status": "Up About a minute",
}


def spec(**changes: object) -> ContainerSpec:
    base = ContainerSpec(name="c-1", image="hpcbox/base:0.1.0", hostname="c1", network="n")
    return ContainerSpec(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_engine_name() -> None:
    assert engine_name({"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]}) == "podman"
    assert engine_name({"Components": [{"Name": "Engine", "Version": "27.0"}]}) == "docker"
    assert engine_name({}) == "docker"


def test_info_from_inspect() -> None:
    info = info_from_inspect(PODMAN_INSPECT)
    assert info.name == "hbs-a" and info.status == "running"
    assert info.labels == {"hb": "1", "role": "a"}
    assert info.ports == {22: 37391, 53: 40001}


def test_info_from_inspect_of_a_created_docker_container_has_no_ports_yet() -> None:
    attrs = {"Id": "x", "Name": "/c", "State": {"Status": "created"}, "Config": {"Labels": None}}
    info = info_from_inspect(attrs)
    assert (info.status, info.labels, info.ports) == ("created", {}, {})


def test_info_from_summary() -> None:
    info = info_from_summary(PODMAN_SUMMARY)
    assert (info.name, info.status, info.ports) == ("pa", "running", {22: 36611})
    assert info.labels == {"x": "y"}


def test_tcp_wins_over_udp_for_the_same_port() -> None:
    attrs = {
        **PODMAN_INSPECT,
        "NetworkSettings": {
            "Ports": {
                "53/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1000"}],
                "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "2000"}],
            }
        },
    }
    assert info_from_inspect(attrs).ports == {53: 1000}


def test_port_bindings_leave_any_free_port_empty() -> None:
    s = spec(
        ports=(PortBinding(22), PortBinding(80, 8080, "0.0.0.0"), PortBinding(53, protocol="udp"))
    )
    assert port_bindings(s) == {
        "22/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }


def test_mount_json() -> None:
    assert mount_json(Mount("homes", "/home")) == {
        "Target": "/home",
        "Type": "volume",
        "ReadOnly": False,
        "Source": "homes",
    }
    assert mount_json(Mount("/srv/x", "/x", "bind", read_only=True))["ReadOnly"] is True
    assert "Source" not in mount_json(Mount("", "/scratch", "tmpfs"))


def test_label_filters() -> None:
    assert label_filters({"a": "1", "b": "x y"}) == {"label": ["a=1", "b=x y"]}
    assert label_filters({}) == {}


@pytest.mark.parametrize(
    "changes",
    [
        {"name": ""},
        {"name": "-x"},
        {"name": "a b"},
        {"name": "a;rm"},
        {"name": "a/b"},
        {"mounts": (Mount("v", "relative"),)},
        {"mounts": (Mount("relative", "/x", "bind"),)},
        {"mounts": (Mount("", "/x", "volume"),)},
        {"ports": (PortBinding(0),)},
        {"ports": (PortBinding(70000),)},
        {"ports": (PortBinding(22, -1),)},
        {"ports": (PortBinding(22, protocol="icmp"),)},
        {"cpus": 0.0},
        {"memory_bytes": 0},
    ],
)
def test_validate_spec_refuses(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        validate_spec(spec(**changes))


def test_validate_spec_accepts_a_full_spec() -> None:
    validate_spec(
        spec(
            mounts=(
                Mount("homes", "/home"),
                Mount("/srv", "/srv", "bind"),
                Mount("", "/t", "tmpfs"),
            ),
            ports=(PortBinding(22),),
            cpus=0.5,
            memory_bytes=1 << 30,
        )
    )


@pytest.mark.parametrize(
    ("requested", "tags", "expected"),
    [
        ("hpcbox/base:0.1.0", ["localhost/hpcbox/base:0.1.0"], True),
        ("hpcbox/base:0.1.0", ["hpcbox/base:0.1.0"], True),
        ("hpcbox/base:0.1.0", ["docker.io/hpcbox/base:0.1.0"], True),
        ("hpcbox/base:0.1.0", ["localhost/hpcbox/base:latest"], False),
        ("hpcbox/base", ["localhost/hpcbox/base:latest"], True),
        # Podman finds this image for the short name by suffix; it is not debian:bookworm.
        ("debian:bookworm", ["localhost/hpcbox/debian:bookworm"], False),
        ("debian:bookworm", ["docker.io/library/debian:bookworm"], True),
        ("debian:bookworm", ["debian:bookworm"], True),
        ("docker.io/library/debian:bookworm", ["debian:bookworm"], True),
        ("docker.io/library/debian:bookworm", ["localhost/debian:bookworm"], False),
        ("registry:5000/x/y:1", ["registry:5000/x/y:1"], True),
        ("registry:5000/x/y", ["registry:5000/x/y:latest"], True),
        ("registry:5000/x/y:1", ["x/y:1"], False),
        ("hpcbox/base:0.1.0", [], False),
    ],
)
def test_tag_matches(requested: str, tags: list[str], expected: bool) -> None:
    assert tag_matches(requested, tags) is expected


def test_engine_from_ping() -> None:
    # Headers of podman 4.3.1's and Docker 27's answers to GET /_ping.
    podman = {
        "api-version": "1.41",
        "libpod-api-version": "4.3.1",
        "server": "Libpod/4.3.1 (linux)",
    }
    docker = {
        "api-version": "1.47",
        "server": "Docker/27.3.1 (linux)",
        "docker-experimental": "false",
    }
    assert engine_from_ping(podman) == ("podman", "1.41")
    assert engine_from_ping(docker) == ("docker", "1.47")
    assert engine_from_ping({}) == ("docker", None)
