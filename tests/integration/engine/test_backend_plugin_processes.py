"""A backend plugin across processes: the CLI and the agent it starts each find the
echo backend through the ``hpcbox.backends`` entry point of a distribution on
``PYTHONPATH`` (tests/unit/engine/echo_backend.py), and run a job end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hpcbox.core.settings import Settings
from tests.integration.helpers import run_cli
from tests.unit.engine import echo_backend

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def test_cli_and_agent_run_a_job_on_a_plugin_backend(settings: Settings, tmp_path: Path) -> None:
    site = echo_backend.install(tmp_path / "site")
    env = {
        **settings.to_env(),
        "HPCBOX_AGENT_IDLE_SECONDS": "1",
        # The agent runs from /: the tests package must be importable from there too.
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
    }
    script = tmp_path / "job.sh"
    script.write_text("hello through the agent\n")
    out = run_cli(
        env, "job", "submit", "--target", "echo", "--wait", "--json", str(script), timeout=60
    )
    job = json.loads(out.stdout)
    assert (job["backend"], job["target"], job["state"]) == ("echo", "echo", "COMPLETED"), job
    assert job["native_id"] == f"echo-{job['id']}-1"
    assert run_cli(env, "job", "logs", str(job["id"]), timeout=60).stdout == (
        "hello through the agent\n"
    )
    # Without the plugin, the job is still there, and the CLI says what is missing.
    bare = {**env, "PYTHONPATH": str(REPO)}
    shown = json.loads(run_cli(bare, "job", "show", str(job["id"]), "--json", timeout=60).stdout)
    assert shown["state"] == "COMPLETED"
    refused = run_cli(bare, "job", "logs", str(job["id"]), check=False, timeout=60)
    assert refused.returncode != 0 and "'echo' is not installed" in refused.stderr
