"""Kind ``jupyter`` end to end: a student logs in with a real browser, runs a notebook
cell over every engine; passwords, private homes, status and scaling."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import pytest

from hpcbox.clusters.jupyter import HUB_PYTHON
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.render.jupyter import CLIENT_FILE
from hpcbox.infra.runtimes import ExecResult
from tests.integration.jupyter.conftest import USERS, Hub, hpcbox_cli, login, run_first_cell

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

#: One cell: map a function over every engine and print the hostnames it ran on.
CELL = (
    "import ipyparallel as ipp\n"
    "rc = ipp.Client()\n"
    "hosts = rc[:].map_sync(lambda _: __import__('socket').gethostname(), range(len(rc.ids)))\n"
    "print('ENGINE HOSTS:', ' '.join(sorted(set(hosts))))\n"
)


#: A client that connects once, then reports each change of its engine count until
#: it sees 3 (or 180 s pass).
WATCH_ENGINES = f"""
import time, ipyparallel
rc = ipyparallel.Client({CLIENT_FILE!r}, timeout=30)
last = len(rc.ids)
print(last, flush=True)
deadline = time.monotonic() + 180
while last != 3 and time.monotonic() < deadline:
    time.sleep(0.2)
    if len(rc.ids) != last:
        last = len(rc.ids)
        print(last, flush=True)
"""


def _notebook(source: str) -> bytes:
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": "hosts",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    ).encode()


def test_a_student_runs_a_cell_over_every_engine_in_a_browser(
    hub: Hub, jupyter_manager: ClusterManager, browser: Browser
) -> None:

    written = jupyter_manager.exec(
        hub.name, ["tee", "/home/alice/hostnames.ipynb"], user="alice", stdin=_notebook(CELL)
    )
    assert written.exit_code == 0, written.stderr
    page = login(browser, hub.url, "alice", USERS["alice"])
    # The hub spawns alice's JupyterLab and sends the browser there.
    page.wait_for_url("**/user/alice/lab**", timeout=180_000)
    text = run_first_cell(
        page,
        hub.url + "user/alice/lab/tree/hostnames.ipynb",
        "ENGINE HOSTS:",
        "jupyter-notebook.png",
    )
    hosts = text.split("ENGINE HOSTS:", 1)[1].split()
    assert hosts == ["worker1", "worker2"], text


def test_a_wrong_password_is_refused(hub: Hub, browser: Browser) -> None:
    page = login(browser, hub.url, "alice", "not-" + USERS["alice"])
    page.wait_for_load_state()
    assert "/hub/login" in page.url
    assert "/user/alice" not in page.url
    assert page.locator("text=Invalid username or password").count() == 1
    # Neither is a user the spec does not name let in, whatever the password.
    page = login(browser, hub.url, "root", "anything")
    page.wait_for_load_state()
    assert "/hub/login" in page.url


def test_one_user_cannot_read_another_users_home(hub: Hub, jupyter_manager: ClusterManager) -> None:
    secret = jupyter_manager.exec(
        hub.name, ["tee", "/home/alice/secret.txt"], user="alice", stdin=b"alice's notes\n"
    )
    assert secret.exit_code == 0
    for argv in (["ls", "/home/alice"], ["cat", "/home/alice/secret.txt"]):
        denied = jupyter_manager.exec(hub.name, argv, user="bob")
        assert denied.exit_code != 0
        assert b"Permission denied" in denied.stderr
    # The same on a worker: homes are one shared volume, private on every node.
    denied = jupyter_manager.exec(
        hub.name, ["cat", "/home/alice/secret.txt"], node="worker1", user="bob"
    )
    assert denied.exit_code != 0
    own = jupyter_manager.exec(hub.name, ["cat", "/home/alice/secret.txt"], user="alice")
    assert own.stdout == b"alice's notes\n"


def test_status_json_gives_the_hub_url_and_the_engines(
    hub: Hub, jupyter_manager: ClusterManager
) -> None:
    status = json.loads(
        hpcbox_cli(jupyter_manager.settings, "cluster", "status", hub.name, "--json").stdout
    )
    assert status["kind"] == "jupyter"
    assert status["hub_url"] == hub.url
    assert hub.url.startswith("http://127.0.0.1:")
    assert status["engines"] == 2
    assert {n["name"]: n["role"] for n in status["nodes"]} == {
        "hub": "hub",
        "worker1": "worker",
        "worker2": "worker",
    }


def test_scaling_2_to_3_is_seen_by_a_connected_client(
    hub: Hub, jupyter_manager: ClusterManager
) -> None:
    """A client connected before the scale-up counts 3 engines after it, with no
    reconnect: it waits up to 180 s for 3 while the cluster scales."""
    seen: list[ExecResult] = []
    client = threading.Thread(
        target=lambda: seen.append(
            jupyter_manager.exec(hub.name, [HUB_PYTHON, "-c", WATCH_ENGINES], user="ipyparallel")
        )
    )
    client.start()
    try:
        record = jupyter_manager.scale(hub.name, 3)
    finally:
        client.join(240)
    assert record.workers == 3
    assert seen and seen[0].exit_code == 0, seen
    counts = [int(n) for n in seen[0].stdout.decode().split()]
    # Connected while there were 2; the same client then saw 3.
    assert counts[0] == 2 and counts[-1] == 3, counts
    assert jupyter_manager.status(hub.name).engines == 3
    # And down again: the removed worker's engine leaves the controller's count.
    record = jupyter_manager.scale(hub.name, 2)
    assert record.workers == 2
    assert jupyter_manager.status(hub.name).engines == 2
