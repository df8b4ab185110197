"""The v2 driver's kill paths on a real cgroup2 hierarchy.

On hybrid machines the cgroup2 mount carries no controllers, so limits cannot
be tested there, but membership, cgroup.kill, cgroup.freeze and removal can.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.jobs.backends.local.sandbox import CgroupV2Driver

pytestmark = pytest.mark.integration

TREE = "sh -c 'sleep 60 & sleep 60 & wait' & setsid sh -c '(sleep 60 &)' & sleep 60 & wait"


def _unified_root() -> str | None:
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(root, "cgroup.kill")) or os.path.exists(
            os.path.join(root, "cgroup.subtree_control")
        ):
            return root
    return None


@pytest.fixture
def group() -> Iterator[tuple[CgroupV2Driver, str]]:
    root = _unified_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    name = f"hpcbox-test-{uuid.uuid4().hex[:12]}"
    path = os.path.join(root, name)
    try:
        os.mkdir(path)
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup2 group at {root}: {exc}")
    if not os.path.exists(os.path.join(path, "cgroup.freeze")):
        os.rmdir(path)
        pytest.skip("kernel without cgroup.freeze")
    driver = CgroupV2Driver(root)
    yield driver, name
    driver.kill(name)
    driver.remove(name)


def _spawn_tree(driver: CgroupV2Driver, name: str) -> subprocess.Popen[bytes]:
    procs = driver.procs_files(name)[0]
    proc = subprocess.Popen(
        ["sh", "-c", 'echo $$ > "$1"; ' + TREE, "sh", procs], start_new_session=True
    )
    deadline = time.monotonic() + 10
    while len(driver.pids(name)) < 6:
        assert time.monotonic() < deadline, driver.pids(name)
        time.sleep(0.01)
    return proc


def test_cgroup_kill_empties_the_group(group: tuple[CgroupV2Driver, str]) -> None:
    driver, name = group
    if not os.path.exists(os.path.join(driver.root, name, "cgroup.kill")):
        pytest.skip("kernel without cgroup.kill")
    proc = _spawn_tree(driver, name)
    driver.kill(name)
    assert driver.pids(name) == set()
    assert proc.wait(timeout=10) == -9
    driver.remove(name)
    assert not driver.exists(name)


def test_freeze_fallback_empties_the_group(
    group: tuple[CgroupV2Driver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    driver, name = group
    real_exists = os.path.exists
    # The driver picks the fallback when the kernel has no cgroup.kill file.
    monkeypatch.setattr(
        "hpcbox.infra.isolation.cgroup.v2.os.path.exists",
        lambda p: False if str(p).endswith("cgroup.kill") else real_exists(p),
    )
    proc = _spawn_tree(driver, name)
    driver.kill(name)
    assert driver.pids(name) == set()
    assert proc.wait(timeout=10) == -9
    assert Path(driver.root, name, "cgroup.freeze").read_text().strip() == "0"
