"""The package's public surface and its layering contracts."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import hpcbox

PACKAGES = [
    "hpcbox",
    "hpcbox.core.errors",
    "hpcbox.jobs.model.spec",
    "hpcbox.jobs.model.states",
    "hpcbox.infra.db",
    "hpcbox.jobs.engine",
    "hpcbox.jobs.backends.local.sandbox",
    "hpcbox.infra.runtimes",
    "hpcbox.clusters.images",
    "hpcbox.clusters.render",
    "hpcbox.clusters.spec",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_members_exist(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names {member}, which does not exist"


def test_one_exception_hierarchy() -> None:
    for error in (
        hpcbox.InvalidInputError,
        hpcbox.NotFoundError,
        hpcbox.ConflictError,
        hpcbox.TransientError,
        hpcbox.PermanentError,
        hpcbox.UnavailableError,
    ):
        assert issubclass(error, hpcbox.HpcboxError)
    assert hpcbox.InvalidInputError("x").exit_code == 2
    assert hpcbox.NotFoundError("x").exit_code == 1
    assert hpcbox.NotFoundError("x").http_status == 404


def test_import_contracts_hold() -> None:
    """The layering (core <- adapters <- engine <- shells; shells independent)."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
