"""The engine with the local backend and real sandboxes (bubblewrap + cgroups)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from hpcbox.core.errors import ConflictError, InvalidInputError, NotFoundError
from hpcbox.core.settings import Settings
from hpcbox.jobs.backends.local.backend import LocalBackend
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from tests.integration.helpers import SANDBOX_PYTHON, eventually, processes_with

pytestmark = pytest.mark.integration


def submit(engine: JobEngine, **data: object) -> int:
    return engine.submit(parse_job_spec(data)).id


def test_script_runs_and_output_is_kept(engine: JobEngine, tmp_path: Path) -> None:
    job_id = submit(
        engine,
        name="hello",
        script="echo out; echo err >&2; echo $HPCBOX_JOB_ID; pwd; exit 0",
        workdir=str(tmp_path),
    )
    job = engine.wait(job_id, timeout=30)
    assert job.state is JobState.COMPLETED, job.to_json()
    assert job.current.exit_code == 0
    assert job.current.native_state == "COMPLETED"
    assert job.current.started_at is not None and job.current.finished_at is not None
    out = engine.logs(job_id).data.decode()
    assert out.splitlines() == ["out", str(job_id), str(tmp_path)]
    assert engine.logs(job_id, stream="stderr").data == b"err\n"
    assert engine.logs(job_id, offset=4).data.decode().startswith(str(job_id))
    assert engine.logs(job_id).eof


def test_nonzero_exit_is_failed(engine: JobEngine) -> None:
    job = engine.wait(submit(engine, command=["sh", "-c", "exit 3"]), timeout=30)
    assert job.state is JobState.FAILED
    assert job.current.exit_code == 3
    assert job.current.reason == "NonZeroExitCode"


def test_memory_cap_gives_out_of_memory(engine: JobEngine) -> None:
    hog = "a = bytearray(400 * 1024 * 1024); print(len(a))"
    job_id = submit(engine, command=[SANDBOX_PYTHON, "-c", hog], resources={"memory": "64M"})
    job = engine.wait(job_id, timeout=60)
    assert job.state is JobState.OUT_OF_MEMORY, job.to_json()
    assert job.current.peak_memory is not None
    assert job.current.peak_memory <= 80 * 1024 * 1024


def test_time_limit_gives_timeout(engine: JobEngine) -> None:
    started = time.monotonic()
    job_id = submit(engine, command=["sleep", "60"], resources={"time_limit": "2s"})
    job = engine.wait(job_id, timeout=30)
    assert job.state is JobState.TIMEOUT, job.to_json()
    assert job.current.reason == "TimeLimit"
    assert time.monotonic() - started < 15


def test_cancel_kills_double_forked_daemons(engine: JobEngine, tmp_path: Path) -> None:
    marker = f"hpcbox-marker-{uuid.uuid4().hex}"
    script = f"""
# daemons that double-fork and detach; found again by the marker in their argv[0]
( setsid bash -c 'exec -a {marker} sleep 300' & ) &
( nohup bash -c 'exec -a {marker}-nohup sleep 300' > /dev/null 2>&1 & )
echo started
sleep 300
"""
    job_id = submit(engine, script=script, workdir=str(tmp_path))
    assert eventually(lambda: len(processes_with(marker)) >= 2, timeout=20)
    job = engine.cancel(job_id)
    assert job.state is JobState.CANCELLED
    assert eventually(lambda: processes_with(marker) == [], timeout=10), processes_with(marker)
    # Cancelling again changes nothing.
    assert engine.cancel(job_id).state is JobState.CANCELLED


def test_daemons_die_with_the_job(engine: JobEngine) -> None:
    marker = f"hpcbox-leftover-{uuid.uuid4().hex}"
    script = f"( setsid bash -c 'exec -a {marker} sleep 300' & ) ; sleep 0.5; echo done"
    job = engine.wait(submit(engine, script=script), timeout=30)
    assert job.state is JobState.COMPLETED
    assert eventually(lambda: processes_with(marker) == [], timeout=10)


def test_queue_waits_for_resources(engine: JobEngine) -> None:
    # The fixture's machine has 2 CPUs: two 1-CPU jobs run, the third waits.
    ids = [submit(engine, command=["sleep", "30"]) for _ in range(3)]
    assert eventually(
        lambda: [engine.get(i).state for i in ids[:2]] == [JobState.RUNNING] * 2, timeout=20
    )
    third = engine.get(ids[2])
    assert third.state is JobState.PENDING
    assert eventually(lambda: engine.get(ids[2]).current.reason == "Resources", timeout=5)
    engine.cancel(ids[0])
    assert eventually(lambda: engine.get(ids[2]).state is JobState.RUNNING, timeout=20)


def test_too_big_for_the_machine_is_refused(engine: JobEngine) -> None:
    with pytest.raises(InvalidInputError, match="CPUs"):
        submit(engine, command=["true"], resources={"cpus_per_task": 64})
    with pytest.raises(InvalidInputError, match="one node"):
        submit(engine, command=["true"], resources={"nodes": 2})
    with pytest.raises(InvalidInputError, match="workdir"):
        submit(engine, command=["true"], workdir="/does/not/exist")


def test_rerun_from_terminal_with_edited_script(engine: JobEngine) -> None:
    job_id = submit(engine, name="fixme", script="echo broken; exit 1")
    assert engine.wait(job_id, timeout=30).state is JobState.FAILED
    job = engine.rerun(job_id, script="echo fixed")
    assert job.current.number == 2
    job = engine.wait(job_id, timeout=30)
    assert job.state is JobState.COMPLETED
    assert [a.state for a in job.attempts] == [JobState.FAILED, JobState.COMPLETED]
    assert engine.logs(job_id).data == b"fixed\n"
    assert engine.logs(job_id, attempt=1).data == b"broken\n"


def test_rerun_of_active_job_is_refused(engine: JobEngine) -> None:
    job_id = submit(engine, command=["sleep", "30"])
    with pytest.raises(ConflictError):
        engine.rerun(job_id)


def test_unknown_job(engine: JobEngine) -> None:
    with pytest.raises(NotFoundError):
        engine.get(999_999)
    with pytest.raises(NotFoundError):
        engine.cancel(999_999)


def test_logs_readable_while_running(engine: JobEngine) -> None:
    job_id = submit(engine, script="echo first; sleep 30")
    assert eventually(lambda: engine.logs(job_id).data == b"first\n", timeout=20)
    chunk = engine.logs(job_id)
    assert not chunk.eof
    assert engine.get(job_id).state is JobState.RUNNING


HOSTILE = [
    'it\'s "quoted" \\ back',
    "semi; colon && rm -rf /nonexistent",
    "$(touch /tmp/hpcbox-pwned) `id` ${HOME}",
    "new\nline\r\ttab",
    "ünïcødé ✓ 漢字 🚀",
    "long-" + "x" * 3000,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_commands_and_env_run_verbatim(engine: JobEngine, text: str) -> None:
    script = 'printf "%s" "$HOSTILE"\n'
    job_id = submit(engine, name=text, script=script, env={"HOSTILE": text})
    job = engine.wait(job_id, timeout=30)
    assert job.state is JobState.COMPLETED
    assert job.name == text
    assert engine.logs(job_id).data.decode() == text
    job2 = engine.wait(submit(engine, name=text, command=["printf", "%s", text]), timeout=30)
    assert engine.logs(job2.id).data.decode() == text
    assert not os.path.exists("/tmp/hpcbox-pwned")


def test_hostile_script_text_runs_verbatim(engine: JobEngine) -> None:
    lines = [f"echo {line!r}" for line in ["a'b", 'c"d', "e;f", "$(g)", "ü✓"]]
    # Python's repr gives shell-safe single-quoted strings for these inputs.
    job = engine.wait(submit(engine, script="\n".join(lines)), timeout=30)
    assert engine.logs(job.id).data.decode().splitlines() == ["a'b", 'c"d', "e;f", "$(g)", "ü✓"]


def test_a_job_queued_by_another_process_starts_at_once(
    engine: JobEngine, settings: Settings
) -> None:
    # `engine` schedules (it holds the lock, as `hpcbox serve` does); a second
    # engine, as a CLI call is, finds the lock held and wakes it through the FIFO
    # instead of leaving the job to the scheduler's next safety-net poll.
    local = engine.backend("local")
    assert isinstance(local, LocalBackend)
    assert eventually(lambda: local.scheduler is not None)
    assert engine.poll_interval >= 2.0
    other = JobEngine(settings, scheduling="agent")
    try:
        time.sleep(0.3)  # let the scheduler settle into its long sleep
        queued_at = time.monotonic()
        job_id = other.submit(parse_job_spec({"script": "true"})).id
        assert eventually(lambda: other.get(job_id).state is not JobState.PENDING, timeout=30)
        assert time.monotonic() - queued_at < 1.5
        assert other.wait(job_id, timeout=30).state is JobState.COMPLETED
        # A cancel from the other process reaches the scheduler at once too: it
        # stops tracking the job (and records its usage) without waiting a poll.
        job_id = other.submit(parse_job_spec({"script": "sleep 60"})).id
        assert eventually(lambda: other.get(job_id).state is JobState.RUNNING, timeout=30)
        scheduler = local.scheduler
        assert scheduler is not None
        assert eventually(lambda: (job_id, 1) in scheduler.handles())
        time.sleep(0.3)
        other.cancel(job_id)
        assert eventually(lambda: (job_id, 1) not in scheduler.handles(), timeout=1.5)
    finally:
        other.close(handover=False)
