"""cgroup v1 driver against fake hierarchies."""

from __future__ import annotations

import errno
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.core.errors import ConflictError, InvalidInputError, NotFoundError, UnavailableError
from hpcbox.jobs.backends.local.sandbox import CgroupV1Driver, ResourceLimits

from .conftest import GROUP, V1_FILES, FakeKiller


def _read(hierarchies: dict[str, str], controller: str, name: str) -> str:
    return (Path(hierarchies[controller]) / GROUP / name).read_text().strip()


def _no_sleep(_: float) -> None:
    return None


def test_limits_are_written(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    CgroupV1Driver(h).create(GROUP, ResourceLimits(cpus=1.5, memory_bytes=50 << 20, pids=64))
    assert _read(h, "memory", "memory.limit_in_bytes") == str(50 << 20)
    assert _read(h, "memory", "memory.memsw.limit_in_bytes") == str(50 << 20)
    assert _read(h, "cpu", "cpu.cfs_period_us") == "100000"
    assert _read(h, "cpu", "cpu.cfs_quota_us") == "150000"
    assert _read(h, "pids", "pids.max") == "64"


def test_no_limits_write_unlimited(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    (Path(h["memory"]) / GROUP / "memory.limit_in_bytes").write_text("1234")
    CgroupV1Driver(h).create(GROUP, ResourceLimits())
    assert _read(h, "memory", "memory.limit_in_bytes") == "-1"
    assert _read(h, "memory", "memory.memsw.limit_in_bytes") == "-1"
    assert _read(h, "cpu", "cpu.cfs_quota_us") == "-1"
    assert _read(h, "pids", "pids.max") == "max"


def test_memsw_absent_is_skipped(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    (Path(h["memory"]) / GROUP / "memory.memsw.limit_in_bytes").unlink()
    CgroupV1Driver(h).create(GROUP, ResourceLimits(memory_bytes=4096 * 10))
    assert _read(h, "memory", "memory.limit_in_bytes") == "40960"
    assert not (Path(h["memory"]) / GROUP / "memory.memsw.limit_in_bytes").exists()


def test_tiny_cpu_quota_is_clamped_to_kernel_minimum(
    v1_tree: Callable[..., dict[str, str]],
) -> None:
    h = v1_tree()
    CgroupV1Driver(h).create(GROUP, ResourceLimits(cpus=0.01))
    assert _read(h, "cpu", "cpu.cfs_quota_us") == "1000"


def test_fresh_group_is_created(tmp_path: Path) -> None:
    h = {c: str(tmp_path / c) for c in ("memory", "cpu", "cpuacct", "pids", "freezer")}
    driver = CgroupV1Driver(h)
    driver.check("hpcbox")
    assert all((tmp_path / c / "hpcbox").is_dir() for c in h)
    # Plain directories lack the kernel's control files: the write fails loudly
    # and the half-made group is removed again.
    with pytest.raises(Exception, match="memory"):
        driver.create(GROUP, ResourceLimits())
    assert not driver.exists(GROUP)


def test_comounted_cpu_cpuacct_is_one_hierarchy(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree(comount=True)
    driver = CgroupV1Driver(h)
    files = driver.procs_files(GROUP)
    assert len(files) == 4
    assert sum("cpu,cpuacct" in f for f in files) == 1
    driver.create(GROUP, ResourceLimits(cpus=2))
    assert _read(h, "cpu", "cpu.cfs_quota_us") == "200000"
    (Path(h["cpuacct"]) / GROUP / "cpuacct.usage").write_text("2500000000\n")
    assert driver.stats(GROUP).cpu_time_s == pytest.approx(2.5)


def test_stats_are_parsed(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    (Path(h["cpuacct"]) / GROUP / "cpuacct.usage").write_text("1500000000\n")
    (Path(h["memory"]) / GROUP / "memory.max_usage_in_bytes").write_text("7340032\n")
    stats = CgroupV1Driver(h).stats(GROUP)
    assert stats.cpu_time_s == pytest.approx(1.5)
    assert stats.peak_memory_bytes == 7340032
    assert stats.oom_killed is False


def test_oom_kill_count_means_oom(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    mem = Path(h["memory"]) / GROUP
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    # failcnt alone does not count when the kernel reports oom_kill.
    (mem / "memory.failcnt").write_text("0\n")
    assert CgroupV1Driver(h).stats(GROUP).oom_killed is True
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (mem / "memory.failcnt").write_text("5\n")
    assert CgroupV1Driver(h).stats(GROUP).oom_killed is False


def test_old_kernels_fall_back_to_failcnt(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    mem = Path(h["memory"]) / GROUP
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (mem / "memory.failcnt").write_text("3\n")
    assert CgroupV1Driver(h).stats(GROUP).oom_killed is True


def test_stats_of_missing_group(tmp_path: Path) -> None:
    h = {c: str(tmp_path / c) for c in ("memory", "cpu", "cpuacct", "pids", "freezer")}
    with pytest.raises(NotFoundError):
        CgroupV1Driver(h).stats(GROUP)


def test_pids_are_the_union_of_hierarchies(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    (Path(h["memory"]) / GROUP / "cgroup.procs").write_text("10\n11\n")
    (Path(h["pids"]) / GROUP / "cgroup.procs").write_text("11\n12\n")
    assert CgroupV1Driver(h).pids(GROUP) == {10, 11, 12}


def test_kill_freezes_kills_and_thaws(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    procs = [Path(m) / GROUP / "cgroup.procs" for m in sorted(set(h.values()))]
    for f in procs:
        f.write_text("100\n200\n")
    state = Path(h["freezer"]) / GROUP / "freezer.state"
    killer = FakeKiller(procs, watch=state)
    driver = CgroupV1Driver(h, kill=killer, sleep=_no_sleep)
    driver.kill(GROUP)
    assert sorted(c[0] for c in killer.calls) == [100, 200]
    assert all(sig == signal.SIGKILL and seen == "FROZEN" for _, sig, seen in killer.calls)
    assert state.read_text().strip() == "THAWED"
    assert driver.pids(GROUP) == set()


def test_kill_of_a_group_removed_meanwhile_ends(
    v1_tree: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel answers ENODEV for a control file of a group being removed (the
    job ended while it was killed): that group has nothing left to kill."""
    from hpcbox.infra.isolation.cgroup import _fs, v1

    h = v1_tree()
    procs = [Path(m) / GROUP / "cgroup.procs" for m in sorted(set(h.values()))]
    for f in procs:
        f.write_text("100\n")
    killer = FakeKiller(procs)

    def removed(path: str) -> str:
        if path.endswith("freezer.state"):
            raise OSError(errno.ENODEV, "No such device")
        return real(path)

    real = _fs.read_text
    monkeypatch.setattr(v1, "read_text", removed)
    CgroupV1Driver(h, kill=killer, sleep=_no_sleep).kill(GROUP)
    assert [c[0] for c in killer.calls] == [100]
    assert _fs.read_pids("/nonexistent/cgroup.procs") == set()


def test_kill_of_empty_or_missing_group_is_a_noop(
    v1_tree: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    h = v1_tree()
    killer = FakeKiller([])
    CgroupV1Driver(h, kill=killer).kill(GROUP)
    CgroupV1Driver(h, kill=killer).kill("hpcbox/absent")
    assert killer.calls == []
    state = Path(h["freezer"]) / GROUP / "freezer.state"
    assert state.read_text().strip() == "THAWED"


def test_existing_empty_group_is_reused_but_populated_is_refused(
    v1_tree: Callable[..., dict[str, str]],
) -> None:
    h = v1_tree()
    driver = CgroupV1Driver(h)
    driver.create(GROUP, ResourceLimits(pids=5))
    (Path(h["pids"]) / GROUP / "cgroup.procs").write_text("42\n")
    with pytest.raises(ConflictError):
        driver.create(GROUP, ResourceLimits(pids=6))
    assert _read(h, "pids", "pids.max") == "5"


def test_name_of_a_control_file_is_refused(v1_tree: Callable[..., dict[str, str]]) -> None:
    h = v1_tree()
    (Path(h["memory"]) / "hpcbox" / "tasks").write_text("")
    with pytest.raises(InvalidInputError):
        CgroupV1Driver(h).create("hpcbox/tasks", ResourceLimits())


def test_remove_is_idempotent(tmp_path: Path) -> None:
    h = {c: str(tmp_path / c) for c in ("memory", "cpu", "cpuacct", "pids", "freezer")}
    for m in h.values():
        (Path(m) / GROUP).mkdir(parents=True)
    driver = CgroupV1Driver(h)
    assert driver.exists(GROUP)
    driver.remove(GROUP)
    assert not driver.exists(GROUP)
    driver.remove(GROUP)


def test_check_names_missing_controllers(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="pids, freezer"):
        CgroupV1Driver({c: str(tmp_path) for c in ("memory", "cpu", "cpuacct")}).check("hpcbox")


def test_unsafe_group_paths_are_refused(v1_tree: Callable[..., dict[str, str]]) -> None:
    driver = CgroupV1Driver(v1_tree())
    for bad in ("../escape", "hpcbox/..", "/abs", "a//b", "a/b c"):
        with pytest.raises(InvalidInputError):
            driver.procs_files(bad)


def test_a_parent_removed_since_is_made_again(
    v1_tree: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent is looked at once, not before every group; when someone removed
    it meanwhile, the group's mkdir fails and the parent is made again."""
    h = v1_tree()
    real_mkdir = os.mkdir

    def kernel_mkdir(path: str, mode: int = 0o777) -> None:
        # As cgroupfs does: a new group comes with its controller's files.
        real_mkdir(path, mode)
        for controller, mount in h.items():
            if str(path).startswith(mount + "/"):
                (Path(path) / "cgroup.procs").write_text("")
                for name, content in V1_FILES[controller].items():
                    (Path(path) / name).write_text(content)

    monkeypatch.setattr(os, "mkdir", kernel_mkdir)
    driver = CgroupV1Driver(h)
    driver.create(GROUP, ResourceLimits(pids=8))
    for mount in set(h.values()):
        shutil.rmtree(Path(mount) / GROUP.split("/")[0])
    driver.create("hpcbox/run2", ResourceLimits(pids=9))
    assert (Path(h["pids"]) / "hpcbox/run2/pids.max").read_text().strip() == "9"
