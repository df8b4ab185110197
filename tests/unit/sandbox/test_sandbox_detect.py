"""Choosing the cgroup driver from mountinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.core.errors import UnavailableError
from hpcbox.infra.isolation.cgroup import parse_mountinfo
from hpcbox.jobs.backends.local.sandbox import CgroupV1Driver, CgroupV2Driver, detect_driver


def _line(n: int, mount: Path | str, fstype: str, superopts: str) -> str:
    return f"{n} 1 0:{n} / {mount} rw,nosuid - {fstype} {fstype} {superopts}"


def _write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "mountinfo"
    path.write_text("\n".join(["22 1 8:1 / / rw - ext4 /dev/sda1 rw", *lines]) + "\n")
    return str(path)


def test_parse_mountinfo_unescapes_and_skips_garbage() -> None:
    text = (
        "36 25 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:15 - cgroup cgroup "
        "rw,cpu,cpuacct\n"
        "garbage\n"
        r"40 25 0:35 / /mnt/with\040space rw - tmpfs tmpfs rw" + "\n"
    )
    entries = parse_mountinfo(text)
    assert len(entries) == 2
    assert entries[0].mount_point == "/sys/fs/cgroup/cpu,cpuacct"
    assert entries[0].fstype == "cgroup"
    assert entries[0].super_options == ("rw", "cpu", "cpuacct")
    assert entries[1].mount_point == "/mnt/with space"


def test_pure_v2_with_controllers(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    info = _write(tmp_path, [_line(30, root, "cgroup2", "rw,nsdelegate")])
    driver = detect_driver(str(root), mountinfo_path=info)
    assert isinstance(driver, CgroupV2Driver)
    assert driver.root == str(root)


def _v1_lines(root: Path, *, comount: bool) -> list[str]:
    lines = [_line(31, root / "memory", "cgroup", "rw,memory")]
    if comount:
        lines.append(_line(32, root / "cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"))
    else:
        lines.append(_line(32, root / "cpu", "cgroup", "rw,cpu"))
        lines.append(_line(33, root / "cpuacct", "cgroup", "rw,cpuacct"))
    lines.append(_line(34, root / "pids", "cgroup", "rw,pids"))
    lines.append(_line(35, root / "freezer", "cgroup", "rw,freezer"))
    lines.append(_line(36, root / "systemd", "cgroup", "rw,xattr,name=systemd"))
    return lines


@pytest.mark.parametrize("comount", [False, True])
def test_hybrid_picks_v1(tmp_path: Path, comount: bool) -> None:
    root = tmp_path / "cg"
    (root / "unified").mkdir(parents=True)
    # The hybrid unified mount has no controllers.
    (root / "unified" / "cgroup.controllers").write_text("")
    lines = [_line(30, root, "tmpfs", "rw,mode=755"), *_v1_lines(root, comount=comount)]
    lines.append(_line(37, root / "unified", "cgroup2", "rw"))
    driver = detect_driver(str(root), mountinfo_path=_write(tmp_path, lines))
    assert isinstance(driver, CgroupV1Driver)
    h = driver.hierarchies
    assert h["memory"] == str(root / "memory")
    if comount:
        assert h["cpu"] == h["cpuacct"] == str(root / "cpu,cpuacct")
    else:
        assert h["cpu"] == str(root / "cpu")
        assert h["cpuacct"] == str(root / "cpuacct")


def test_v2_without_controllers_falls_back_to_v1(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("io\n")
    lines = [_line(30, root, "cgroup2", "rw"), *_v1_lines(tmp_path / "v1", comount=True)]
    driver = detect_driver(str(root), mountinfo_path=_write(tmp_path, lines))
    assert isinstance(driver, CgroupV1Driver)


def test_mount_under_root_is_preferred(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    lines = [_line(29, tmp_path / "elsewhere", "cgroup", "rw,memory")]
    lines += _v1_lines(root, comount=True)
    driver = detect_driver(str(root), mountinfo_path=_write(tmp_path, lines))
    assert isinstance(driver, CgroupV1Driver)
    assert driver.hierarchies["memory"] == str(root / "memory")


def test_nothing_usable_says_what_is_missing(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io\n")
    lines = [_line(30, root, "cgroup2", "rw")]
    with pytest.raises(UnavailableError, match="memory, pids") as info:
        detect_driver(str(root), mountinfo_path=_write(tmp_path, lines))
    assert "freezer" in str(info.value)


def test_unreadable_mountinfo(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError):
        detect_driver(str(tmp_path), mountinfo_path=str(tmp_path / "absent"))
