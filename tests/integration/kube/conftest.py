"""A real Kubernetes for these tests: the kubeconfig ``$HPCBOX_TEST_KUBECONFIG`` names
(``scripts/kube.sh`` starts one and prints it). Without it every test here FAILS (CI
sets it): a skipped end-to-end test would pass for a cluster that was never tried.

The images are hpcbox's own, built here (``hpcbox images build``) and copied into the
cluster with ``scripts/kube.sh load`` (hpcbox never loads images itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from hpcbox.clusters.images.roles import version_tag
from hpcbox.core.settings import Settings
from hpcbox.infra.kube import KubeContext, Kubectl, find_tool

ROOT = Path(__file__).resolve().parents[3]
# Read at import: the autouse fixture in tests/conftest.py clears HPCBOX_* variables.
KUBECONFIG = os.environ.get("HPCBOX_TEST_KUBECONFIG", "")
SLURM_ROLES = ("slurm-controller", "slurm-worker", "slurmdbd", "mariadb")


def require_cluster() -> str:
    if not KUBECONFIG or not Path(KUBECONFIG).is_file():
        pytest.fail(
            "HPCBOX_TEST_KUBECONFIG is not set to a kubeconfig file: start a Kubernetes "
            "with `scripts/kube.sh` (it prints the kubeconfig's path) and export "
            "HPCBOX_TEST_KUBECONFIG=<that path>"
        )
    return KUBECONFIG


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    return require_cluster()


@pytest.fixture(scope="session")
def slurm_images(kubeconfig: str) -> list[str]:
    """The SLURM chart's images, built and loaded into the cluster once per session."""
    tags = [version_tag(role) for role in SLURM_ROLES]
    build = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", "images", "build", *[f"--role={r}" for r in SLURM_ROLES]],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    load = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kube.sh"), "load", *tags],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert load.returncode == 0, f"scripts/kube.sh load failed:\n{load.stdout}\n{load.stderr}"
    return tags


@pytest.fixture
def kube_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(find_tool("kubectl", None), KubeContext(kubeconfig))


def env_for(settings: Settings, kubeconfig: str) -> Mapping[str, str]:
    return {**os.environ, **settings.to_env(), "KUBECONFIG": kubeconfig}


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace of the test's own (helm creates it; one release per namespace)."""
    short = request.node.name.split("[")[0].removeprefix("test_")[:20]
    return ("hpcbox-it-" + short.replace("_", "-")).rstrip("-")
