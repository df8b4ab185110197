"""Golden-file tests: rendered SLURM configuration and MPI hostfiles, byte for byte.

Each case renders one file from a spec in :mod:`tests.unit.render.specs` and
compares it with ``tests/unit/render/golden/<case>.<file>``. After an intended
change to a renderer, rewrite the golden files and review the diff::

    HPCBOX_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/render/test_golden.py

A test that rewrites a file still fails once, so that a rewrite is never
mistaken for a pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.clusters.render.layout import worker_name
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.render.slurm import render_cgroup_conf, render_slurm_conf, render_slurmdbd_conf
from hpcbox.clusters.spec import ClusterSpec

from .specs import SPECS

GOLDEN = Path(__file__).parent / "golden"
# Read at import time: the suite's autouse fixture removes HPCBOX_* variables
# from each test's environment.
UPDATE = os.environ.get("HPCBOX_UPDATE_GOLDEN") == "1"
# A fixed stand-in; real passwords are generated per cluster and never stored.
DB_PASSWORD = "golden-test-password"


def _hostfile(spec: ClusterSpec) -> str:
    workers = [worker_name(i) for i in range(1, spec.workers.count + 1)]
    return render_hostfile(workers, slots=spec.workers.cpus, flavour=spec.mpi)


RENDERERS: dict[str, Callable[[ClusterSpec], str]] = {
    "slurm.conf": render_slurm_conf,
    "cgroup.conf": render_cgroup_conf,
    "slurmdbd.conf": lambda spec: render_slurmdbd_conf(spec, db_password=DB_PASSWORD),
    "hostfile": _hostfile,
}
CASES = [
    ("basic", "slurm.conf"),
    ("basic", "cgroup.conf"),
    ("basic", "hostfile"),
    ("accounting", "slurm.conf"),
    ("accounting", "slurmdbd.conf"),
    ("accounting", "hostfile"),
    ("mpich", "slurm.conf"),
    ("mpich", "hostfile"),
]


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with golden file ``name`` (or rewrite it when updating)."""
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.read_text() if path.exists() else None
        path.write_text(text)
        if old != text:
            pytest.fail(f"rewrote {path}; review the diff and run again")
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; create it with HPCBOX_UPDATE_GOLDEN=1")
    assert text == path.read_text(), f"{name} differs from its golden file"


@pytest.mark.parametrize(("case", "file"), CASES, ids=[f"{c}.{f}" for c, f in CASES])
def test_rendered_file_matches_golden(case: str, file: str) -> None:
    check_golden(f"{case}.{file}", RENDERERS[file](SPECS[case]()))


def test_every_golden_file_has_a_case() -> None:
    """A golden file no case produces would go stale unnoticed."""
    expected = {f"{case}.{file}" for case, file in CASES}
    assert {p.name for p in GOLDEN.iterdir()} == expected
