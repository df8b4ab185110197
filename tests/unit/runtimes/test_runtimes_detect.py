"""Which engine connect_runtime picks, from facts gathered with injected probes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError, UnavailableError
from hpcbox.infra.runtimes.detect import (
    DOCKER_SOCKET,
    ROOT_PODMAN_SOCKET,
    Choice,
    Facts,
    choose,
    gather_facts,
)
from hpcbox.infra.runtimes.podman_service import PodmanService

USER_SOCKET = Path("/run/user/1000/podman/podman.sock")


def facts(
    *,
    docker_host: str | None = None,
    answering: tuple[Path, ...] = (),
    own: bool = False,
    podman: bool = False,
    user_socket: Path | None = None,
) -> Facts:
    return Facts(
        docker_host=docker_host,
        answering=frozenset(answering),
        own_service_running=own,
        podman_installed=podman,
        user_podman_socket=user_socket,
    )


def test_docker_host_wins_for_auto_and_docker() -> None:
    f = facts(docker_host="tcp://10.0.0.1:2376", answering=(DOCKER_SOCKET,), podman=True)
    for pref in ("auto", "docker"):
        assert choose(pref, f) == Choice(None, "DOCKER_HOST=tcp://10.0.0.1:2376")


def test_docker_socket_before_podman() -> None:
    f = facts(answering=(DOCKER_SOCKET, ROOT_PODMAN_SOCKET), own=True, podman=True)
    assert choose("auto", f) == Choice("unix:///var/run/docker.sock", "/var/run/docker.sock")


def test_podman_preference_ignores_docker() -> None:
    f = facts(docker_host="unix:///x.sock", answering=(DOCKER_SOCKET, ROOT_PODMAN_SOCKET))
    assert choose("podman", f).url == "unix:///run/podman/podman.sock"


def test_own_running_service_before_system_podman_socket() -> None:
    f = facts(answering=(ROOT_PODMAN_SOCKET,), own=True, podman=True)
    assert choose("auto", f).own_service


def test_running_system_podman_socket_before_starting_one() -> None:
    f = facts(answering=(USER_SOCKET,), podman=True, user_socket=USER_SOCKET)
    assert choose("auto", f) == Choice(f"unix://{USER_SOCKET}", str(USER_SOCKET))


def test_start_own_service_when_only_podman_is_installed() -> None:
    for pref in ("auto", "podman"):
        choice = choose(pref, facts(podman=True))
        assert choice.own_service and choice.url is None


def test_docker_preference_without_docker() -> None:
    with pytest.raises(UnavailableError, match=r"docs\.docker\.com"):
        choose("docker", facts(podman=True, answering=(ROOT_PODMAN_SOCKET,)))


def test_nothing_installed_says_what_to_install() -> None:
    with pytest.raises(UnavailableError, match="apt-get install podman") as auto:
        choose("auto", facts())
    assert "docs.docker.com" in str(auto.value)
    with pytest.raises(UnavailableError, match="podman is not installed"):
        choose("podman", facts())


def test_unknown_preference() -> None:
    with pytest.raises(InvalidInputError, match="runtime"):
        choose("kubernetes", facts())  # type: ignore[arg-type]


def test_gather_facts_uses_the_injected_probes(tmp_path: Path) -> None:
    asked: list[Path] = []

    def answers(path: Path) -> bool:
        asked.append(path)
        return path == USER_SOCKET

    found = gather_facts(
        PodmanService(tmp_path, podman="/nonexistent", oci_runtime="runc"),
        environ={"XDG_RUNTIME_DIR": "/run/user/1000", "DOCKER_HOST": ""},
        uid=1000,
        which=lambda name: None,
        answers=answers,
    )
    assert found == facts(answering=(USER_SOCKET,), user_socket=USER_SOCKET)
    # A regular user's machine: root's podman socket is not probed.
    assert ROOT_PODMAN_SOCKET not in asked and DOCKER_SOCKET in asked


def test_gather_facts_for_root(tmp_path: Path) -> None:
    found = gather_facts(
        PodmanService(tmp_path, podman="/nonexistent", oci_runtime="runc"),
        environ={"DOCKER_HOST": "unix:///d.sock"},
        uid=0,
        which=lambda name: "/usr/bin/podman" if name == "podman" else None,
        answers=lambda path: path == ROOT_PODMAN_SOCKET,
    )
    assert found == facts(
        docker_host="unix:///d.sock", answering=(ROOT_PODMAN_SOCKET,), podman=True
    )
