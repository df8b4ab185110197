"""``jupyter.hub: true`` on a SLURM cluster: JupyterHub on the login node, so a
notebook user's server and their batch jobs run as the same account, on the same
home."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.spec import parse_cluster_spec
from hpcbox.clusters.users import hash_password
from tests.integration.jupyter.conftest import login

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

CLUSTER = "jhubslurm"
PASSWORD = "batch-and-notebooks-1"


@pytest.fixture(scope="module")
def slurm_hub(jupyter_manager: ClusterManager) -> Iterator[str]:
    spec = parse_cluster_spec(
        {
            "name": CLUSTER,
            "workers": {"count": 1},
            "jupyter": {"hub": True},
            "users": [{"name": "carol", "password_hash": hash_password(PASSWORD)}],
        }
    )
    if any(r.name == CLUSTER for r in jupyter_manager.list_clusters()):
        jupyter_manager.down(CLUSTER, purge=True)
    try:
        jupyter_manager.up(spec)
        url = jupyter_manager.status(CLUSTER).hub_url
        assert url is not None
        yield url
    finally:
        jupyter_manager.down(CLUSTER, purge=True)


def test_notebooks_and_batch_jobs_share_the_account_and_home(
    slurm_hub: str, jupyter_manager: ClusterManager, browser: Browser
) -> None:
    status = jupyter_manager.status(CLUSTER).to_json()
    assert status["hub_url"] == slurm_hub
    assert status["nodes"][0]["name"] == "controller"
    page = login(browser, slurm_hub, "carol", PASSWORD)
    page.wait_for_url("**/user/carol/lab**", timeout=180_000)
    # carol's JupyterLab runs on the login node, as carol.
    server = jupyter_manager.exec(CLUSTER, ["pgrep", "-u", "carol", "-f", "jupyterhub-singleuser"])
    assert server.exit_code == 0, server.stderr
    # A batch job of hers writes to the same home her notebooks live in.
    submitted = jupyter_manager.exec(
        CLUSTER,
        ["sbatch", "--parsable", "--chdir=/home/carol", "--wrap", "hostname > from-batch.txt"],
        user="carol",
    )
    assert submitted.exit_code == 0, submitted.stderr
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = jupyter_manager.exec(CLUSTER, ["cat", "/home/carol/from-batch.txt"], user="carol")
        if seen.exit_code == 0 and seen.stdout.strip():
            break
        time.sleep(1)
    assert seen.stdout.strip() == b"worker1"
    listing = page.goto(slurm_hub + "user/carol/api/contents")
    assert listing is not None and listing.ok
    assert "from-batch.txt" in listing.text()
