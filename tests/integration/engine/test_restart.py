"""SIGKILL the process that schedules local jobs, start it again, and check that
every job ends in a correct, explained state — none stuck, none run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.settings import Settings
from hpcbox.jobs.backends.local.backend import LocalBackend
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState
from tests.integration.helpers import eventually, require_sandbox

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def start_agent(settings: Settings) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(settings.to_env())
    with open(settings.home / "agent-test.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "hpcbox.jobs.backends.local.agent"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


@pytest.fixture
def client(settings: Settings) -> Iterator[JobEngine]:
    require_sandbox()
    eng = JobEngine(settings, scheduling="none")
    yield eng
    for job in eng.list_jobs(states=ACTIVE_STATES, limit=1000):
        eng.cancel(job.id)
    eng.close(handover=False)


def test_sigkill_and_restart(settings: Settings, client: JobEngine, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    release = tmp_path / "release"
    # Runs until told to finish, so it is surely running across the restart.
    survivor = parse_job_spec(
        {
            "script": f'echo "$HPCBOX_JOB_ID" >> {ledger}\n'
            f"while [ ! -e {release} ]; do sleep 0.1; done\necho survived",
            "workdir": str(tmp_path),
        }
    )
    victim = parse_job_spec({"command": ["sleep", "300"], "workdir": str(tmp_path)})
    queued = parse_job_spec(
        {"script": f'echo "$HPCBOX_JOB_ID" >> {ledger}', "workdir": str(tmp_path)}
    )

    agent = start_agent(settings)
    try:
        a = client.submit(survivor).id
        b = client.submit(victim).id
        queued_ids = [client.submit(queued).id for _ in range(3)]
        assert eventually(
            lambda: (
                client.get(a).state is JobState.RUNNING and client.get(b).state is JobState.RUNNING
            ),
            timeout=30,
        )
        assert all(client.get(i).state is JobState.PENDING for i in queued_ids)

        agent.send_signal(signal.SIGKILL)
        agent.wait()
        # While nobody schedules: the victim's whole sandbox dies from outside.
        victim_pid = int(client.get(b).current.native_id or 0)
        os.kill(victim_pid, signal.SIGKILL)
        release.touch()
        assert eventually(lambda: not os.path.exists(f"/proc/{victim_pid}"), timeout=10)
        # Nothing moved while no scheduler ran.
        assert client.get(a).state is JobState.RUNNING

        agent = start_agent(settings)
        assert eventually(
            lambda: all(client.get(i).terminal for i in [a, b, *queued_ids]), timeout=60
        )
        survived = client.get(a)
        assert survived.state is JobState.COMPLETED, survived.to_json()
        assert client.logs(a).data == b"survived\n"
        lost = client.get(b)
        assert lost.state is JobState.FAILED, lost.to_json()
        assert lost.current.reason and "vanished" in lost.current.reason
        for i in queued_ids:
            assert client.get(i).state is JobState.COMPLETED
        runs = ledger.read_text().split()
        assert sorted(runs) == sorted(str(i) for i in [a, *queued_ids]), "a job ran twice"
    finally:
        agent.kill()
        agent.wait()


def test_killed_while_launching_is_not_started_twice(
    settings: Settings, client: JobEngine, tmp_path: Path
) -> None:
    """Simulate a scheduler killed between recording a launch and finishing it."""
    job = client.submit(parse_job_spec({"command": ["true"], "workdir": str(tmp_path)}))
    local = client.backend("local")
    assert isinstance(local, LocalBackend)
    assert not local.launcher.was_started(job)
    local.launcher.launch(job)  # started, but never recorded as started
    assert local.launcher.was_started(job)
    fresh = client.get(job.id)
    assert fresh.state is JobState.PENDING
    assert client.lock.try_acquire()
    client.scheduling_step()
    done = client.get(job.id)
    assert done.state is JobState.FAILED
    assert done.current.reason and "not started again" in done.current.reason
    client.lock.release()


def test_cli_agent_is_started_when_needed_and_exits_when_idle(
    settings: Settings, client: JobEngine, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(settings.to_env())
    env["HPCBOX_AGENT_IDLE_SECONDS"] = "1"
    script = tmp_path / "job.sh"
    script.write_text("echo from-cli\n")
    out = subprocess.run(
        [sys.executable, "-m", "hpcbox.cli.main", "job", "submit", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    job_id = int(out.stdout.strip())
    assert eventually(lambda: client.get(job_id).terminal, timeout=30)
    assert client.get(job_id).state is JobState.COMPLETED
    # The agent lets go of the lock once idle.
    assert eventually(client.lock.is_free, timeout=20)
