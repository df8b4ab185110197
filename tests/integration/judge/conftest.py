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
from hpcbox.judge.service import JudgeService
from hpcbox.sandbox.untrusted import UntrustedSandbox
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


@pytest.fixture(scope="module", params=[True, False], ids=["fork-server", "bwrap-per-box"])
def sandbox(judge_rootfs: Path, request: pytest.FixtureRequest) -> Iterator[UntrustedSandbox]:
    """Both ways of starting boxes: forked from the fork-server (the default) and
    one bwrap per box (the fallback); every sandbox test runs against each."""
    factory = UntrustedSandbox(judge_rootfs, fork_server=request.param)
    factory.check()
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def judge(judge_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JudgeService]:
    home = tmp_path_factory.mktemp("judge-home")
    service = JudgeService(Settings(home=home), pool_size=1, rootfs_cache=JUDGE_CACHE)
    yield service
    service.close()
