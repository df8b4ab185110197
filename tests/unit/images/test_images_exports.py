"""The images package's public surface."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "hpcbox.clusters.images",
    "hpcbox.clusters.images.backends",
    "hpcbox.clusters.images.builder",
    "hpcbox.clusters.images.buildlog",
    "hpcbox.clusters.images.commands",
    "hpcbox.clusters.images.context",
    "hpcbox.clusters.images.debian",
    "hpcbox.clusters.images.hostca",
    "hpcbox.clusters.images.process",
    "hpcbox.clusters.images.roles",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"


def test_documented_api() -> None:
    images = importlib.import_module("hpcbox.clusters.images")
    assert {"ROLES", "ImageBuilder", "image_tag"} <= set(images.__all__)
