"""The bootstrapped Debian base: cache, clean-up of the root filesystem, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcbox.clusters.images import debian
from hpcbox.clusters.images.debian import bootstrap_rootfs, rootfs_tarball_path, sources_text
from hpcbox.core.errors import UnavailableError
from tests.unit.images.fakes import RecordingReporter


def test_a_cached_tarball_is_used_as_is(tmp_path: Path) -> None:
    cached = rootfs_tarball_path(tmp_path)
    cached.write_bytes(b"cached")
    reporter = RecordingReporter()
    assert bootstrap_rootfs(tmp_path, reporter=reporter) == cached
    assert "cached" in reporter.of("info")[0]
    assert reporter.of("step") == []


def test_without_debootstrap_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(debian, "find_debootstrap", lambda: None)
    with pytest.raises(UnavailableError, match="apt-get install debootstrap"):
        bootstrap_rootfs(tmp_path, reporter=RecordingReporter())


def test_without_root_it_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debian, "find_debootstrap", lambda: "/usr/sbin/debootstrap")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UnavailableError, match="needs root"):
        bootstrap_rootfs(tmp_path, reporter=RecordingReporter())


def test_tidy_rootfs_drops_caches_and_host_identity(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name, text in {
        "var/cache/apt/archives/bash_5.2_amd64.deb": "deb",
        "var/lib/apt/lists/deb.debian.org_Packages": "list",
        "etc/hostname": "buildhost\n",
        "etc/resolv.conf": "nameserver 10.0.0.1\n",
        "etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
        "etc/passwd": "root:x:0:0::/root:/bin/bash\n",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    debian._tidy_rootfs(root)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == ["etc/apt/sources.list.d/debian.sources", "etc/passwd"]
    assert (root / "etc/apt/sources.list.d/debian.sources").read_text() == sources_text()


def test_sources_include_updates_and_security() -> None:
    text = sources_text()
    assert "Suites: bookworm bookworm-updates" in text
    assert "Suites: bookworm-security" in text
    assert "https" not in text  # plain http: works behind TLS interception too
