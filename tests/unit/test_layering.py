"""The layering the import-linter contracts cannot say: no module imports a private
name of another, and no import cycle hides behind an import inside a function.

Both read the source itself (``ast`` and grimp, import-linter's own import graph,
which also sees imports inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "hpcbox"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = _package_of(module, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def test_no_module_imports_a_private_name_of_another() -> None:
    """``from m import _x`` is never allowed; a private module (``pkg/_m.py``) may be
    imported only from inside ``pkg``."""
    offences = []
    for module, path in _modules().items():
        package = _package_of(module, path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, path, node)
                names = [target] + [f"{target}.{alias.name}" for alias in node.names]
                for alias in node.names:
                    if _is_private(alias.name) and not _is_module(f"{target}.{alias.name}"):
                        offences.append(f"{module}: from {target} import {alias.name}")
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if not name.startswith(PACKAGE + "."):
                    continue
                parts = name.split(".")
                for i, part in enumerate(parts):
                    if _is_private(part) and _is_module(".".join(parts[: i + 1])):
                        owner = ".".join(parts[:i])
                        if package != owner and not package.startswith(owner + "."):
                            offences.append(f"{module}: imports {'.'.join(parts[: i + 1])}")
                        break
    assert not offences, "\n".join(offences)


def _is_module(name: str) -> bool:
    return name in _modules()


def test_no_import_cycles_even_through_imports_inside_functions() -> None:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    cycles: dict[frozenset[str], str] = {}
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported == module or not imported.startswith(PACKAGE):
                continue
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is not None:
                cycles.setdefault(frozenset(back), " -> ".join((module, *back)))
    assert not cycles, "\n".join(cycles.values())
