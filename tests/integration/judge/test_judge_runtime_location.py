"""The judge out of the box for root, as README's set-up leaves it: the state
directory under a 0700 home (as /root/.local/share/hpcbox is) and HPCBOX_JUDGE_CACHE
unset. The runtime must go where the sandbox's uid can read it, and a serve that
starts before the runtime exists must answer Judge0 clients at once (503 with
Retry-After) while it builds in the background.

Nothing here uses or leaves machine-wide state: the system cache base
(HPCBOX_SYSTEM_CACHE_DIR, /var/cache/hpcbox by default) is a fresh directory, so
the runtime is built from scratch (a few minutes, Debian's mirror needed) and
removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.integration.helpers import run_cli
from tests.integration.judge_api.conftest import Proc, free_port

#: Judge0 ids of every language the runtime holds.
_ALL_IDS = {46, 50, 54, 62, 63, 71}
#: A first build on a fresh machine: debootstrap of the languages' packages, then
#: a smoke program in each (2 minutes here; slow mirrors take longer).
_BUILD_S = 1500

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(_BUILD_S + 300)]


def _requirements() -> None:
    require(os.geteuid() == 0, "the judge needs root")
    for tool, package in (("bwrap", "bubblewrap"), ("debootstrap", "debootstrap")):
        require(shutil.which(tool) is not None, f"{tool} missing: apt-get install {package}")
    try:
        socket.create_connection(("deb.debian.org", 80), timeout=5).close()
    except OSError as exc:
        require(False, f"the runtime's build needs Debian's mirror: {exc}")


@pytest.fixture
def system_cache() -> Iterator[Path]:
    """A fresh stand-in for /var/cache/hpcbox: root's, 0755, removed afterwards."""
    _requirements()
    path = Path(tempfile.mkdtemp(prefix="hpcbox-test-system-cache-", dir="/var/tmp"))
    os.chmod(path, 0o755)  # noqa: S103 - as /var/cache: searchable, not writable, by others
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(tmp_path: Path, system_cache: Path) -> dict[str, str]:
    root_home = tmp_path / "root"
    root_home.mkdir(mode=0o700)
    os.chmod(root_home, 0o700)
    return {
        "HPCBOX_HOME": str(root_home / ".local/share/hpcbox"),
        "HPCBOX_SYSTEM_CACHE_DIR": str(system_cache),
        "HPCBOX_JUDGE_THREADS": "2",
        "HPCBOX_JUDGE_POOL_SIZE": "1",
    }


def _get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = client.get(path)
    return time.monotonic() - started, response


def test_root_with_a_private_home_serves_at_once_and_builds_where_nobody_reads(
    tmp_path: Path, env: dict[str, str], system_cache: Path
) -> None:
    port = free_port()
    serve_env = {k: v for k, v in os.environ.items() if not k.startswith("HPCBOX_")}
    serve_env.update(env)
    argv = [sys.executable, "-m", "hpcbox.cli.main", "serve", "--port", str(port)]
    server = Proc(argv, serve_env, tmp_path / "serve.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # Up before its judge: the judge's routes answer at once, and say so.
        assert client.get("/health").json()["judge"] == "starting"
        took, languages = _get(client, "/judge0/languages")
        assert took < 2 and languages.status_code == 503, languages.text
        assert int(languages.headers["retry-after"]) >= 1
        assert languages.json()["error"].startswith("the judge is starting")
        made = client.post(
            "/judge0/submissions", json={"source_code": "print(1)", "language_id": 71}
        )
        assert made.status_code == 503 and "retry-after" in made.headers
        assert client.get("/judge0/about").json()["version"] == "1.13.1"
        assert client.get("/judge0/config_info").status_code == 200
        # The build goes on in the background; every poll meanwhile answers at once.
        deadline = time.monotonic() + _BUILD_S
        while True:
            took, health = _get(client, "/health")
            assert took < 2 and health.status_code == 200
            state = health.json()["judge"]
            assert state != "failed", (health.json(), (tmp_path / "serve.log").read_text())
            if state == "ready":
                break
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            took, languages = _get(client, "/judge0/languages")
            assert took < 2 and languages.status_code in (503, 200)
            time.sleep(2)
        languages = client.get("/judge0/languages")
        assert languages.status_code == 200
        assert {lang["id"] for lang in languages.json()} == _ALL_IDS
        judged = client.post(
            "/judge0/submissions?wait=true",
            json={"source_code": "print(int(input()) * 2)", "language_id": 71, "stdin": "21"},
        )
        assert judged.status_code == 201 and judged.json()["stdout"] == "42\n", judged.text
    finally:
        client.close()
        server.stop()

    # Where it was built: the system cache, root's, every directory 0755.
    cache = system_cache / "judge"
    (rootfs,) = cache.glob("rootfs-*")
    for path in (cache, rootfs, rootfs / "usr", rootfs / "usr/bin"):
        st = os.lstat(path)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0, path
        assert st.st_mode & 0o777 == 0o755, (path, oct(st.st_mode))
    assert not list(cache.glob(".build-*"))
    assert not (Path(env["HPCBOX_HOME"]) / "judge").exists()

    # The CLI finds it there too: set-up is quick now, and judging works.
    setup = run_cli(env, "judge", "setup", "--json", timeout=300)
    report = json.loads(setup.stdout)
    assert report["rootfs"] == str(rootfs) and report["not_working"] == []
    assert len(report["languages"]) == len(_ALL_IDS)
    assert Path(report["log"]).is_file()
    source = tmp_path / "p.py"
    source.write_text("print(6 * 7)\n")
    ran = run_cli(env, "judge", "run", str(source), "--lang", "python3", "--json", timeout=120)
    assert json.loads(ran.stdout)["tests"][0]["stdout"] == "42\n"
