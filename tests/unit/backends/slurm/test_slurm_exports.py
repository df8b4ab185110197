"""hpcbox.jobs.backends.slurm's public surface: every name in ``__all__`` exists, and no I/O."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import hpcbox.jobs.backends.slurm as package

MODULES = [
    "hpcbox.jobs.backends.slurm",
    "hpcbox.jobs.backends.slurm.commands",
    "hpcbox.jobs.backends.slurm.directives",
    "hpcbox.jobs.backends.slurm.poll",
    "hpcbox.jobs.backends.slurm.ratelimit",
    "hpcbox.jobs.backends.slurm.script",
    "hpcbox.jobs.backends.slurm.states",
]


@pytest.mark.parametrize("name", MODULES)
def test_exported_members_exist(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names {member}, which does not exist"


def test_modules_import_only_the_standard_library_and_the_core() -> None:
    # Pure by construction: running the commands is another module's job.
    # io, posixpath and tarfile build an archive in memory (batch_submit.py).
    allowed_stdlib = {
        "__future__",
        "collections",
        "dataclasses",
        "io",
        "posixpath",
        "re",
        "shlex",
        "tarfile",
        "threading",
        "types",
    }
    for path in Path(package.__file__).parent.glob("*.py"):
        if path.name in {"remote.py", "watcher.py", "backend.py"}:
            continue  # the modules that run the commands, over a Transport, and the Backend
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                inside = name.startswith(
                    ("hpcbox.core", "hpcbox.jobs.model", "hpcbox.jobs.backends.slurm")
                )
                assert inside or top in allowed_stdlib, f"{path.name} imports {name}"
