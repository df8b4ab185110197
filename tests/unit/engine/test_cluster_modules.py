"""The modules of :mod:`hpcbox.clusters` use each other's public names only: no import
of a private name (``_x``) from outside the importer's own package, and no private
attribute reached on anything but ``self`` or ``cls`` (the cluster kinds build on the
public node operations of :mod:`hpcbox.clusters.nodes`, not on a manager's insides)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hpcbox.clusters

ROOT = Path(hpcbox.clusters.__file__).parent
MODULES = sorted(ROOT.rglob("*.py"))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _package(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent.parent).parts[:-1])


def _offences(source: str, *, package: str) -> list[str]:
    """What the module ``source``, of package ``package``, uses that is private to
    another module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                dotted = f"{node.module}.{alias.name}".split(".")
                for i, part in enumerate(dotted):
                    # A private module or name is for its own package only.
                    if _private(part) and ".".join(dotted[:i]) != package:
                        found.append(f"line {node.lineno}: imports {'.'.join(dotted)}")
                        break
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"line {node.lineno}: reaches .{node.attr}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_of_another_module_is_used(path: Path) -> None:
    assert _offences(path.read_text(encoding="utf-8"), package=_package(path)) == []


def test_the_check_sees_what_it_forbids() -> None:
    source = (
        "from hpcbox.clusters.nodes import _DAEMON_HEADROOM\n"
        "from hpcbox.clusters.render import _k8s\n"
        "from hpcbox.clusters.render._k8s import Names\n"
        "manager._exec()\n"
        "self._runtime\n"
    )
    assert _offences(source, package="hpcbox.clusters") == [
        "line 1: imports hpcbox.clusters.nodes._DAEMON_HEADROOM",
        "line 2: imports hpcbox.clusters.render._k8s",
        "line 3: imports hpcbox.clusters.render._k8s.Names",
        "line 4: reaches ._exec",
    ]
    # Within render, its private modules are its own.
    assert _offences(source, package="hpcbox.clusters.render") == [
        "line 1: imports hpcbox.clusters.nodes._DAEMON_HEADROOM",
        "line 4: reaches ._exec",
    ]
