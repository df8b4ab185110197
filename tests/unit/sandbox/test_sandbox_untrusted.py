"""Profile "untrusted", parts testable without a sandbox: argv, seccomp, safe file
access, and the cgroup limit update used by warm boxes (on fake trees)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.infra.isolation.cgroup import CgroupV1Driver, CgroupV2Driver
from hpcbox.infra.isolation.limits import ResourceLimits
from hpcbox.judge.sandbox import safefs
from hpcbox.judge.sandbox.argv import JOIN_SCRIPT, BoxCommand, build_argv
from hpcbox.judge.sandbox.seccomp import compile_filter
from tests.unit.sandbox.conftest import GROUP


def _cmd(**kw: object) -> BoxCommand:
    base: dict[str, object] = {
        "sh": "/bin/sh",
        "setpriv": "/usr/bin/setpriv",
        "bwrap": "/usr/bin/bwrap",
        "host_uid": 65534,
        "rootfs": "/var/judge/rootfs; rm -rf /",
        "box_bytes": 1 << 20,
        "tmp_bytes": 1 << 19,
        "procs_files": ["/sys/fs/cgroup/memory/g/cgroup.procs"],
        "seccomp_fd": 10,
        "info_fd": 11,
        "request_fd": 3,
        "result_fd": 4,
        "stdout_fd": 5,
        "stderr_fd": 6,
        "supervisor_source": "print(1)",
    }
    base.update(kw)
    return BoxCommand(**base)  # type: ignore[arg-type]


def test_argv_isolates_everything_and_passes_values_verbatim() -> None:
    argv = build_argv(_cmd())
    assert argv[:3] == ["/bin/sh", "-c", JOIN_SCRIPT]
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc"):
        assert flag in argv
    for flag in ("--unshare-uts", "--disable-userns", "--as-pid-1", "--new-session"):
        assert flag in argv
    # The hostile-looking rootfs path is one argv element, never parsed by a shell.
    i = argv.index("--ro-bind")
    assert argv[i + 1 : i + 3] == ["/var/judge/rootfs; rm -rf /", "/"]
    assert "--reuid=65534" in argv and "--clear-groups" in argv
    assert argv[argv.index("--seccomp") + 1] == "10"
    assert argv[-4:] == ["3", "4", "5", "6"]
    # Neither host network nor host /dev is bound in.
    assert "--share-net" not in argv and "--dev-bind" not in argv


def test_argv_caps_the_tmpfs_sizes() -> None:
    argv = build_argv(_cmd())
    sizes = [argv[i + 1] for i, a in enumerate(argv) if a == "--size"]
    assert sizes == [str(1 << 20), str(1 << 19)]


def test_seccomp_filter_is_a_bpf_program() -> None:
    prog = compile_filter()
    # struct sock_filter is 8 bytes; a deny list of ~60 calls needs well over 60 of them.
    assert len(prog) % 8 == 0
    assert len(prog) // 8 > 60


def test_write_and_read_beneath(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        safefs.write_beneath(fd, "a.txt", b"hello", mode=0o755)
        assert (tmp_path / "a.txt").read_bytes() == b"hello"
        assert safefs.read_beneath(fd, "a.txt", max_bytes=3) == b"hel"
        assert safefs.list_regular_files(fd) == [("a.txt", 0o755)]
    finally:
        os.close(fd)


def test_planted_symlinks_are_never_followed(tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"host secret")
    (box / "out").symlink_to(victim)
    (box / "sub").symlink_to(tmp_path)
    os.mkfifo(box / "fifo")
    fd = os.open(box, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as read_err:
            safefs.read_beneath(fd, "out", max_bytes=100)
        assert read_err.value.errno == errno.ELOOP
        with pytest.raises(OSError):
            safefs.write_beneath(fd, "out", b"overwritten")
        with pytest.raises(OSError):
            safefs.read_beneath(fd, "sub/victim", max_bytes=100)
        with pytest.raises(OSError):
            safefs.read_beneath(fd, "../victim", max_bytes=100)
        with pytest.raises(OSError):  # a FIFO neither blocks nor is read
            safefs.read_beneath(fd, "fifo", max_bytes=100)
        assert safefs.list_regular_files(fd) == []
    finally:
        os.close(fd)
    assert victim.read_bytes() == b"host secret"


def test_v1_update_changes_limits_of_a_live_group(
    v1_tree: Callable[..., dict[str, str]],
) -> None:
    h = v1_tree()
    driver = CgroupV1Driver(h)
    driver.create(GROUP, ResourceLimits(memory_bytes=64 << 20, pids=8))
    driver.update(GROUP, ResourceLimits(memory_bytes=200 << 20, pids=70))
    mem = Path(h["memory"]) / GROUP
    assert (mem / "memory.limit_in_bytes").read_text() == str(200 << 20)
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == str(200 << 20)
    assert (Path(h["pids"]) / GROUP / "pids.max").read_text() == "70"


def test_v2_update_changes_limits_of_a_live_group(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    driver = CgroupV2Driver(str(d.parent.parent))
    driver.update(GROUP, ResourceLimits(memory_bytes=100 << 20, pids=62))
    assert (d / "memory.max").read_text() == str(100 << 20)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "62"


def test_v1_memory_baseline_restarts_the_peak_from_the_usage_now(
    v1_tree: Callable[..., dict[str, str]],
) -> None:
    h = v1_tree()
    mem = Path(h["memory"]) / GROUP
    (mem / "memory.max_usage_in_bytes").write_text("9000000\n")
    (mem / "memory.usage_in_bytes").write_text("4096\n")
    assert CgroupV1Driver(h).memory_baseline(GROUP) == 4096
    assert (mem / "memory.max_usage_in_bytes").read_text() == "0"


def test_v2_memory_baseline_is_the_usage_now(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree()
    (d / "memory.current").write_text("8192\n")
    (d / "memory.peak").write_text("9000000\n")
    assert CgroupV2Driver(str(d.parent.parent)).memory_baseline(GROUP) == 8192


def test_memory_baseline_falls_back_to_the_peak(v2_tree: Callable[..., Path]) -> None:
    d = v2_tree(omit=("memory.current",))
    (d / "memory.peak").write_text("9000000\n")
    assert CgroupV2Driver(str(d.parent.parent)).memory_baseline(GROUP) == 9000000


def test_add_process_moves_it_in_every_hierarchy(
    v1_tree: Callable[..., dict[str, str]],
) -> None:
    driver = CgroupV1Driver(v1_tree(comount=True))
    driver.add_process(GROUP, 4242)
    files = driver.procs_files(GROUP)
    assert len(files) == 4  # cpu and cpuacct share one hierarchy
    assert all(Path(f).read_text() == "4242" for f in files)
