"""SLURM command lines and their output.

The output samples were captured from SLURM 22.05.8 (hpcbox's own container
cluster, with accounting) with exactly the argv lists built here.
"""

from __future__ import annotations

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.backends.slurm.commands import (
    SlurmStatus,
    is_accounting_disabled,
    is_job_gone,
    parse_sacct,
    parse_sbatch,
    parse_squeue,
    sacct_argv,
    sacct_by_name_argv,
    sbatch_argv,
    scancel_argv,
    squeue_argv,
    squeue_by_name_argv,
)
from hpcbox.jobs.model.states import JobState

SQUEUE_SAMPLE = """\
13|PENDING|2027-11-22T14:42:28|NONE||/home/alice|Resources
14|PENDING|2027-11-22T14:42:28|NONE||/home/alice|Priority
5|PENDING|2026-11-22T15:39:36|NONE||/home/alice|BeginTime
6|PENDING|N/A|N/A||/home/alice|JobHeldUser
12|RUNNING|2026-11-22T14:42:28|2027-11-22T14:42:28|worker1|/home/alice|None
2|FAILED|2026-11-22T14:39:11|2026-11-22T14:39:11|worker1|/home/alice|NonZeroExitCode
7|TIMEOUT|2026-11-22T14:39:36|2026-11-22T14:41:04|worker1|/home/alice|TimeLimit
11|COMPLETED|2026-11-22T14:41:58|2026-11-22T14:41:58|worker1|/home/alice/we ird%j #"x'q$(id)/.hpcbox/jobs/3/1|None
15|CANCELLED|2026-11-22T14:42:33|2026-11-22T14:42:33||/home/alice|Resources
"""

SACCT_SAMPLE = """\
1|COMPLETED|0:0|2026-11-22T14:39:11|2026-11-22T14:39:31|worker1|None|/home/alice
2|FAILED|3:0|2026-11-22T14:39:11|2026-11-22T14:39:11|worker1|None|/home/alice
3|FAILED|0:9|2026-11-22T14:39:12|2026-11-22T14:39:12|worker1|None|/home/alice
5|CANCELLED by 2000|0:0|None|2026-11-22T14:39:46|None assigned|BeginTime|/home/alice
7|TIMEOUT|0:0|2026-11-22T14:39:36|2026-11-22T14:41:04|worker1|None|/home/alice
12|CANCELLED by 2000|0:0|2026-11-22T14:42:28|2026-11-22T14:42:33|worker1|None|/home/alice
16|RUNNING|0:0|2026-11-22T14:39:36|Unknown|worker1|None|/home/alice
17|PENDING|0:0|Unknown|Unknown|None assigned|JobHeldUser|/home/alice
11|COMPLETED|0:0|2026-11-22T14:41:58|2026-11-22T14:41:58|worker1|None|/home/alice/we ird%j #`x'q$(id)/.hpcbox/jobs/3/1
"""

SHELL_METACHARACTERS = set(";&|<>`$()\"' \t\n*?[]{}\\")


# --- argv ---


def test_sbatch_argv() -> None:
    assert sbatch_argv("/home/a/.hpcbox/jobs/1/1/batch.sh") == [
        "sbatch",
        "--parsable",
        "/home/a/.hpcbox/jobs/1/1/batch.sh",
    ]
    assert sbatch_argv("/h/b.sh", chdir="/h/d ir; $(x)") == [
        "sbatch",
        "--parsable",
        "--chdir=/h/d ir; $(x)",
        "/h/b.sh",
    ]


@pytest.mark.parametrize(("script", "chdir"), [("b.sh", None), ("-x", None), ("/b.sh", "rel")])
def test_sbatch_argv_wants_absolute_paths(script: str, chdir: str | None) -> None:
    with pytest.raises(ValueError, match="absolute"):
        sbatch_argv(script, chdir=chdir)


def test_squeue_argv_is_one_call_for_all_jobs() -> None:
    argv = squeue_argv([str(n) for n in range(1, 1001)])
    assert argv[:3] == ["env", "SLURM_TIME_FORMAT=standard", "squeue"]
    assert "--states=all" in argv
    assert "--noheader" in argv
    jobs = [arg for arg in argv if arg.startswith("--jobs=")]
    assert jobs == ["--jobs=" + ",".join(str(n) for n in range(1, 1001))]
    assert "--format=%i|%T|%S|%e|%N|%Z|%r" in argv


def test_sacct_argv_is_one_call_for_all_jobs() -> None:
    argv = sacct_argv(["7", "8"])
    assert argv == [
        "env",
        "SLURM_TIME_FORMAT=standard",
        "sacct",
        "--noheader",
        "--parsable2",
        "--allocations",
        "--jobs=7,8",
        "--format=JobID,State,ExitCode,Start,End,NodeList,Reason,WorkDir",
    ]


def test_by_name_lookups() -> None:
    argv = squeue_by_name_argv("hpcbox-42")
    assert "--me" in argv
    assert "--name=hpcbox-42" in argv
    assert "--states=all" in argv
    argv = sacct_by_name_argv("hpcbox-42")
    assert "--name=hpcbox-42" in argv
    assert "--starttime=now-7days" in argv
    assert "--starttime=2026-01-01" in sacct_by_name_argv("hpcbox-42", since="2026-01-01")


def test_scancel_argv() -> None:
    assert scancel_argv(["1", "22"]) == ["scancel", "1", "22"]


@pytest.mark.parametrize(
    "build", [squeue_argv, sacct_argv, scancel_argv], ids=["squeue", "sacct", "scancel"]
)
@pytest.mark.parametrize("ids", [[], "12", ["1,2"], ["1;id"], ["$(id)"], ["-1"], ["12 "]])
def test_job_ids_must_be_numbers(build: object, ids: object) -> None:
    # An empty list would make squeue list every job on the cluster.
    with pytest.raises(ValueError):
        build(ids)  # type: ignore[operator]


@pytest.mark.parametrize("name", ["", "a,b", "a b", "x;id", "$(id)"])
def test_names_looked_up_are_plain(name: str) -> None:
    with pytest.raises(ValueError):
        squeue_by_name_argv(name)
    with pytest.raises(ValueError):
        sacct_by_name_argv(name)


def test_argv_elements_are_never_shell_words() -> None:
    # They are argv: each element is one argument as it stands. The fixed parts
    # hold no shell metacharacter, so even a careless join could not split them.
    for argv in (sacct_argv(["1"]), scancel_argv(["1"]), sbatch_argv("/a/b")):
        for arg in argv:
            assert not SHELL_METACHARACTERS & set(arg), arg
    # squeue's format has '|' and '%': one element, not a pipe.
    argv = squeue_argv(["1"])
    assert sum(1 for arg in argv if "|" in arg) == 1


# --- sbatch ---


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [
        ("123\n", "123"),
        ("123;cluster-a\n", "123"),
        ("  9 \n", "9"),
        ("Welcome to the login node!\n\n4567\n", "4567"),
    ],
)
def test_parse_sbatch(stdout: str, job_id: str) -> None:
    assert parse_sbatch(stdout) == job_id


@pytest.mark.parametrize(
    "stdout",
    ["", "\n", "Submitted batch job 12\n", "12;\n", "abc\n", "12 13\n", "12\nwarning: x\n"],
)
def test_parse_sbatch_refuses_garbage(stdout: str) -> None:
    with pytest.raises(PermanentError, match="sbatch printed no job id"):
        parse_sbatch(stdout)


def test_parse_sbatch_shortens_long_garbage() -> None:
    with pytest.raises(PermanentError) as caught:
        parse_sbatch("x" * 10_000)
    assert len(str(caught.value)) < 300


# --- squeue ---


def test_parse_squeue_real_output() -> None:
    statuses = parse_squeue(SQUEUE_SAMPLE)
    assert list(statuses) == ["13", "14", "5", "6", "12", "2", "7", "11", "15"]
    assert statuses["13"] == SlurmStatus(
        native_id="13",
        native_state="PENDING",
        reason="Resources",
        exit_code=None,
        signal=None,
        state=JobState.PENDING,
        start="2027-11-22T14:42:28",
        end=None,
        node_list=None,
        work_dir="/home/alice",
    )
    running = statuses["12"]
    assert (running.state, running.reason, running.node_list) == (JobState.RUNNING, None, "worker1")
    assert statuses["6"].start is None
    assert statuses["7"].state is JobState.TIMEOUT
    assert statuses["7"].reason == "TimeLimit"
    assert statuses["2"].state is JobState.FAILED
    assert statuses["2"].exit_code is None  # squeue has no exit codes
    assert statuses["15"].state is JobState.CANCELLED
    assert statuses["11"].work_dir == "/home/alice/we ird%j #\"x'q$(id)/.hpcbox/jobs/3/1"


def test_parse_squeue_keeps_pipes_in_the_reason() -> None:
    line = "4|PENDING|N/A|N/A||/home/a|launch failed | requeued held\n"
    assert parse_squeue(line)["4"].reason == "launch failed | requeued held"


def test_parse_squeue_ignores_chatter_and_blank_lines() -> None:
    text = "Welcome!\n\nlast login: yesterday\n" + SQUEUE_SAMPLE + "\n"
    assert len(parse_squeue(text)) == 9
    assert parse_squeue("") == {}


def test_parse_squeue_refuses_short_records() -> None:
    with pytest.raises(PermanentError, match="unexpected squeue output line"):
        parse_squeue("12|RUNNING|2026-11-22T14:42:28\n")


def test_unknown_states_parse_with_no_hpcbox_state() -> None:
    status = parse_squeue("8|LAUNCH_FAILED|N/A|N/A||/h|None\n")["8"]
    assert status.native_state == "LAUNCH_FAILED"
    assert status.state is None


def test_compact_and_complete_state_forms_parse() -> None:
    text = "1|CG|N/A|N/A|n1|/h|None\n2|RUNNING,COMPLETING|N/A|N/A|n1|/h|None\n"
    statuses = parse_squeue(text)
    assert statuses["1"].native_state == "COMPLETING"
    assert statuses["2"].native_state == "RUNNING"
    assert {s.state for s in statuses.values()} == {JobState.RUNNING}


# --- sacct ---


def test_parse_sacct_real_output() -> None:
    statuses = parse_sacct(SACCT_SAMPLE)
    done = statuses["1"]
    assert (done.state, done.exit_code, done.signal) == (JobState.COMPLETED, 0, None)
    assert (done.start, done.end) == ("2026-11-22T14:39:11", "2026-11-22T14:39:31")
    failed = statuses["2"]
    assert (failed.state, failed.exit_code, failed.signal) == (JobState.FAILED, 3, None)
    killed = statuses["3"]
    assert (killed.state, killed.exit_code, killed.signal) == (JobState.FAILED, 0, 9)
    cancelled = statuses["12"]
    assert (cancelled.native_state, cancelled.state) == ("CANCELLED", JobState.CANCELLED)
    assert cancelled.reason == "cancelled by uid 2000"
    # SLURM's own reason wins over the "by" note.
    assert statuses["5"].reason == "BeginTime"
    assert (statuses["5"].start, statuses["5"].node_list) == (None, None)
    assert statuses["7"].state is JobState.TIMEOUT
    assert (statuses["16"].state, statuses["16"].end) == (JobState.RUNNING, None)
    assert statuses["17"].state is JobState.PENDING
    assert statuses["11"].work_dir == "/home/alice/we ird%j #`x'q$(id)/.hpcbox/jobs/3/1"


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [
        ("0:0", (0, None)),
        ("1:0", (1, None)),
        ("127:0", (127, None)),
        ("0:9", (0, 9)),
        ("0:15", (0, 15)),
        ("255:0", (255, None)),
        ("", (None, None)),
        ("x:y", (None, None)),
        ("3", (None, None)),
    ],
)
def test_exit_codes_and_signals(exit_code: str, expected: tuple[int | None, int | None]) -> None:
    status = parse_sacct(f"9|FAILED|{exit_code}|N/A|N/A|n1|None|/h\n")["9"]
    assert (status.exit_code, status.signal) == expected


def test_parse_sacct_keeps_pipes_in_the_work_dir() -> None:
    status = parse_sacct("9|COMPLETED|0:0|N/A|N/A|n1|None|/home/a|b/.hpcbox/jobs/1/1\n")["9"]
    assert status.work_dir == "/home/a|b/.hpcbox/jobs/1/1"


def test_parse_sacct_skips_steps_and_truncated_states() -> None:
    text = (
        "9|CANCELL+|0:15|N/A|N/A|n1|None|/h\n"
        "9.batch|CANCELLED|0:15|N/A|N/A|n1|None|/h\n"
        "9.0|CANCELLED|0:15|N/A|N/A|n1|None|/h\n"
    )
    statuses = parse_sacct(text)
    assert list(statuses) == ["9"]
    assert statuses["9"].native_state == "CANCELLED"
    assert statuses["9"].signal == 15


def test_parse_sacct_refuses_short_records() -> None:
    with pytest.raises(PermanentError, match="unexpected sacct output line"):
        parse_sacct("9|COMPLETED|0:0\n")


# --- failures that are not failures ---


def test_is_job_gone() -> None:
    assert is_job_gone("slurm_load_jobs error: Invalid job id specified\n")
    assert is_job_gone("scancel: error: Kill job error on job id 9: Invalid job id specified\n")
    assert is_job_gone(
        "scancel: error: Kill job error on job id 9: Job/step already completing or completed\n"
    )
    assert not is_job_gone(
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    )
    assert not is_job_gone("")


def test_is_accounting_disabled() -> None:
    assert is_accounting_disabled("Slurm accounting storage is disabled\n")
    assert not is_accounting_disabled(
        "sacct: error: Problem talking to the database: Connection refused\n"
    )
