"""hpcbox-jupyter on a real Kubernetes through ``hpcbox cluster up --runtime kubernetes``
(issue 14, items 3 and 4): every pod Ready; ``cluster status`` gives the hub's URL (a
NodePort on the node's address) and the engines; Chromium logs in as a user the spec
declares and runs a notebook cell whose ``ipyparallel.Client()`` reaches every
engine, on every engine pod; scaling adds an engine pod whose engines the controller
counts; ``down`` leaves nothing of the release.

Needs ``$HPCBOX_TEST_KUBECONFIG`` (see conftest.py), Chromium and Playwright: fails
without them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from hpcbox.clusters.images.roles import version_tag
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.store import ClusterStore
from hpcbox.clusters.users import user_from_option
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.kube import Helm, KubeContext, Kubectl, find_tool
from tests.integration.jupyter.conftest import CHROMIUM, login, run_first_cell

from .conftest import ROOT, env_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

NAME = "kjupyter"
INSTANCE = f"app.kubernetes.io/instance={NAME}"
USER, PASSWORD = "alice", "wonderland-7"
WORKERS, ENGINES_PER_WORKER = 2, 2
#: Every kind of object the chart makes (the claim too: the spec does not keep homes).
KINDS = ("pods", "deployments", "replicasets", "services", "configmaps", "secrets", "pvc")
#: One cell: the default client (no argument, as a student writes it), then the host
#: of every engine.
CELL = (
    "import ipyparallel as ipp, socket\n"
    "rc = ipp.Client()\n"
    "hosts = rc[:].apply_sync(socket.gethostname)\n"
    "print('ENGINES:', len(rc.ids), 'HOSTS:', ' '.join(sorted(hosts)))\n"
)


def hpcbox(settings: Settings, kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", *args],
        env=dict(env_for(settings, kubeconfig)), capture_output=True, text=True,
        timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def notebook(source: str) -> bytes:
    cell: dict[str, object] = {
        "cell_type": "code",
        "execution_count": None,
        "id": "engines",
        "metadata": {},
        "outputs": [],
        "source": source,
    }
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return json.dumps(
        {"cells": [cell], "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    ).encode()


@pytest.fixture(scope="module")
def jupyter_image(kubeconfig: str) -> str:
    """The chart's image, built (if missing) and loaded into the cluster once."""
    tag = version_tag("jupyter")
    build = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", "images", "build", "--role=jupyter"],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    load = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kube.sh"), "load", tag],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert load.returncode == 0, f"scripts/kube.sh load failed:\n{load.stdout}\n{load.stderr}"
    return tag


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("no playwright (uv sync installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def cluster(
    kube_settings: Settings, kubeconfig: str, jupyter_image: str, namespace: str, tmp_path: Path
) -> Iterator[tuple[Settings, dict[str, object]]]:
    spec = {
        "name": NAME,
        "kind": "jupyter",
        "runtime": "kubernetes",
        "workers": {"count": WORKERS, "cpus": 1, "memory": "512M"},
        "jupyter": {"engines_per_worker": ENGINES_PER_WORKER},
        "users": [{**user_from_option(f"{USER}:{PASSWORD}"), "uid": 2000}],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    try:
        up = hpcbox(
            kube_settings, kubeconfig, "cluster", "up", "-f", str(path), "--namespace", namespace,
            "--no-keep-homes", "--json",
        )  # fmt: skip
        yield kube_settings, json.loads(up.stdout)
    finally:
        subprocess.run(
            [sys.executable, "-m", "hpcbox.cli.main", "cluster", "down", NAME, "--purge"],
            env=dict(env_for(kube_settings, kubeconfig)), capture_output=True, timeout=900,
            check=False,
        )  # fmt: skip


def test_jupyter_chart_end_to_end(
    cluster: tuple[Settings, dict[str, object]],
    kubeconfig: str,
    kubectl: Kubectl,
    namespace: str,
    browser: Browser,
) -> None:

    settings, status = cluster
    engines = WORKERS * ENGINES_PER_WORKER
    assert status["state"] == "RUNNING" and status["runtime"] == "kubernetes"
    # Every pod Ready: the hub and the engine pods; the controller counts every engine.
    pods = kubectl.get("pods", namespace, INSTANCE)
    assert len(pods) == 1 + WORKERS
    engine_pods = {
        p["metadata"]["name"]
        for p in pods
        if p["metadata"]["labels"]["app.kubernetes.io/component"] == "engines"
    }
    assert len(engine_pods) == WORKERS
    nodes = status["nodes"]
    assert isinstance(nodes, list)
    assert all(n["container_status"] == "Ready" for n in nodes), nodes
    assert status["engines"] == engines
    hub_url = str(status["hub_url"])
    assert hub_url.startswith("http://") and hub_url.endswith("/"), hub_url

    # A declared user logs in with Chromium and runs the cell in a notebook.
    store = ClusterStore(open_engine(settings))
    manager = ClusterManager(settings, store=store)
    written = manager.exec(
        NAME, ["tee", f"/home/{USER}/engines.ipynb"], user=USER, stdin=notebook(CELL)
    )
    assert written.exit_code == 0, written.stderr
    page = login(browser, hub_url, USER, PASSWORD)
    page.wait_for_url(f"**/user/{USER}/lab**", timeout=180_000)
    text = run_first_cell(
        page,
        hub_url + f"user/{USER}/lab/tree/engines.ipynb",
        "ENGINES:",
        "kube-jupyter-notebook.png",
    )
    count, hosts = text.split("ENGINES:", 1)[1].split("HOSTS:", 1)
    assert int(count) == engines, text
    # Every engine pod, each with its engines_per_worker engines.
    assert Counter(hosts.split()) == dict.fromkeys(engine_pods, ENGINES_PER_WORKER), text

    # Scaling: a third engine pod, whose engines the controller counts when it returns.
    record = manager.scale(NAME, WORKERS + 1)
    assert record.workers == WORKERS + 1
    assert len(kubectl.get("pods", namespace, INSTANCE)) == 2 + WORKERS
    assert manager.status(NAME).engines == (WORKERS + 1) * ENGINES_PER_WORKER

    # down --purge: nothing of the release is left, the homes claim included.
    hpcbox(settings, kubeconfig, "cluster", "down", NAME, "--purge")
    for kind in KINDS:
        assert kubectl.get(kind, namespace, INSTANCE) == [], kind
    assert kubectl.get("ingresses", namespace, INSTANCE) == []
    helm = Helm(find_tool("helm", None), KubeContext(kubeconfig))
    assert helm.get_values(NAME, namespace) is None  # no release
