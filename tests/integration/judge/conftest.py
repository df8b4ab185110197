"""Real untrusted sandboxes on a real runtime root filesystem.

The root filesystem is built once per machine (about a minute) into a shared
cache, /var/tmp/hpcbox-test-judge, so every test session and every engineer's
tests reuse it; ``HPCBOX_JUDGE_CACHE`` points there for the other judge tests too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.settings import Settings
from hpcbox.judge.languages import load_registry
from hpcbox.judge.rootfs import ensure_rootfs
from hpcbox.judge.sandbox import UntrustedSandbox
from hpcbox.judge.service import JudgeService
from tests.conftest import require

JUDGE_CACHE = Path("/var/tmp/hpcbox-test-judge")


def _requirements() -> None:
    require(os.geteuid() == 0, "the untrusted sandbox needs root")
    require(shutil.which("bwrap") is not None, "bubblewrap missing: apt-get install bubblewrap")
    require(shutil.which("debootstrap") is not None, "apt-get install debootstrap")
    require(shutil.which("setpriv") is not None, "setpriv missing: apt-get install util-linux")


@pytest.fixture(scope="session")
def judge_rootfs() -> Path:
    _requirements()
    packages = [lang.package for lang in load_registry().values() if lang.package]
    return ensure_rootfs(JUDGE_CACHE, packages, progress=print)


#: (fork_server, compiled_fork_server) of each way of starting boxes.
_BOX_KINDS = {
    "fork-server": (True, True),
    "compiled-fork-server": (False, True),
    "bwrap-per-box": (False, False),
}


@pytest.fixture(scope="module", params=list(_BOX_KINDS))
def sandbox(judge_rootfs: Path, request: pytest.FixtureRequest) -> Iterator[UntrustedSandbox]:
    """Every way of starting boxes: forked from the Python fork-server (Python
    runs), forked from the compiled one (every other program), and one bwrap per
    box (the fallback); every sandbox test runs against each."""
    fork_server, compiled = _BOX_KINDS[request.param]
    factory = UntrustedSandbox(judge_rootfs, fork_server=fork_server, compiled_fork_server=compiled)
    factory.check()
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def judge(judge_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JudgeService]:
    home = tmp_path_factory.mktemp("judge-home")
    service = JudgeService(Settings(home=home), pool_size=1, rootfs_cache=JUDGE_CACHE)
    yield service
    service.close()
