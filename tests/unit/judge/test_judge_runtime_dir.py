"""Where the judge's runtime lives, and the trust and reachability checks on the way
(hpcbox.judge.runtime_dir, and ensure_rootfs's use of them). Real directories, real
modes, and, as root, a real check as the sandbox's uid."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.core.progress import LineReporter
from hpcbox.core.settings import JudgeSettings, Settings
from hpcbox.judge import rootfs as rootfs_mod
from hpcbox.judge.rootfs import ensure_rootfs, rootfs_path
from hpcbox.judge.runtime_dir import (
    SANDBOX_UID,
    SYSTEM_CACHE_DIR,
    check_cache_dir,
    check_reachable,
    judge_cache_dir,
    prepare_cache_dir,
)
from hpcbox.judge.service import _DebootstrapLines

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, uid switch)")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh 0755 directory every user can reach (pytest's tmp_path is under a
    0700 directory, so the sandbox's uid reaches nothing there)."""
    path = Path(tempfile.mkdtemp(prefix="hpcbox-test-runtime-dir-", dir="/var/tmp"))
    os.chmod(path, 0o755)  # noqa: S103 - reachable, not writable, by others
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _mode(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777


# -- where --------------------------------------------------------------------


def _where(settings: Settings, env: dict[str, str]) -> Path:
    return judge_cache_dir(settings.model_copy(update={"judge": JudgeSettings.from_env(env)}))


def test_judge_cache_env_wins_over_everything(settings: Settings, tmp_path: Path) -> None:
    env = {"HPCBOX_JUDGE_CACHE": str(tmp_path / "c"), "HPCBOX_SYSTEM_CACHE_DIR": "/elsewhere"}
    assert _where(settings, env) == tmp_path / "c"


def test_a_relative_judge_cache_is_made_absolute(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _where(settings, {"HPCBOX_JUDGE_CACHE": "rel"}) == tmp_path / "rel"


def test_root_uses_the_system_cache_whatever_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    home = tmp_path / "root-home" / ".local/share/hpcbox"
    settings = Settings(home=home)
    assert _where(settings, {}) == SYSTEM_CACHE_DIR / "judge"
    assert SYSTEM_CACHE_DIR == Path("/var/cache/hpcbox")
    base = {"HPCBOX_SYSTEM_CACHE_DIR": str(tmp_path / "sys")}
    assert _where(settings, base) == tmp_path / "sys" / "judge"
    assert home not in _where(settings, base).parents


def test_other_users_keep_it_in_their_state_dir(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert _where(settings, {"HPCBOX_SYSTEM_CACHE_DIR": "/x"}) == settings.home / "judge"


def test_the_settings_from_os_environ_carry_the_judge_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPCBOX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HPCBOX_JUDGE_CACHE", str(tmp_path / "from-env"))
    assert judge_cache_dir(Settings.from_env()) == tmp_path / "from-env"
    # Settings built in Python hold what they were given, whatever the environment.
    assert judge_cache_dir(Settings(home=tmp_path / "home")) != tmp_path / "from-env"


# -- creating and trusting ------------------------------------------------------


def test_prepare_creates_every_missing_directory_0755_whatever_the_umask(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "a" / "b" / "judge"
    old = os.umask(0o077)
    try:
        assert prepare_cache_dir(cache) == cache
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", cache):
        assert _mode(path) == 0o755, path
        assert os.lstat(path).st_uid == os.geteuid()
    prepare_cache_dir(cache)  # idempotent


def test_an_existing_directory_is_never_changed_only_judged(tmp_path: Path) -> None:
    cache = tmp_path / "judge"
    cache.mkdir(mode=0o700)
    os.chmod(cache, 0o700)
    prepare_cache_dir(cache)
    assert _mode(cache) == 0o700  # left as it is (check_reachable says if that matters)


def test_an_ancestor_writable_by_others_is_refused_unless_sticky(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(PermanentError, match=r"above the judge cache .* writable by others"):
        prepare_cache_dir(shared / "judge")
    assert not (shared / "judge").exists()  # refused before anything was made
    os.chmod(shared, 0o1777)  # noqa: S103 - sticky, as /tmp: others cannot swap our entries
    prepare_cache_dir(shared / "judge")
    check_cache_dir(shared / "judge")


def test_the_cache_itself_must_not_be_a_symlink_nor_writable_by_others(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(PermanentError, match="not a directory"):
        prepare_cache_dir(link)
    os.chmod(real, 0o775)  # noqa: S103 - group-writable: refused too
    with pytest.raises(PermanentError, match="writable by others"):
        check_cache_dir(real)


def test_a_symlink_above_is_judged_by_where_it_leads(tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir(mode=0o755)
    (tmp_path / "via").symlink_to(trusted)
    prepare_cache_dir(tmp_path / "via" / "judge")
    assert (trusted / "judge").is_dir()
    # A link that leads through a directory anyone may write in is refused.
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    os.chmod(unsafe, 0o777)  # noqa: S103 - the unsafe mode under test
    (unsafe / "inner").mkdir(mode=0o755)
    (tmp_path / "via-unsafe").symlink_to(unsafe / "inner")
    with pytest.raises(PermanentError, match="writable by others"):
        prepare_cache_dir(tmp_path / "via-unsafe" / "judge")


@as_root
def test_an_ancestor_or_cache_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, SANDBOX_UID, SANDBOX_UID)
    with pytest.raises(PermanentError, match=f"belongs to uid {SANDBOX_UID}"):
        prepare_cache_dir(theirs / "judge")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    os.chown(cache, SANDBOX_UID, SANDBOX_UID)
    with pytest.raises(PermanentError, match=f"belongs to uid {SANDBOX_UID}"):
        ensure_rootfs(cache, [])  # before trusting anything found in it


# -- reachable by the sandbox's uid ----------------------------------------------


def _fake_rootfs(cache: Path) -> Path:
    """What ensure_rootfs finds built: the marker and an executable python3."""
    target = rootfs_path(cache, [])
    (target / "usr/bin").mkdir(parents=True)
    shutil.copy("/bin/true", target / "usr/bin/python3")
    (target / ".hpcbox-rootfs").write_text("python3\n")
    return target


@as_root
def test_a_runtime_under_a_0700_directory_is_refused_with_the_reason(tmp_path: Path) -> None:
    # The bug this module exists for: /root is 0700, so nobody reaches
    # /root/.local/share/hpcbox/judge. tmp_path sits under a 0700 directory too.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    cache = prepare_cache_dir(private / "judge")
    target = _fake_rootfs(cache)
    with pytest.raises(PermanentError, match=rf"uid {SANDBOX_UID} cannot reach .* is mode 700"):
        check_reachable(target / "usr/bin/python3")
    with pytest.raises(PermanentError, match="cannot reach"):
        ensure_rootfs(cache, [])
    assert ensure_rootfs(cache, [], reader_uid=None) == target  # unchecked: found


@as_root
def test_a_runtime_every_user_can_search_is_reachable(open_dir: Path) -> None:
    cache = prepare_cache_dir(open_dir / "sys" / "judge")
    target = _fake_rootfs(cache)
    check_reachable(cache)
    assert ensure_rootfs(cache, []) == target
    os.chmod(target, 0o700)  # a root filesystem built under umask 077, say
    with pytest.raises(PermanentError, match=f"{target} is mode 700"):
        ensure_rootfs(cache, [])


def test_reachability_is_not_checked_when_not_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    check_reachable(tmp_path / "does-not-exist")  # no error: only root can switch uid


# -- builds: leftovers and cancellation -------------------------------------------


def test_dead_builders_leftovers_are_removed_and_nothing_else(tmp_path: Path) -> None:
    cache = prepare_cache_dir(tmp_path / "judge")
    (cache / ".build-rootfs-0123-99999" / "usr").mkdir(parents=True)
    (cache / "rootfs-keep").mkdir()
    rootfs_mod._remove_stale_builds(cache)
    assert sorted(p.name for p in cache.iterdir()) == ["rootfs-keep"]


def test_mounts_are_found_beneath_a_path_and_only_there() -> None:
    assert rootfs_mod._mounts_beneath(Path("/")) != []  # "/" itself is a mount
    assert rootfs_mod._mounts_beneath(Path("/nonexistent-hpcbox-path")) == []


def test_a_cancelled_build_stops_its_tool_at_once() -> None:
    cancel = threading.Event()
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        cancel.set()  # cancelled as soon as the tool is under way

    script = "import time; print('started', flush=True); time.sleep(60)"
    started = time.monotonic()
    status, tail = rootfs_mod._run_streaming([sys.executable, "-c", script], say, cancel)
    assert time.monotonic() - started < 20
    assert status != 0 and lines == tail == ["started"]


def test_a_tool_that_fails_reports_its_status_and_last_lines() -> None:
    script = "import sys; print('\\n'.join(map(str, range(30)))); sys.exit(3)"
    status, tail = rootfs_mod._run_streaming([sys.executable, "-c", script], lambda _: None, None)
    assert status == 3 and tail == [str(n) for n in range(10, 30)]


def test_debootstraps_phases_are_what_the_build_waits_for() -> None:
    said: list[str] = []
    lines = _DebootstrapLines(LineReporter(said.append, verbose=True))
    for line in (
        "I: Retrieving InRelease",
        "I: Checking Release signature",
        "I: Retrieving libc6 2.36-9",
        "I: Extracting libc6...",
        "I: Extracting zlib1g...",
        "W: something odd",
        "I: Unpacking gcc...",
        "I: Configuring gcc...",
        "I: Base system installed successfully.",
    ):
        lines(line)
    waits = [s.strip() for s in said if s.startswith("  ")]
    assert waits == [
        "debootstrap: downloading packages",
        "debootstrap: extracting the base system",
        "debootstrap: unpacking packages",
        "debootstrap: configuring packages",
        "debootstrap: done",
    ]
    assert "W: something odd" in said  # every line is raw output (shown when verbose)
