"""``hpcbox images build`` as a user runs it: its refusals, and a run with nothing to do.

The CLI reaches the session's Podman service (linked in as its own), so that no
test starts a service of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.infra.runtimes import EngineRuntime
from tests.integration.helpers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture
def cli_env(
    runtime: EngineRuntime, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "runtime").symlink_to(tmp_path_factory.getbasetemp() / "engine")
    return {"HPCBOX_HOME": str(home)}


def test_host_ca_and_no_host_ca_together_are_refused(tmp_path: Path) -> None:
    proc = run_cli(
        {"HPCBOX_HOME": str(tmp_path)},
        "images",
        "build",
        "--host-ca",
        "/etc/ssl/certs/ca-certificates.crt",
        "--no-host-ca",
        check=False,
    )
    assert proc.returncode == 2
    assert "--host-ca: give --host-ca PATH or --no-host-ca, not both" in proc.stderr


def test_a_bad_host_ca_is_refused_at_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_cli(cli_env, "images", "build", "--host-ca", "ca.pem", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "host_ca: must be an absolute path, 'auto' or 'none': 'ca.pem'" in proc.stderr
    env = {**cli_env, "HPCBOX_IMAGES_HOST_CA": str(tmp_path / "missing.pem")}
    proc = run_cli(env, "images", "build", check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"HPCBOX_IMAGES_HOST_CA: no such file: {tmp_path / 'missing.pem'}" in proc.stderr


def test_nothing_to_do(cli_env: dict[str, str], built: list[str]) -> None:
    proc = run_cli(cli_env, "images", "build", "--verbose")
    assert proc.stdout.strip() == "built: nothing (all present)"
    assert "> all images are present" in proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    # No build, no log.
    assert not (Path(cli_env["HPCBOX_HOME"]) / "images" / "logs").exists()
