"""hpcbox.infra.transport's public surface exists and depends on hpcbox.core only."""

from __future__ import annotations

import ast
from pathlib import Path

import hpcbox.infra.transport

PACKAGE = Path(hpcbox.infra.transport.__file__).parent


def test_exported_members_exist() -> None:
    for name in hpcbox.infra.transport.__all__:
        assert hasattr(hpcbox.infra.transport, name), name


def test_imports_only_core_from_hpcbox() -> None:
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("hpcbox")
            ):
                assert node.module.startswith(("hpcbox.core", "hpcbox.infra.transport")), (
                    module.name
                )
