"""cgroup v2 driver against a fake unified hierarchy."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.core.errors import ConflictError, UnavailableError
from hpcbox.jobs.backends.local.sandbox import CgroupV2Driver, ResourceLimits

from .conftest import GROUP, FakeKiller


def _no_sleep(_: float) -> None:
    return None


def test_limits_are_written(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    CgroupV2Driver(str(d.parent.parent)).create(
        GROUP, ResourceLimits(cpus=1.5, memory_bytes=50 << 20, pids=64)
    )
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert (d / "memory.max").read_text() == str(50 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "64"


def test_no_limits_write_max(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    (d / "memory.max").write_text("1234")
    CgroupV2Driver(str(d.parent.parent)).create(GROUP, ResourceLimits())
    assert (d / "cpu.max").read_text() == "max 100000"
    assert (d / "memory.max").read_text() == "max"
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "pids.max").read_text() == "max"


def test_missing_swap_file_is_skipped(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree(omit=("memory.swap.max",))
    CgroupV2Driver(str(d.parent.parent)).create(GROUP, ResourceLimits(memory_bytes=1 << 20))
    assert not (d / "memory.swap.max").exists()


def test_controllers_are_enabled_down_to_the_parent(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    root = d.parent.parent
    CgroupV2Driver(str(root)).create(GROUP, ResourceLimits())
    for level in (root, root / "hpcbox"):
        assert (level / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"


def test_enabled_controllers_are_not_rewritten(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    root = d.parent.parent
    (root / "cgroup.subtree_control").write_text("cpu io memory pids\n")
    (root / "hpcbox" / "cgroup.subtree_control").write_text("memory\n")
    CgroupV2Driver(str(root)).create(GROUP, ResourceLimits())
    assert (root / "cgroup.subtree_control").read_text() == "cpu io memory pids\n"
    assert (root / "hpcbox" / "cgroup.subtree_control").read_text() == "+cpu +pids"


def test_check_names_missing_controllers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset io\n")
    with pytest.raises(UnavailableError, match="cpu, memory, pids"):
        CgroupV2Driver(str(tmp_path)).check("hpcbox")


def test_stats_are_parsed(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    (d / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (d / "memory.peak").write_text("7340032\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    stats = CgroupV2Driver(str(d.parent.parent)).stats(GROUP)
    assert stats.cpu_time_s == pytest.approx(2.5)
    assert stats.peak_memory_bytes == 7340032
    assert stats.oom_killed is True


def test_peak_falls_back_to_sampled_current(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree(omit=("memory.peak",))
    driver = CgroupV2Driver(str(d.parent.parent))
    driver.create(GROUP, ResourceLimits())
    assert driver.needs_sampling
    for current in ("1000", "9000", "3000"):
        (d / "memory.current").write_text(current)
        driver.sample(GROUP)
    (d / "memory.current").write_text("0")
    assert driver.stats(GROUP).peak_memory_bytes == 9000


def test_peak_file_needs_no_sampling(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    driver = CgroupV2Driver(str(d.parent.parent))
    driver.create(GROUP, ResourceLimits())
    assert not driver.needs_sampling


def test_kill_uses_cgroup_kill(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    procs = d / "cgroup.procs"
    procs.write_text("100\n200\n")

    def sleep(_: float) -> None:
        # The kernel empties the group shortly after cgroup.kill.
        procs.write_text("")

    killer = FakeKiller([procs])
    CgroupV2Driver(str(d.parent.parent), kill=killer, sleep=sleep).kill(GROUP)
    assert (d / "cgroup.kill").read_text() == "1"
    assert killer.calls == []


def test_kill_without_cgroup_kill_freezes(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree(omit=("cgroup.kill",))
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    procs = d / "cgroup.procs"
    procs.write_text("100\n200\n")
    killer = FakeKiller([procs], watch=d / "cgroup.freeze")
    CgroupV2Driver(str(d.parent.parent), kill=killer, sleep=_no_sleep).kill(GROUP)
    assert sorted(c[0] for c in killer.calls) == [100, 200]
    assert all(sig == signal.SIGKILL and seen == "1" for _, sig, seen in killer.calls)
    assert (d / "cgroup.freeze").read_text() == "0"


def test_kill_of_empty_group_writes_nothing(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    CgroupV2Driver(str(d.parent.parent)).kill(GROUP)
    assert (d / "cgroup.kill").read_text() == ""


def test_populated_group_is_refused(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    (d / "cgroup.procs").write_text("7\n")
    with pytest.raises(ConflictError):
        CgroupV2Driver(str(d.parent.parent)).create(GROUP, ResourceLimits())


def test_procs_files_and_remove(tmp_path: Path) -> None:
    (tmp_path / "hpcbox" / "run1").mkdir(parents=True)
    driver = CgroupV2Driver(str(tmp_path))
    assert driver.procs_files(GROUP) == [str(tmp_path / "hpcbox" / "run1" / "cgroup.procs")]
    driver.remove(GROUP)
    assert not driver.exists(GROUP)
    driver.remove(GROUP)
