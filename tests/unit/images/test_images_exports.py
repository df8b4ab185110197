"""The images package's public surface."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "hpcbox.images",
    "hpcbox.images.backends",
    "hpcbox.images.builder",
    "hpcbox.images.buildlog",
    "hpcbox.images.commands",
    "hpcbox.images.context",
    "hpcbox.images.debian",
    "hpcbox.images.hostca",
    "hpcbox.images.process",
    "hpcbox.images.roles",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"


def test_documented_api() -> None:
    images = importlib.import_module("hpcbox.images")
    assert {"ROLES", "ImageBuilder", "image_tag"} <= set(images.__all__)
