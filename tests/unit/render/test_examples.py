"""Every cluster spec under examples/clusters/ parses and renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.clusters.render.accounts import accounts
from hpcbox.clusters.render.helm import helm_values
from hpcbox.clusters.render.slurm import render_slurm_conf
from hpcbox.clusters.spec import ClusterSpec, MpiFlavour, parse_cluster_yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "clusters"
FILES = sorted(EXAMPLES.glob("*.yaml"))


def _load(name: str) -> ClusterSpec:
    return parse_cluster_yaml((EXAMPLES / name).read_text())


def test_the_promised_examples_exist() -> None:
    assert {p.name for p in FILES} >= {"demo.yaml", "accounting.yaml", "mpich.yaml"}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_parses_and_renders(path: Path) -> None:
    spec = parse_cluster_yaml(path.read_text())
    assert f"ClusterName={spec.name}\n" in render_slurm_conf(spec)
    accounts(spec)
    if not spec.jupyter.hub:  # a hub on the SLURM login node is in no Helm chart
        assert helm_values(spec)["name"] == spec.name


def test_examples_cover_what_they_claim() -> None:
    demo = _load("demo.yaml")
    assert (demo.workers.count, demo.mpi, demo.accounting) == (2, MpiFlavour.OPENMPI, False)
    assert len(demo.users) == 1 and len(demo.users[0].ssh_keys) == 1
    acct = _load("accounting.yaml")
    assert acct.accounting and len(acct.partitions) == 2
    assert any(p.max_time for p in acct.partitions)
    assert _load("mpich.yaml").mpi is MpiFlavour.MPICH
