"""hpcbox itself as a wheel, for the build context of the ``operator`` image.

The operator image runs this hpcbox (``python -m hpcbox.operator``), so its build
context carries it: a wheel made here, without a build backend or a source checkout,
from the installed package's files and metadata, and a constraints file that pins
hpcbox's direct dependencies (with the ``operator`` extra) to the versions this
environment runs. pip in the image installs ``hpcbox-<version>-py3-none-any.whl[operator]``
from the context, its dependencies from PyPI (as the jupyter image's pip does).

Deterministic: the same package gives the same bytes (stored, not deflated; fixed
times and modes), so the operator image's content digest changes exactly when hpcbox
does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from importlib import metadata, resources
from importlib.resources.abc import Traversable

from hpcbox.core.version import __version__

__all__ = ["CONSTRAINTS", "WHEELS_DIR", "hpcbox_wheel", "operator_context", "wheel_name"]

WHEELS_DIR = "wheels"
CONSTRAINTS = "constraints.txt"
_EXTRA = "operator"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".so")
_EPOCH = (1980, 1, 1, 0, 0, 0)


def wheel_name(version: str = __version__) -> str:
    return f"hpcbox-{version}-py3-none-any.whl"


def operator_context() -> dict[str, bytes]:
    """The files the operator's Containerfile copies: the wheel and the constraints."""
    return {
        f"{WHEELS_DIR}/{wheel_name()}": hpcbox_wheel(),
        CONSTRAINTS: constraints().encode(),
    }


def _package_files() -> dict[str, bytes]:
    found: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                if child.name not in _SKIPPED_DIRS:
                    walk(child, f"{prefix}{child.name}/")
            elif not child.name.endswith(_SKIPPED_SUFFIXES):
                found[f"{prefix}{child.name}"] = child.read_bytes()

    walk(resources.files("hpcbox"), "hpcbox/")
    return found


def _headers(text: str) -> str:
    """METADATA's header lines (the long description, the README, is left out)."""
    head, _, _ = text.partition("\n\n")
    return head.rstrip("\n") + "\n"


def _dist_info() -> dict[str, bytes]:
    dist = metadata.distribution("hpcbox")
    info = f"hpcbox-{__version__}.dist-info"
    files = {
        f"{info}/METADATA": _headers(dist.read_text("METADATA") or "").encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hpcbox\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/top_level.txt": b"hpcbox\n",
    }
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files[f"{info}/entry_points.txt"] = entry_points.encode()
    return files


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def hpcbox_wheel() -> bytes:
    """A pure-Python wheel of the installed hpcbox (package files and its metadata)."""
    files = {**_package_files(), **_dist_info()}
    record = f"hpcbox-{__version__}.dist-info/RECORD"
    lines = [_record_line(name, data) for name, data in files.items()]
    files[record] = ("".join(lines) + f"{record},,\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _wanted(requirement: str) -> str | None:
    """The requirement's name if the image needs it (hpcbox's own or the operator extra's)."""
    spec, _, marker = requirement.partition(";")
    if "extra" in marker and f'extra == "{_EXTRA}"' not in marker:
        return None
    match = _NAME.match(spec.strip())
    return match.group(0) if match else None


def constraints() -> str:
    """``name==version`` for each direct dependency of ``hpcbox[operator]`` installed here."""
    lines = []
    for requirement in metadata.requires("hpcbox") or []:
        name = _wanted(requirement)
        if name is None or name == "hpcbox":
            continue
        try:
            lines.append(f"{name}=={metadata.version(name)}\n")
        except metadata.PackageNotFoundError:
            continue
    return "".join(sorted(set(lines)))
