"""Clusters reach jobs through one module, :mod:`hpcbox.jobs.targets` (DESIGN:
"clusters registers a job target through one public function of jobs"), and the
import-linter contract that says so names every other module of jobs."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import grimp
import pytest

import hpcbox.jobs

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = "Clusters reach jobs through hpcbox.jobs.targets only"
WAY_IN = "hpcbox.jobs.targets"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("hpcbox", cache_dir=None)


def test_clusters_import_nothing_of_jobs_but_its_targets_module(
    graph: grimp.ImportGraph,
) -> None:
    seen: dict[str, set[str]] = {}
    for module in {"hpcbox.clusters", *graph.find_descendants("hpcbox.clusters")}:
        for imported in graph.find_modules_directly_imported_by(module):
            # The root package re-exports the job model: importing it links to jobs too.
            if imported in ("hpcbox", "hpcbox.jobs") or imported.startswith("hpcbox.jobs."):
                seen.setdefault(imported, set()).add(module)
    assert set(seen) <= {WAY_IN}, seen


def test_the_contract_forbids_every_other_module_of_jobs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["name"] == CONTRACT]
    assert contract["source_modules"] == ["hpcbox.clusters"]
    assert "ignore_imports" not in contract
    modules = {f"hpcbox.jobs.{m.name}" for m in pkgutil.iter_modules(hpcbox.jobs.__path__)}
    missing = modules - {WAY_IN} - set(contract["forbidden_modules"])
    assert not missing, f"add {sorted(missing)} to the contract {CONTRACT!r} in pyproject.toml"
    assert WAY_IN not in contract["forbidden_modules"]
