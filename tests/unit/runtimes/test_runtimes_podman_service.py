"""hpcbox's own Podman service: its containers.conf, command line, start, reuse and stop.

The podman executable is replaced by a small script that answers the API's
ping on the socket, so the process handling is tested for real without podman.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError, UnavailableError
from hpcbox.infra.runtimes.podman_service import (
    PodmanService,
    ServicePaths,
    containers_conf_text,
    podman_env,
    service_argv,
)
from hpcbox.infra.runtimes.probe import pid_alive, ping_unix

FAKE = Path(__file__).with_name("fake_podman.py")


def test_containers_conf_sets_runc_and_ulimits() -> None:
    text = containers_conf_text(oci_runtime="runc")
    assert "[engine]" in text and 'runtime = "runc"' in text
    assert 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]' in text
    # Keys must sit in their own tables, or podman ignores them.
    assert text.index("default_ulimits") > text.index("[containers]")
    assert text.index("runtime =") > text.index("[engine]")


def test_containers_conf_without_runc_leaves_the_runtime_to_podman() -> None:
    text = containers_conf_text(oci_runtime=None)
    assert "runtime =" not in text
    assert "default_ulimits" in text


def test_containers_conf_is_valid_toml() -> None:
    import tomllib

    parsed = tomllib.loads(containers_conf_text(oci_runtime="runc"))
    assert parsed == {
        "containers": {"default_ulimits": ["nofile=1024:1024", "nproc=4096:4096"]},
        "engine": {"runtime": "runc"},
    }


def test_containers_conf_selects_netavark_when_given() -> None:
    import tomllib

    parsed = tomllib.loads(containers_conf_text(oci_runtime="runc", network_backend="netavark"))
    assert parsed["network"] == {"network_backend": "netavark"}
    assert parsed["engine"] == {"runtime": "runc"}
    assert "network_backend" not in containers_conf_text(oci_runtime="runc")


def test_service_writes_the_network_backend_it_was_given(tmp_path: Path) -> None:
    import tomllib

    service = PodmanService(
        tmp_path, podman="/nonexistent", oci_runtime="runc", network_backend="netavark"
    )
    service.paths.root.mkdir()
    service._write_conf()
    parsed = tomllib.loads(service.paths.conf.read_text())
    assert parsed["network"]["network_backend"] == "netavark"


def test_service_argv_never_idles_out() -> None:
    sock = Path("/state/podman/podman.sock")
    assert service_argv("/usr/bin/podman", sock) == [
        "/usr/bin/podman",
        "system",
        "service",
        "--time=0",
        "unix:///state/podman/podman.sock",
    ]


def test_podman_env_adds_containers_conf_and_keeps_the_rest() -> None:
    env = podman_env(Path("/s/podman/containers.conf"), {"PATH": "/bin", "CONTAINERS_CONF": "/x"})
    assert env == {"PATH": "/bin", "CONTAINERS_CONF": "/s/podman/containers.conf"}


def test_podman_env_points_tmpdir_at_the_services_own_directory(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    env = podman_env(tmp_path / "containers.conf", {"TMPDIR": "/var/tmp"})
    assert env["TMPDIR"] == str(tmp_path / "tmp")


def test_paths_live_in_one_directory() -> None:
    paths = ServicePaths.under(Path("/home/u/.local/share/hpcbox"))
    root = Path("/home/u/.local/share/hpcbox/podman")
    assert {p.parent for p in (paths.socket, paths.pid_file, paths.log_file, paths.conf)} == {root}


@pytest.fixture
def fake_podman(tmp_path: Path) -> Path:
    script = tmp_path / "podman"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} "$@"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def service(tmp_path: Path, fake_podman: Path) -> Iterator[PodmanService]:
    svc = PodmanService(tmp_path / "state", podman=str(fake_podman), oci_runtime="runc")
    yield svc
    svc.stop(timeout=5)


def test_start_writes_conf_pid_and_answers(tmp_path: Path, fake_podman: Path) -> None:
    copy = tmp_path / "seen.conf"
    service = PodmanService(
        tmp_path / "state",
        podman=str(fake_podman),
        oci_runtime="runc",
        network_backend="netavark",
        environ={**os.environ, "FAKE_PODMAN_CONF_COPY": str(copy)},
    )
    url = service.ensure_running(timeout=20)
    assert url == f"unix://{service.paths.socket}"
    assert ping_unix(service.paths.socket)
    pid = service.running_pid()
    assert pid is not None and pid_alive(pid)
    # The service got hpcbox's containers.conf, not the system's.
    assert copy.read_text() == containers_conf_text(oci_runtime="runc", network_backend="netavark")
    assert stat.S_IMODE(service.paths.root.stat().st_mode) == 0o700
    # Its own session: a terminal's Ctrl-C does not reach it.
    assert os.getsid(pid) == pid
    assert service.stop(timeout=5)


def test_a_running_service_is_reused(service: PodmanService) -> None:
    service.ensure_running(timeout=20)
    first = service.running_pid()
    service.ensure_running(timeout=20)
    assert service.running_pid() == first


def test_a_dead_service_is_replaced(service: PodmanService) -> None:
    service.ensure_running(timeout=20)
    first = service.running_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    service.ensure_running(timeout=20)
    second = service.running_pid()
    assert second is not None and second != first
    assert ping_unix(service.paths.socket)


def test_a_recycled_pid_is_not_mistaken_for_the_service(service: PodmanService) -> None:
    service.paths.root.mkdir(parents=True)
    # Our own pid: alive, but not a podman service for this socket.
    service.paths.pid_file.write_text(f"{os.getpid()}\n")
    assert service.running_pid() is None
    service.ensure_running(timeout=20)
    assert service.running_pid() not in (None, os.getpid())


def test_stop_ends_it_and_cleans_up(service: PodmanService) -> None:
    service.ensure_running(timeout=20)
    pid = service.running_pid()
    assert pid is not None
    assert service.stop(timeout=5) is True
    assert not pid_alive(pid)
    assert not service.paths.socket.exists()
    assert not service.paths.pid_file.exists()
    assert service.stop() is False


def test_a_failing_start_reports_the_log(tmp_path: Path, fake_podman: Path) -> None:
    service = PodmanService(
        tmp_path / "state",
        podman=str(fake_podman),
        oci_runtime="runc",
        environ={**os.environ, "FAKE_PODMAN_FAIL": "1"},
    )
    with pytest.raises(UnavailableError, match="fake failure"):
        service.ensure_running(timeout=10)
    assert service.running_pid() is None


def test_missing_podman(tmp_path: Path) -> None:
    svc = PodmanService(tmp_path, environ={"PATH": str(tmp_path / "empty")}, oci_runtime="runc")
    with pytest.raises(UnavailableError, match="apt-get install podman"):
        svc.ensure_running(timeout=1)


def test_a_socket_path_too_long_is_refused(tmp_path: Path) -> None:
    svc = PodmanService(tmp_path / ("d" * 120), podman="/bin/false", oci_runtime="runc")
    with pytest.raises(InvalidInputError, match="too long"):
        svc.ensure_running(timeout=1)
