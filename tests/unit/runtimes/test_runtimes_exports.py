"""The runtimes package's public surface."""

from __future__ import annotations

import importlib
import inspect

import pytest

from hpcbox.infra import runtimes
from hpcbox.infra.runtimes import EngineRuntime, Runtime

MODULES = [
    "hpcbox.infra.runtimes",
    "hpcbox.infra.runtimes.base",
    "hpcbox.infra.runtimes.convert",
    "hpcbox.infra.runtimes.detect",
    "hpcbox.infra.runtimes.engine",
    "hpcbox.infra.runtimes.frames",
    "hpcbox.infra.runtimes.podman_service",
    "hpcbox.infra.runtimes.probe",
    "hpcbox.infra.runtimes.pump",
    "hpcbox.infra.runtimes.tarball",
    "hpcbox.infra.runtimes.translate",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"


def test_engine_runtime_has_every_protocol_method_with_the_same_signature() -> None:
    for name, member in inspect.getmembers(Runtime, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = getattr(EngineRuntime, name)
        assert inspect.signature(ours) == inspect.signature(member), name


def test_documented_api() -> None:
    assert {"connect_runtime", "ContainerSpec", "FileEntry", "Runtime"} <= set(runtimes.__all__)
