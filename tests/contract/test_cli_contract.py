"""The ``hpcbox`` command line against issue 2 (item 6) and docs/jobs.md."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from hpcbox import __version__
from hpcbox.jobs.model.spec import parse_job_spec
from tests.contract.conftest import JOB_FIELDS, TERMINAL, Cli, one_line

pytestmark = pytest.mark.integration


def assert_job_json(job: dict[str, object]) -> None:
    missing = [field for field in JOB_FIELDS if field not in job]
    assert not missing, f"job JSON lacks {missing}: {job}"
    assert isinstance(job["id"], int)
    assert isinstance(job["attempts"], list) and job["attempts"]


def test_version(cli: Cli) -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"hpcbox {__version__}"


def test_submit_with_every_flag_and_env_repeated(cli: Cli, tmp_path: Path) -> None:
    workdir = tmp_path / "work dir; $(x)"
    workdir.mkdir()
    text = (
        'echo "pwd=$(pwd)"\n'
        'echo "A=$A"\n'
        'echo "B=$B"\n'
        'echo "C=$C"\n'
        'echo "id=$HPCBOX_JOB_ID name=$HPCBOX_JOB_NAME attempt=$HPCBOX_ATTEMPT"\n'
        'echo "cpus=${HPCBOX_CPUS:-unset} ntasks=${HPCBOX_NTASKS:-unset}"\n'
        'test -n "$PATH" && echo path-ok\n'
    )
    path = cli.script(text, "flags.sh")
    hostile_value = "$(touch /nonexistent/pwn) \"q\" 's' ; `id`"
    out = cli.json(
        "job",
        "submit",
        "--name",
        "flagged",
        "--cpus",
        "2",
        "--ntasks",
        "1",
        "--partition",
        "debug",
        "--mem",
        "512M",
        "--time",
        "10m",
        "--workdir",
        str(workdir),
        "--env",
        "A=1",
        "--env",
        "B=x=y",
        "--env",
        f"C={hostile_value}",
        str(path),
    )
    assert_job_json(out)
    assert out["name"] == "flagged"
    spec = parse_job_spec(out["spec"])
    assert spec.resources.cpus_per_task == 2
    assert spec.resources.ntasks == 1
    assert spec.resources.partition == "debug"
    assert spec.resources.memory == 512 * 1024**2
    assert spec.resources.time_limit == 600
    assert spec.workdir == str(workdir)
    assert spec.env == {"A": "1", "B": "x=y", "C": hostile_value}

    job_id = str(out["id"])
    assert cli("job", "wait", job_id, "--timeout", "30").returncode == 0
    lines = cli.ok("job", "logs", job_id).splitlines()
    assert f"pwd={workdir}" in lines
    assert "A=1" in lines
    assert "B=x=y" in lines
    assert f"C={hostile_value}" in lines
    assert f"id={job_id} name=flagged attempt=1" in lines
    assert "path-ok" in lines
    assert "cpus=2 ntasks=1" in lines


def test_submit_prints_id_returns_at_once_and_runs_with_no_further_command(cli: Cli) -> None:
    path = cli.script("echo one\nsleep 2\necho two\n", "bg.sh")
    started = time.monotonic()
    proc = cli("job", "submit", str(path))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"\d+\n?", proc.stdout), proc.stdout
    assert elapsed < 5, "submit must not wait for the job"
    job_id = int(proc.stdout)
    # The user runs nothing else: a background process picks the job up.
    cli.wait_state(job_id, {"RUNNING", "COMPLETED"}, timeout=15)
    # --follow prints until the job ends.
    follow = cli("job", "logs", str(job_id), "--follow", timeout=30)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout == "one\ntwo\n"
    job = cli.job(job_id)
    assert job["state"] == "COMPLETED"
    assert job["exit_code"] == 0
    assert job["submitted_at"] <= job["started_at"] <= job["finished_at"]


def test_logs_readable_while_running_stderr_and_cancel(cli: Cli) -> None:
    job_id = cli.submit("echo to-out\necho to-err >&2\nsleep 30\n")
    cli.wait_state(job_id, {"RUNNING"})
    deadline = time.monotonic() + 15
    out = cli.ok("job", "logs", str(job_id))
    while out != "to-out\n" and time.monotonic() < deadline:
        time.sleep(0.2)
        out = cli.ok("job", "logs", str(job_id))
    assert out == "to-out\n"
    assert cli.job(job_id)["state"] == "RUNNING"
    assert cli.ok("job", "logs", str(job_id), "--stderr") == "to-err\n"
    proc = cli("job", "cancel", str(job_id))
    assert proc.returncode == 0, proc.stderr
    job = cli.job(job_id)
    assert job["state"] == "CANCELLED"
    assert job["finished_at"] is not None


def test_submit_wait_json_from_stdin_and_exit_codes(cli: Cli) -> None:
    good = cli("job", "submit", "--wait", "--json", "-", stdin="echo from-stdin\n")
    assert good.returncode == 0, good.stderr
    job = json.loads(good.stdout)
    assert_job_json(job)
    assert job["state"] == "COMPLETED"
    assert job["exit_code"] == 0
    assert cli.ok("job", "logs", str(job["id"])) == "from-stdin\n"

    bad = cli("job", "submit", "--wait", "--json", str(cli.script("exit 3\n", "bad.sh")))
    assert bad.returncode != 0
    job = json.loads(bad.stdout)
    assert job["state"] == "FAILED"
    assert job["exit_code"] == 3


def test_wait_timeout_exit_codes_and_rerun_refused_while_running(cli: Cli) -> None:
    done, failed, running = cli.submit_many(
        [("done.sh", "true\n", ()), ("failed.sh", "exit 7\n", ()), ("long.sh", "sleep 60\n", ())]
    )
    cli.wait_state(running, {"RUNNING"})

    started = time.monotonic()
    proc = cli("job", "wait", str(running), "--timeout", "1")
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, "a job that did not COMPLETE must not exit 0"
    assert 1.0 <= elapsed < 10, elapsed

    done_wait, failed_wait = cli.many(
        [
            ("job", "wait", str(done), "--timeout", "30", "--json"),
            ("job", "wait", str(failed), "--timeout", "30"),
        ]
    )
    assert done_wait.returncode == 0
    assert json.loads(done_wait.stdout)["state"] == "COMPLETED"
    assert failed_wait.returncode == 1

    # Rerun only from a terminal state.
    refused = cli("job", "rerun", str(running))
    assert refused.returncode != 0
    assert one_line(refused.stderr), refused.stderr
    job = cli.job(running)
    assert job["state"] == "RUNNING"
    assert len(job["attempts"]) == 1


def test_list_state_filters_pending_resources_and_cancel_pending(cli: Cli) -> None:
    done, failed = cli.submit_many(
        [("a.sh", "true\n", ("--cpus", "1")), ("b.sh", "exit 1\n", ("--cpus", "1"))]
    )
    big = cli.submit("sleep 60\n", "--cpus", "2", name="big.sh")
    cli.wait_state(done, {"COMPLETED"})
    cli.wait_state(failed, {"FAILED"})
    cli.wait_state(big, {"RUNNING"})
    # Both CPUs are taken: the next job waits PENDING (Resources), like SLURM.
    queued = cli.submit("echo should-not-run\n", "--cpus", "1", name="queued.sh")
    time.sleep(0.5)
    job = cli.json("job", "show", str(queued))
    assert_job_json(job)
    assert job["state"] == "PENDING"
    assert job["reason"] == "Resources"
    assert job["started_at"] is None

    everything = cli.json("job", "list")
    assert [j["id"] for j in everything] == sorted([queued, big, failed, done], reverse=True)
    for item in everything:
        assert_job_json(item)
    calls = [
        ("job", "list", "--json", "--state", "COMPLETED"),
        ("job", "list", "--json", "--state", "failed,completed"),
        ("job", "list", "--json", "--state", "RUNNING", "--state", "PENDING"),
        ("job", "list"),
    ]
    completed, finished, active, table = cli.many(calls)
    assert {j["id"] for j in json.loads(completed.stdout)} == {done}
    assert {j["id"] for j in json.loads(finished.stdout)} == {done, failed}
    assert {j["id"] for j in json.loads(active.stdout)} == {big, queued}
    for job_id in (done, failed, big, queued):
        assert re.search(rf"^\s*{job_id}\s", table.stdout, re.MULTILINE), table.stdout

    assert cli("job", "cancel", str(queued)).returncode == 0
    assert cli("job", "cancel", str(big)).returncode == 0
    time.sleep(0.5)
    job = cli.job(queued)
    assert job["state"] == "CANCELLED"
    assert job["started_at"] is None
    assert cli.engine.logs(queued).data == b""


def test_rerun_with_edited_script_keeps_history_and_show(cli: Cli) -> None:
    job_id = cli.submit("echo first\nexit 1\n", "--name", "buggy")
    cli.wait_state(job_id, {"FAILED"})
    fixed = cli.script("echo second\n", "fixed.sh")
    proc = cli("job", "rerun", str(job_id), "--script", str(fixed))
    assert proc.returncode == 0, proc.stderr
    assert cli("job", "wait", str(job_id), "--timeout", "30").returncode == 0
    job = cli.json("job", "show", str(job_id))
    assert_job_json(job)
    assert job["name"] == "buggy"
    assert job["state"] == "COMPLETED"
    assert job["backend"] == "local"
    assert job["native_id"]
    assert [a["state"] for a in job["attempts"]] == ["FAILED", "COMPLETED"]
    latest, first, text = cli.many(
        [
            ("job", "logs", str(job_id)),
            ("job", "logs", str(job_id), "--attempt", "1"),
            ("job", "show", str(job_id)),
        ]
    )
    assert latest.stdout == "second\n"
    assert first.stdout == "first\n"
    assert text.returncode == 0
    assert "buggy" in text.stdout and "COMPLETED" in text.stdout


BAD_INPUT = [
    (("job", "submit", "--mem", "lots", "{script}"), "mem"),
    (("job", "submit", "--time", "soon", "{script}"), "time"),
    (("job", "submit", "--cpus", "0", "{script}"), "cpu"),
    (("job", "submit", "--cpus", "64", "{script}"), "cpu"),
    (("job", "submit", "--env", "NOEQUALS", "{script}"), "env"),
    (("job", "submit", "--env", "1BAD=x", "{script}"), "env"),
    (("job", "submit", "/nonexistent/script.sh"), "script"),
    (("job", "submit", "{empty}"), "script"),
    (("job", "submit", "--workdir", "/nonexistent/dir", "{script}"), "workdir"),
    (("job", "rerun", "1", "--script", "/nonexistent/fixed.sh"), "script"),
    (("job", "list", "--state", "SLEEPING"), "state"),
    (("job", "show", "abc"), "abc"),
    (("job", "show", "1\n2; rm -rf /"), ""),
    (("job", "wait", "0"), ""),
]

USAGE_ERRORS = [
    ("job", "submit", "--cpus", "many", "{script}"),
    ("job", "wait", "1", "--timeout", "soon"),
    ("job", "submit"),
    ("job", "show", "1", "--no-such-flag"),
    ("job", "wait", "-3"),
    ("job", "frobnicate"),
]


def _bad_input(cli: Cli, cases: list[tuple[tuple[str, ...], str]]) -> list[str]:
    """Run the cases side by side; return what breaks the contract (exit 2, one line
    naming the field, nothing queued)."""
    script = cli.script("echo never\n", "never.sh")
    empty = cli.script("   \n", "empty.sh")
    calls = [tuple(a.format(script=script, empty=empty) for a in args) for args, _ in cases]
    problems = []
    for (args, mentions), proc in zip(cases, cli.many(calls), strict=True):
        if proc.returncode != 2 or "Traceback" in proc.stderr or not one_line(proc.stderr):
            problems.append(f"{args}: exit {proc.returncode}, stderr {proc.stderr[-300:]!r}")
        elif mentions not in proc.stderr.lower():
            problems.append(f"{args}: {proc.stderr!r} does not name {mentions!r}")
    assert cli.engine.list_jobs() == [], "nothing may be queued on bad input"
    return problems


def test_bad_input_is_one_line_naming_the_field_and_exit_2(cli: Cli) -> None:
    assert _bad_input(cli, BAD_INPUT) == []


def test_usage_errors_are_one_line_and_exit_2(cli: Cli) -> None:
    assert _bad_input(cli, [(args, "") for args in USAGE_ERRORS]) == []


def test_no_arguments_prints_help_not_a_traceback(cli: Cli) -> None:
    for proc in cli.many([(), ("job",)]):
        assert "Traceback" not in proc.stdout + proc.stderr
        assert "Usage" in proc.stdout + proc.stderr


def test_unknown_id_is_exit_1_one_line(cli: Cli) -> None:
    calls = [
        ("job", "show", "4242"),
        ("job", "show", "4242", "--json"),
        ("job", "logs", "4242"),
        ("job", "logs", "4242", "--stderr"),
        ("job", "cancel", "4242"),
        ("job", "rerun", "4242"),
        ("job", "wait", "4242", "--timeout", "1"),
    ]
    for args, proc in zip(calls, cli.many(calls), strict=True):
        assert proc.returncode == 1, (args, proc.returncode, proc.stderr)
        assert one_line(proc.stderr), (args, proc.stderr)
        assert "4242" in proc.stderr
        assert proc.stdout == ""


def test_memory_and_time_limit_forms(cli: Cli) -> None:
    cases = [
        ("90", 5400, "512M", 512 * 1024**2),
        ("10m", 600, "2G", 2 * 1024**3),
        ("1:30:00", 5400, "1024K", 1024 * 1024),
        ("2-00:00:00", 2 * 86400, "64M", 64 * 1024**2),
    ]
    path = str(cli.script("true\n", "forms.sh"))
    calls = [
        ("job", "submit", "--json", "--time", time_limit, "--mem", memory, path)
        for time_limit, _, memory, _ in cases
    ]
    for (time_limit, seconds, memory, size), proc in zip(cases, cli.many(calls), strict=True):
        assert proc.returncode == 0, proc.stderr
        job = json.loads(proc.stdout)
        resources = parse_job_spec(job["spec"]).resources
        assert resources.time_limit == seconds, time_limit
        assert resources.memory == size, memory
        stored = parse_job_spec(cli.job(job["id"])["spec"]).resources
        assert (stored.time_limit, stored.memory) == (seconds, size)


def test_doctor_and_serve_refusal(cli: Cli) -> None:
    doctor, serve = cli.many([("doctor",), ("serve", "--host", "0.0.0.0", "--port", "1")])
    # This machine has bubblewrap and cgroups: what local jobs need is present.
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    text = doctor.stdout.lower()
    assert "bubblewrap" in text or "bwrap" in text
    assert "cgroup" in text
    # It also says what cannot run here and what to install.
    assert "install" in text
    # Listening on a non-loopback address without a token is refused: bad input.
    assert serve.returncode == 2
    assert one_line(serve.stderr), serve.stderr
    assert "HPCBOX_API_TOKEN" in serve.stderr


def test_concurrent_submissions_each_run_exactly_once(cli: Cli) -> None:
    runs = cli.cwd / "runs"
    path = str(cli.script(f'echo once\necho "$HPCBOX_JOB_ID" >> "{runs}"\n', "once.sh"))
    procs = cli.many([("job", "submit", path)] * 6)
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    ids = sorted(int(p.stdout) for p in procs)
    assert ids == list(range(1, 7))
    for job_id in ids:
        assert cli.wait_state(job_id, TERMINAL)["state"] == "COMPLETED"
        assert cli.engine.logs(job_id).data == b"once\n"
    assert sorted(int(line) for line in runs.read_text().split()) == ids
