"""The podman commands an image build runs, as argv lists (built here, run elsewhere)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hpcbox.clusters.images.context import CONTAINERFILE

__all__ = [
    "IMPORT_CHANGES",
    "podman_build_argv",
    "podman_import_argv",
    "podman_pull_argv",
    "podman_tag_argv",
]

#: Applied to an imported root filesystem, so it starts like the official image.
IMPORT_CHANGES = ('CMD ["bash"]',)


def podman_build_argv(
    podman: str,
    context: Path,
    *,
    tags: Sequence[str],
    build_args: Mapping[str, str],
    network_host: bool,
) -> list[str]:
    """``podman build`` of ``context`` (holding a Containerfile) into ``tags``.

    ``--pull=never``: every base is local by the time a build runs (pulled,
    imported or built just before), and no build may reach for a registry.
    Files a build needs (the host CA bundle among them) are in ``context``:
    nothing is mounted into build steps.
    """
    argv = [podman, "build", "--pull=never", "-f", str(context / CONTAINERFILE)]
    if network_host:
        argv += ["--network", "host"]
    for tag in tags:
        argv += ["-t", tag]
    for key, value in sorted(build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    argv.append(str(context))
    return argv


def podman_import_argv(podman: str, tarball: Path, reference: str) -> list[str]:
    """``podman import`` of a root filesystem tarball as image ``reference``."""
    argv = [podman, "import"]
    for change in IMPORT_CHANGES:
        argv += ["--change", change]
    return [*argv, str(tarball), reference]


def podman_pull_argv(podman: str, reference: str) -> list[str]:
    return [podman, "pull", reference]


def podman_tag_argv(podman: str, source: str, targets: Sequence[str]) -> list[str]:
    """``podman tag``: more names for the image ``source``."""
    return [podman, "tag", source, *targets]
