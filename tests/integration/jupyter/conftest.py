"""A real ``jupyter`` cluster: JupyterHub + configurable-http-proxy + ipcontroller on a
front end, ipengines on two workers, brought up once for the module with the CLI
shortcut (``hpcbox cluster up --kind jupyter --user NAME:PASSWORD``).

The jupyter image is built here from scratch when missing (on top of the SLURM
login image, itself on the base), and the build is timed into test-artifacts/.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hpcbox.clusters.images import ImageBuilder
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from tests.conftest import require
from tests.integration.cluster.conftest import SESSION_HOME, require_podman
from tests.integration.helpers import run_cli

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: Unique to these tests (others' clusters share the podman service).
CLUSTER = "jhub"
USERS = {"alice": "wonderland-7", "bob": "builder-42"}
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
#: The host's CA bundle: pip and npm inside the image build trust it (needed where
#: outbound TLS is intercepted; harmless elsewhere). None where there is none.
HOST_CA = next((p for p in ("/etc/ssl/certs/ca-certificates.crt",) if Path(p).is_file()), None)


@dataclass(frozen=True)
class Hub:
    name: str
    url: str
    status: dict[str, object]


def hpcbox_cli(
    settings: Settings, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_cli(settings.to_env(), *args, check=check, timeout=900)


@pytest.fixture(scope="module")
def jupyter_settings() -> Settings:
    require_podman()
    SESSION_HOME.mkdir(parents=True, exist_ok=True)
    return Settings(home=SESSION_HOME)


@pytest.fixture(scope="module")
def jupyter_manager(jupyter_settings: Settings) -> ClusterManager:
    store = ClusterStore(open_engine(jupyter_settings))
    return ClusterManager(jupyter_settings, store=store, progress=print, host_ca=HOST_CA)


@pytest.fixture(scope="module")
def hub(jupyter_settings: Settings, jupyter_manager: ClusterManager) -> Iterator[Hub]:
    """The cluster, up; taken down (purged) after the module."""
    builder = ImageBuilder(
        jupyter_manager.runtime(),
        state_dir=jupyter_settings.home / "images",
        progress=print,
        host_ca=HOST_CA,
    )
    missing = builder.missing(["base", "slurm-controller", "jupyter"])
    started = time.monotonic()
    builder.build(["jupyter"])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "jupyter-image-build.txt").write_text(
        f"built {missing or 'nothing (all present)'} in {time.monotonic() - started:.1f} s\n"
    )
    hpcbox_cli(jupyter_settings, "cluster", "down", CLUSTER, "--purge", check=False)
    args = ["cluster", "up", "--kind", "jupyter", "--name", CLUSTER, "--workers", "2"]
    for user, password in USERS.items():
        args += ["--user", f"{user}:{password}"]
    if HOST_CA is not None:
        args += ["--host-ca", HOST_CA]
    up = hpcbox_cli(jupyter_settings, *args, "--json")
    status = json.loads(up.stdout)
    try:
        yield Hub(CLUSTER, str(status["hub_url"]), status)
    finally:
        jupyter_manager.down(CLUSTER, purge=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require(Path(CHROMIUM).exists(), "no chromium (apt-get install chromium)")
    require(
        importlib.util.find_spec("playwright") is not None,
        "no playwright (pip install -e '.[dev]')",
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def login(browser: Browser, hub_url: str, user: str, password: str) -> Page:
    """A fresh browser context (no cookies) that has submitted the hub's login form."""
    page = browser.new_context().new_page()
    page.set_default_timeout(120_000)
    page.goto(hub_url + "hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    return page


def run_first_cell(page: Page, notebook_url: str, marker: str, screenshot: str) -> str:
    """Open the notebook, run its first cell once the kernel is connected, and return
    the text of the output that shows ``marker``; a screenshot goes to ARTIFACTS
    either way (the cell's output, or what went wrong instead)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(notebook_url)
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    editor.wait_for()
    # Run once the kernel is connected (the status bar says so).
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    output = page.locator(".jp-OutputArea-output", has_text=marker).first
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        # A key press that lands while the kernel is still connecting is dropped
        # by JupyterLab (the cell moves on, unrun): press again until it ran.
        for attempt in range(3):
            editor.click()
            page.keyboard.press("Shift+Enter")
            try:
                output.wait_for(timeout=60_000)
                break
            except PlaywrightTimeout:
                if attempt == 2:
                    raise
    finally:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    return output.inner_text()
