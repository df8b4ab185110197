"""hpcbox.clusters.render's public surface: every name in ``__all__`` exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "hpcbox.clusters.render",
    "hpcbox.clusters.render.accounts",
    "hpcbox.clusters.render.helm",
    "hpcbox.clusters.render.layout",
    "hpcbox.clusters.render.mpi",
    "hpcbox.clusters.render.slurm",
]


@pytest.mark.parametrize("name", MODULES)
def test_exported_members_exist(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names {member}, which does not exist"
