"""The Debian bookworm image everything is built on: pulled, or bootstrapped offline.

Where a registry is reachable the official ``debian:bookworm`` is used. Where
none is, ``debootstrap --variant=minbase`` builds the same minimal system from
Debian's package archive (reached over plain http, which also works where
TLS is intercepted), and its root filesystem is imported as
``hpcbox/debian:bookworm``. The rootfs tarball is cached under the state dir,
so a rebuild (or a second machine sharing the cache) skips debootstrap.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from hpcbox.clusters.images.process import output_sink, run_streamed
from hpcbox.core.errors import UnavailableError
from hpcbox.core.progress import Reporter

__all__ = [
    "BOOTSTRAPPED_IMAGE",
    "MIRROR",
    "SUITE",
    "UPSTREAM_IMAGE",
    "bootstrap_rootfs",
    "debootstrap_argv",
    "find_debootstrap",
    "rootfs_tarball_path",
    "sources_text",
    "tar_argv",
]

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: Fully qualified, so that Podman needs no short-name resolution to find it.
UPSTREAM_IMAGE = "docker.io/library/debian:bookworm"
BOOTSTRAPPED_IMAGE = "hpcbox/debian:bookworm"

#: debootstrap takes 25 s to a few minutes, depending on the mirror.
_DEBOOTSTRAP_TIMEOUT = 1800.0


def rootfs_tarball_path(state_dir: Path) -> Path:
    """Where the bootstrapped root filesystem is cached."""
    return state_dir / f"debian-{SUITE}-minbase.tar.gz"


def debootstrap_argv(target: Path, *, debootstrap: str = "debootstrap") -> list[str]:
    """The debootstrap command that builds a minimal bookworm system in ``target``."""
    return [debootstrap, "--variant=minbase", SUITE, str(target), MIRROR]


def tar_argv(source: Path, tarball: Path) -> list[str]:
    """Pack ``source`` (a root filesystem) into a gzipped ``tarball``, ids kept numeric."""
    return ["tar", "--numeric-owner", "-C", str(source), "-czf", str(tarball), "."]


def sources_text() -> str:
    """APT sources as in the official image: the release, its updates and security."""
    return (
        "Types: deb\n"
        f"URIs: {MIRROR}\n"
        f"Suites: {SUITE} {SUITE}-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://deb.debian.org/debian-security\n"
        f"Suites: {SUITE}-security\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def bootstrap_rootfs(state_dir: Path, *, reporter: Reporter) -> Path:
    """The cached rootfs tarball, made with debootstrap first if there is none.

    Needs root and ``debootstrap`` (UnavailableError otherwise, saying so);
    a failing debootstrap raises PermanentError with its last output lines.
    Each stage is a step of ``reporter``; debootstrap's output is its raw output.
    """
    tarball = rootfs_tarball_path(state_dir)
    if tarball.is_file():
        reporter(f"using the cached Debian {SUITE} root filesystem {tarball}")
        return tarball
    debootstrap = find_debootstrap()
    if debootstrap is None:
        raise UnavailableError(
            "no registry image debian:bookworm and debootstrap is not installed to make one "
            "(Debian/Ubuntu: apt-get install debootstrap)"
        )
    if os.geteuid() != 0:
        raise UnavailableError(
            "no registry image debian:bookworm, and bootstrapping one with debootstrap "
            "needs root: run `hpcbox images build` once as root, or make a registry reachable"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(f".{tarball.name}.{os.getpid()}.partial")
    with _scratch_dir(state_dir / f".rootfs.{os.getpid()}") as root:
        with reporter.step(
            f"bootstrapping Debian {SUITE} (debootstrap --variant=minbase)",
            waiting_for=f"the package mirror {MIRROR}",
        ):
            run_streamed(
                debootstrap_argv(root, debootstrap=debootstrap),
                output=output_sink(reporter),
                what="debootstrap",
                timeout=_DEBOOTSTRAP_TIMEOUT,
            )
            _tidy_rootfs(root)
        with reporter.step(f"packing the root filesystem into {tarball}", waiting_for="tar"):
            try:
                run_streamed(tar_argv(root, partial), output=output_sink(reporter), what="tar")
                partial.replace(tarball)
            finally:
                partial.unlink(missing_ok=True)
    return tarball


def find_debootstrap() -> str | None:
    """debootstrap's path; it lives in /usr/sbin, which a user's PATH often lacks."""
    return shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")


def _tidy_rootfs(root: Path) -> None:
    """Drop what the image should not carry: package caches and the host's identity."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*"):
        for path in root.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()
    # Copied from the build host; engines provide both at run time.
    for name in ("etc/hostname", "etc/resolv.conf"):
        (root / name).unlink(missing_ok=True)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    sources = root / "etc/apt/sources.list.d/debian.sources"
    sources.parent.mkdir(parents=True, exist_ok=True)
    sources.write_text(sources_text())


@contextlib.contextmanager
def _scratch_dir(path: Path) -> Iterator[Path]:
    """A fresh directory, removed afterwards, with anything left mounted in it unmounted.

    debootstrap mounts /proc and /sys inside the target while it works; if it
    is interrupted they stay mounted, and deleting the tree must not descend
    into them.
    """
    _remove_tree(path)
    path.mkdir(mode=0o755, parents=True)
    try:
        yield path
    finally:
        _remove_tree(path)


def _remove_tree(path: Path) -> None:
    if not path.exists():
        return
    for mount in _mounts_under(path):
        run_streamed(["umount", "-l", str(mount)], output=lambda _: None, what="umount")
    shutil.rmtree(path)


def _mounts_under(path: Path) -> list[Path]:
    """Mount points below ``path``, deepest first (Linux /proc/self/mounts)."""
    prefix = str(path.resolve()) + "/"
    found: list[Path] = []
    with contextlib.suppress(OSError), open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 1:
                # Spaces and other specials in mount points are octal-escaped.
                point = fields[1].encode().decode("unicode_escape")
                if point.startswith(prefix):
                    found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)
