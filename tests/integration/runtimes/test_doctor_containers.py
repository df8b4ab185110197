"""The doctor's container checks against real Podman: they pass where the engine is
complete, fail with the fix where it is not (a Podman whose init is missing), take
seconds, and leave no container or network behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hpcbox.clusters.preflight import (
    DNS_CHECK,
    INIT_CHECK,
    PROBE_LABEL,
    preflight_checks,
)
from hpcbox.infra.runtimes import EngineRuntime, PodmanService
from hpcbox.infra.runtimes.probe import ping_unix
from tests.integration.helpers import run_cli

pytestmark = [pytest.mark.integration]


def leftovers(runtime: EngineRuntime) -> tuple[list[str], list[str]]:
    containers = [c.name for c in runtime.list(labels={PROBE_LABEL: "1"})]
    names = [net.name or "" for net in runtime.client.networks.list()]
    networks = [name for name in names if name.startswith("hpcbox-doctor-")]
    return containers, networks


def test_the_container_checks_pass_for_real_in_seconds(runtime: EngineRuntime, image: str) -> None:
    started = time.monotonic()
    checks = preflight_checks(runtime, image=image)
    took = time.monotonic() - started
    by_name = {check.name: check for check in checks}
    assert set(by_name) == {INIT_CHECK, DNS_CHECK}
    assert by_name[INIT_CHECK].ok, by_name[INIT_CHECK]
    assert by_name[DNS_CHECK].ok, by_name[DNS_CHECK]
    assert "resolved another by name" in by_name[DNS_CHECK].detail
    assert took < 20, f"the container checks took {took:.1f} s"
    assert leftovers(runtime) == ([], [])


@contextmanager
def podman_without_init(tmp: Path) -> Iterator[EngineRuntime]:
    """A real Podman API service whose --init points at a binary that is not there, as
    on a machine where catatonit was left out."""
    podman = shutil.which("podman")
    assert podman is not None
    conf = tmp / "containers.conf"
    # Podman 4.3 reads init_path from the [engine] table.
    conf.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        "[engine]\n"
        'init_path = "/nonexistent/catatonit"\n'
        + ('runtime = "runc"\n' if shutil.which("runc") else "")
    )
    socket = tmp / "podman.sock"
    log = (tmp / "podman.log").open("wb")
    proc = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{socket}"],
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not ping_unix(socket):
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp / "podman.log"
            ).read_text()
            time.sleep(0.1)
        runtime = EngineRuntime.connect(f"unix://{socket}")
        try:
            yield runtime
        finally:
            runtime.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_a_missing_init_fails_the_init_check_with_its_fix(
    runtime: EngineRuntime, image: str, tmp_path: Path
) -> None:
    with podman_without_init(tmp_path) as broken:
        checks = {check.name: check for check in preflight_checks(broken, image=image)}
        assert leftovers(broken) == ([], [])
    init = checks[INIT_CHECK]
    assert not init.ok
    assert "/nonexistent/catatonit" in init.detail
    assert "catatonit" in init.fix
    # Name resolution was still checked, with containers started without an init.
    assert checks[DNS_CHECK].ok, checks[DNS_CHECK]


def test_hpcbox_doctor_json_strict(runtime: EngineRuntime, image: str, tmp_path: Path) -> None:
    """The command as a user runs it, on a fresh state dir: its own Podman service is
    started for the checks and stopped again."""
    home = tmp_path / "home"
    env = {"HPCBOX_HOME": str(home), "HPCBOX_JUDGE_CACHE": str(tmp_path / "judge")}
    proc = run_cli(env, "doctor", "--json", "--strict", check=False)
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    for name in ("container engine", INIT_CHECK, DNS_CHECK):
        assert checks[name]["ok"], checks[name]
        assert checks[name]["pillars"] == ["clusters"]
        assert checks[name]["main_job"] is True
    assert checks[DNS_CHECK]["seconds"] < 20
    missing_for_main = [c for c in checks.values() if c["main_job"] and not c["ok"]]
    assert proc.returncode == (1 if missing_for_main else 0), proc.stderr
    # The judge's root filesystem is not built in that cache: a "no" with its fix,
    # which --strict does not count (the main job does not need the judge).
    judge = checks["judge root filesystem"]
    assert not judge["ok"] and judge["fix"].startswith("hpcbox judge setup")
    assert PodmanService(home / "runtime").running_pid() is None
