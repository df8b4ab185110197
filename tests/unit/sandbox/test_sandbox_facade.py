"""Sandbox behaviour that needs neither bwrap nor real cgroups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError, PermanentError, UnavailableError
from hpcbox.jobs.backends.local.sandbox import (
    CgroupV1Driver,
    LaunchRequest,
    ResourceLimits,
    Sandbox,
)

from .conftest import GROUP


def test_missing_bwrap_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="bubblewrap"):
        Sandbox(bwrap=str(tmp_path / "no-bwrap")).check()


def test_missing_controllers_are_unavailable(tmp_path: Path) -> None:
    driver = CgroupV1Driver({"memory": str(tmp_path)})
    with pytest.raises(UnavailableError, match="cpu, cpuacct, pids, freezer"):
        Sandbox(driver=driver, bwrap="/bin/true").check()


def test_constructor_validation() -> None:
    with pytest.raises(InvalidInputError):
        Sandbox(parent_group="../escape")
    with pytest.raises(InvalidInputError):
        Sandbox(default_pids=0)
    Sandbox(default_pids=None)


class _UnjoinableDriver(CgroupV1Driver):
    """A fake v1 tree whose first cgroup.procs cannot be written."""

    def procs_files(self, group: str) -> list[str]:
        return ["/nonexistent/cgroup.procs", *super().procs_files(group)]


def test_trampoline_that_cannot_join_its_cgroup_fails_the_launch(
    v1_tree: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    driver = _UnjoinableDriver(v1_tree())
    req = LaunchRequest(
        run_id=GROUP.split("/")[1],
        argv=["true"],
        env={},
        workdir=str(tmp_path),
        stdout_path=str(tmp_path / "out"),
        stderr_path=str(tmp_path / "err"),
        status_path=str(tmp_path / "status"),
        limits=ResourceLimits(pids=3),
    )
    with pytest.raises(PermanentError, match="exit status 125"):
        Sandbox(driver=driver, bwrap="/bin/true").launch(req)
    assert "nonexistent" in (tmp_path / "err").read_text()
    # The limits reached the group, with room for the sandbox's own tasks.
    assert (Path(driver.hierarchies["pids"]) / GROUP / "pids.max").read_text() == "6"
