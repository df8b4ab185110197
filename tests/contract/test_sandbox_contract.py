"""Sandbox profile "job" through the public surfaces (issue 2, items 4 and 5; docs/jobs.md):
limits and their states, whole-tree kills, private /tmp, hostile input run verbatim."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.errors import HpcboxError
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from tests.contract.conftest import (
    TERMINAL,
    Cli,
    Server,
    cleanup_home,
    eventually,
    new_home,
    processes_with,
    require_sandbox,
    settings_for,
)

pytestmark = pytest.mark.integration


def daemon_script(marker: str) -> str:
    """A job that leaves a setsid'd daemon and a double-forked one behind, then sleeps."""
    return (
        f"(setsid bash -c 'exec -a {marker}-a sleep 300' >/dev/null 2>&1 &)\n"
        f"(bash -c '(exec -a {marker}-b sleep 300) &' >/dev/null 2>&1 &)\n"
        f"(nohup bash -c 'exec -a {marker}-c sleep 300' >/dev/null 2>&1 &)\n"
        "echo started\n"
        f"exec -a {marker}-d sleep 300\n"
    )


def test_memory_cap_gives_out_of_memory(shared_server: Server) -> None:
    job = shared_server.submit(
        {"script": "tail /dev/zero\n", "resources": {"memory": "64M", "time_limit": "1m"}}
    )
    done = shared_server.wait_state(job["id"], TERMINAL, timeout=30)
    assert done["state"] == "OUT_OF_MEMORY", done
    assert done["finished_at"]


def test_time_limit_gives_timeout_and_kills_the_tree(shared_server: Server) -> None:
    marker = f"hpcbox-contract-timeout-{uuid.uuid4().hex}"
    job = shared_server.submit(
        {"script": daemon_script(marker), "resources": {"time_limit": "0:03"}}
    )
    assert parse_job_spec(job["spec"]).resources.time_limit == 3
    assert eventually(lambda: len(processes_with(marker)) >= 4, timeout=15)
    done = shared_server.wait_state(job["id"], TERMINAL, timeout=30)
    assert done["state"] == "TIMEOUT", done
    assert done["reason"] == "TimeLimit"
    assert eventually(lambda: not processes_with(marker), timeout=10), processes_with(marker)


def test_cli_cancel_leaves_no_process_behind(cli: Cli) -> None:
    marker = f"hpcbox-contract-cancel-{uuid.uuid4().hex}"
    job_id = cli.submit(daemon_script(marker), name="daemons.sh")
    assert eventually(lambda: len(processes_with(marker)) >= 4, timeout=20), "daemons started"
    assert cli.engine.logs(job_id).data == b"started\n"
    proc = cli("job", "cancel", str(job_id))
    assert proc.returncode == 0, proc.stderr
    assert eventually(lambda: not processes_with(marker), timeout=10), processes_with(marker)
    job = cli.job(job_id)
    assert job["state"] == "CANCELLED"


def test_exit_code_signal_cpu_time_and_peak_memory(shared_server: Server) -> None:
    failing = shared_server.submit({"script": "echo x\nexit 42\n"})
    killed = shared_server.submit({"script": "kill -9 $$\n"})
    busy = shared_server.submit(
        {
            "script": "timeout 1.5 bash -c 'while :; do :; done' &\n"
            "timeout 1.5 bash -c 'while :; do :; done' &\nwait\nexit 0\n",
            "resources": {"cpus_per_task": 1},
        }
    )
    job = shared_server.wait_state(failing["id"], TERMINAL)
    assert (job["state"], job["exit_code"]) == ("FAILED", 42)
    job = shared_server.wait_state(killed["id"], TERMINAL)
    assert job["state"] == "FAILED"
    assert job["signal"] == 9 or "9" in (job["reason"] or ""), job
    job = shared_server.wait_state(busy["id"], TERMINAL, timeout=30)
    assert job["state"] == "COMPLETED", job
    # Two busy processes for 1.5 s under a one-CPU quota: about 1.5 CPU-seconds, not 3.
    assert isinstance(job["cpu_time"], float | int)
    assert 0.3 <= job["cpu_time"] <= 2.1, job["cpu_time"]
    assert job["peak_memory"] and job["peak_memory"] > 0


HOSTILE_NAME = (
    'it\'s "quoted" ; rm -rf / ; $(touch /tmp/pwned) `id` \\ \n second line \t ünïcödé 🚀 '
    + "L" * 3000
)

HOSTILE_SCRIPT = (
    "printf '%s\\n' 'single '\"'\"' quote' \"double \\\" quote\" 'semi ; colon'\n"
    "printf '%s\\n' '$(touch /nonexistent/pwn)' '`id`' 'ünïcödé 🚀' '\\n stays'\n"
    'echo "x$(echo sub)y"\n'
    "# a very long comment " + "#" * 100_000 + "\n"
    'for i in $(seq 1 3); do echo "line $i"; done\n'
)
HOSTILE_OUTPUT = (
    "single ' quote\n"
    'double " quote\n'
    "semi ; colon\n"
    "$(touch /nonexistent/pwn)\n"
    "`id`\n"
    "ünïcödé 🚀\n"
    "\\n stays\n"
    "xsuby\n"
    "line 1\nline 2\nline 3\n"
)


def test_hostile_names_scripts_and_argv_run_verbatim(shared_server: Server, tmp_path: Path) -> None:
    job = shared_server.submit({"name": HOSTILE_NAME, "script": HOSTILE_SCRIPT})
    assert job["name"] == HOSTILE_NAME
    argv = ["printf", "%s|", "a b", "$(id)", "'\";", "ü 🚀", "", "-n"]
    command = shared_server.submit({"name": "argv", "command": argv})
    done = shared_server.wait_state(job["id"], TERMINAL)
    assert done["state"] == "COMPLETED", done
    assert done["name"] == HOSTILE_NAME
    assert parse_job_spec(done["spec"]).script == HOSTILE_SCRIPT
    logs = shared_server.client.get(f"/v1/jobs/{job['id']}/logs").json()
    assert logs["data"] == HOSTILE_OUTPUT
    shared_server.wait_state(command["id"], {"COMPLETED"})
    out = shared_server.client.get(f"/v1/jobs/{command['id']}/logs").json()["data"]
    assert out == "a b|$(id)|'\";|ü 🚀||-n|"

    # The CLI on the same store prints the hostile job without breaking.
    cli = Cli(shared_server.home, tmp_path)
    try:
        shown = json.loads(cli.ok("job", "show", str(job["id"]), "--json"))
        assert shown["name"] == HOSTILE_NAME
        table = cli("job", "list")
        assert table.returncode == 0
        # A hostile script file name, through the CLI, runs too.
        path = cli.script("echo from-odd-file\n", 'we\'ird "name"; $(x) ü.sh')
        odd = cli("job", "submit", "--wait", "--json", str(path))
        assert odd.returncode == 0, odd.stderr
        odd_job = json.loads(odd.stdout)
        assert odd_job["name"] == path.name
        assert cli.engine.logs(odd_job["id"]).data == b"from-odd-file\n"
    finally:
        cli.close()


def test_script_with_shebang_runs_with_its_interpreter(shared_server: Server) -> None:
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 for the #! test")
    job = shared_server.submit(
        {"script": f"#!{python}\nimport sys\nprint('py', sys.version_info[0])\n"}
    )
    shared_server.wait_state(job["id"], {"COMPLETED"})
    assert shared_server.client.get(f"/v1/jobs/{job['id']}/logs").json()["data"] == "py 3\n"


@pytest.fixture
def outside_tmp() -> Iterator[tuple[Path, Path]]:
    """A home and a working directory that are both outside /tmp."""
    require_sandbox()
    home = new_home()
    work = Path(tempfile.mkdtemp(prefix="hpcbox-contract-work-", dir=home.parent))
    yield home, work
    cleanup_home(home)
    shutil.rmtree(work, ignore_errors=True)


def test_private_tmp_per_job_and_user_files_visible(outside_tmp: tuple[Path, Path]) -> None:
    home, work = outside_tmp
    tag = uuid.uuid4().hex
    (work / "input.txt").write_text("user data\n")
    script = (
        'echo "start:$(ls -A /tmp | wc -l)"\n'
        f'touch "/tmp/mine-{tag}-$HPCBOX_JOB_ID"\n'
        "sleep 1\n"
        'echo "later:$(ls -A /tmp)"\n'
        "cat input.txt\n"
        'echo "written by $HPCBOX_JOB_ID" > "output-$HPCBOX_JOB_ID.txt"\n'
    )
    with JobEngine(settings_for(home), scheduling="thread") as engine:
        jobs = [
            engine.submit(parse_job_spec({"script": script, "workdir": str(work)}))
            for _ in range(2)
        ]
        done = [engine.wait(job.id, timeout=30) for job in jobs]
        for job in done:
            assert job.state.value == "COMPLETED", job.to_json()
            out = engine.logs(job.id).data.decode()
            assert out == f"start:0\nlater:mine-{tag}-{job.id}\nuser data\n", out
            assert (work / f"output-{job.id}.txt").read_text() == f"written by {job.id}\n"
    assert not list(Path("/tmp").glob(f"mine-{tag}-*")), "the job's /tmp is not the host's"


def test_job_runs_when_hpcbox_home_is_under_tmp(tmp_path: Path) -> None:
    """hpcbox's own job directory must reach the job, or such a home must be refused
    up front with an error that says why; a valid script must not FAIL with 127."""
    require_sandbox()
    home = tmp_path / "home"
    work = Path(tempfile.mkdtemp(prefix="hpcbox-contract-work-", dir="/var/tmp"))
    try:
        with JobEngine(settings_for(home), scheduling="thread") as engine:
            spec = parse_job_spec({"script": "echo ok\n", "workdir": str(work)})
            refused = ""
            try:
                job = engine.submit(spec)
            except HpcboxError as exc:
                refused = str(exc)
            if refused:
                assert "/tmp" in refused, refused
                return
            job = engine.wait(job.id, timeout=30)
            stderr = engine.logs(job.id, stream="stderr").data.decode()
            detail = f"{job.state.value} exit {job.current.exit_code}: {stderr!r}"
            assert job.state.value == "COMPLETED", detail
            assert engine.logs(job.id).data == b"ok\n"
    finally:
        cleanup_home(home)
        shutil.rmtree(work, ignore_errors=True)
