"""The build contexts: each role's Containerfile and the files it copies.

They ship as package data under ``hpcbox/clusters/images/containerfiles/<role>/``, so an
installed hpcbox builds its images without a source checkout. The ``operator`` role's
context also holds hpcbox itself, as a wheel made from the installed package
(:mod:`hpcbox.clusters.images.wheel`).
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from hpcbox.clusters.images.wheel import operator_context
from hpcbox.core.errors import InvalidInputError

__all__ = ["CONTAINERFILE", "context_dir", "context_files", "context_tar"]

CONTAINERFILE = "Containerfile"


def _role_root(role: str) -> Traversable:
    # The role's directory is what makes it a role here (roles.py lists them in build
    # order and imports this module for their digests, so this one cannot use it).
    containerfiles = resources.files("hpcbox.clusters.images") / "containerfiles"
    root = containerfiles / role
    if "/" in role or role.startswith(".") or not root.is_dir():
        known = sorted(c.name for c in containerfiles.iterdir() if c.is_dir())
        raise InvalidInputError(
            f"unknown image role {role!r} (one of {', '.join(known)})", field="roles"
        )
    return root


def context_files(role: str) -> dict[str, bytes]:
    """Every file of the role's build context, by path relative to the context."""
    found: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            else:
                found[f"{prefix}{child.name}"] = child.read_bytes()

    walk(_role_root(role), "")
    if role == "operator":
        found.update(operator_context())
    return found


@contextlib.contextmanager
def context_dir(files: Mapping[str, bytes]) -> Iterator[Path]:
    """A build context (path -> contents, as from :func:`context_files`) on disk.

    For the podman CLI: written to a fresh temporary directory, removed after
    the block. Paths are the context's own (relative, no ``..``).
    """
    with tempfile.TemporaryDirectory(prefix="hpcbox-context-") as temp:
        base = Path(temp)
        for name, data in files.items():
            target = base / _relative(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield base


def context_tar(files: Mapping[str, bytes]) -> bytes:
    """A build context as an uncompressed tar, for the Engine API's build."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(str(_relative(name)))
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"not a path inside a build context: {name!r}")
    return path
