"""Finding helm and kubectl: the configured path (``HPCBOX_HELM``, ``HPCBOX_KUBECTL``),
else the binaries ``scripts/kube.sh build`` puts in
``${XDG_CACHE_HOME:-~/.cache}/hpcbox/kube/bin/``, else the PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hpcbox.core.errors import UnavailableError

__all__ = ["BUILD_HINT", "Completed", "cache_bin_dir", "find_tool", "run"]

BUILD_HINT = "scripts/kube.sh build"


def cache_bin_dir(environ: Mapping[str, str]) -> Path:
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or "~") / ".cache")
    return Path(cache).expanduser() / "hpcbox" / "kube" / "bin"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_tool(name: str, configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The path of ``name`` (``helm`` or ``kubectl``); UnavailableError saying how to get it."""
    env = os.environ if environ is None else environ
    variable = f"HPCBOX_{name.upper()}"
    if configured:
        if not _executable(Path(configured)):
            raise UnavailableError(f"{variable}={configured} is not an executable file")
        return configured
    cached = cache_bin_dir(env) / name
    if _executable(cached):
        return str(cached)
    found = shutil.which(name, path=env.get("PATH"))
    if found:
        return found
    raise UnavailableError(
        f"no {name}: build it with `{BUILD_HINT}` (into {cached.parent}), "
        f"put it on the PATH, or set {variable}"
    )


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def errors(self, lines: int = 20) -> str:
        text = (self.stderr or self.stdout).decode("utf-8", "replace").strip()
        return "\n".join(text.splitlines()[-lines:])


def run(argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None) -> Completed:
    """Run ``argv`` (a list, no shell); UnavailableError when it cannot start or times out."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise UnavailableError(f"cannot run {argv[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise UnavailableError(f"{' '.join(argv[:3])} did not finish in {timeout} s") from exc
    return Completed(done.returncode, done.stdout, done.stderr)
