"""podman command lines for builds, imports and pulls: argv lists with values kept verbatim."""

from __future__ import annotations

from pathlib import Path

from hpcbox.clusters.images.commands import (
    podman_build_argv,
    podman_import_argv,
    podman_pull_argv,
)
from hpcbox.clusters.images.debian import debootstrap_argv, tar_argv


def test_build_argv() -> None:
    argv = podman_build_argv(
        "/usr/bin/podman",
        Path("/pkg/containerfiles/base"),
        tags=["hpcbox/base:0.1.0", "hpcbox/base:latest"],
        build_args={"HPCBOX_VERSION": "0.1.0", "DEBIAN_IMAGE": "hpcbox/debian:bookworm"},
        network_host=True,
    )
    assert argv == [
        "/usr/bin/podman",
        "build",
        "--pull=never",
        "-f",
        "/pkg/containerfiles/base/Containerfile",
        "--network",
        "host",
        "-t",
        "hpcbox/base:0.1.0",
        "-t",
        "hpcbox/base:latest",
        "--build-arg",
        "DEBIAN_IMAGE=hpcbox/debian:bookworm",
        "--build-arg",
        "HPCBOX_VERSION=0.1.0",
        "/pkg/containerfiles/base",
    ]


def test_build_argv_without_host_network() -> None:
    argv = podman_build_argv("podman", Path("/c"), tags=["t"], build_args={}, network_host=False)
    assert "--network" not in argv


def test_build_argv_mounts_nothing() -> None:
    # The host CA bundle travels in the build context: no -v, so no host path leaks in.
    argv = podman_build_argv("podman", Path("/c"), tags=["t"], build_args={}, network_host=True)
    assert "-v" not in argv and "--volume" not in argv


def test_values_with_shell_characters_stay_single_arguments() -> None:
    context = Path("/tmp/a b/$(id);`x`")
    argv = podman_build_argv(
        "podman",
        context,
        tags=["t"],
        build_args={"A": "x y; rm -rf /"},
        network_host=True,
    )
    assert "A=x y; rm -rf /" in argv
    assert argv[-1] == str(context)


def test_import_argv_gives_the_image_a_default_command() -> None:
    assert podman_import_argv("podman", Path("/s/rootfs.tar.gz"), "hpcbox/debian:bookworm") == [
        "podman",
        "import",
        "--change",
        'CMD ["bash"]',
        "/s/rootfs.tar.gz",
        "hpcbox/debian:bookworm",
    ]


def test_pull_argv() -> None:
    assert podman_pull_argv("podman", "docker.io/library/debian:bookworm") == [
        "podman",
        "pull",
        "docker.io/library/debian:bookworm",
    ]


def test_debootstrap_and_tar_argv() -> None:
    assert debootstrap_argv(Path("/s/.rootfs.1")) == [
        "debootstrap",
        "--variant=minbase",
        "bookworm",
        "/s/.rootfs.1",
        "http://deb.debian.org/debian",
    ]
    assert tar_argv(Path("/r"), Path("/s/x.tar.gz")) == [
        "tar",
        "--numeric-owner",
        "-C",
        "/r",
        "-czf",
        "/s/x.tar.gz",
        ".",
    ]
