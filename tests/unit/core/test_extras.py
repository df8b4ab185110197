"""Extras: code that needs an optional part names the extra that brings it."""

from __future__ import annotations

import pytest

from hpcbox.core import extras
from hpcbox.core.errors import UnavailableError


def test_require_passes_when_the_extra_is_installed() -> None:
    # The suite runs with every extra installed (scripts/setup.sh: --all-extras).
    for extra in extras.EXTRAS:
        extras.require(extra, "a test")


def test_require_names_the_extra_and_the_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "operator", ("kopf", "hpcbox_no_such_module"))
    with pytest.raises(UnavailableError) as info:
        extras.require("operator", "hpcbox operator")
    message = str(info.value)
    assert "hpcbox operator needs hpcbox_no_such_module" in message
    assert "pip install 'hpcbox[operator]'" in message
    assert "kopf," not in message  # only what is missing


def test_every_extra_of_the_package_is_known() -> None:
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).parents[3] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(declared)
