"""Batch scripts for SLURM: golden files, hostile input, and the wrapper run by bash.

Each case renders one spec and compares it with ``golden/<case>.sh``. After an
intended change to the renderer, rewrite the golden files and review the diff::

    HPCBOX_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/backends/slurm/test_slurm_script.py

A test that rewrites a file still fails once, so that a rewrite is never
mistaken for a pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.backends.slurm.script import (
    is_attempt_dir,
    job_dir,
    job_files,
    job_name,
    render_batch_script,
    user_directives,
    user_script,
)
from hpcbox.jobs.model.spec import parse_job_spec

GOLDEN = Path(__file__).parent / "golden"
# Read at import time: the suite's autouse fixture removes HPCBOX_* variables.
UPDATE = os.environ.get("HPCBOX_UPDATE_GOLDEN") == "1"
HOME = "/home/alice"
HOSTILE = 'it\'s "q" $(id) `id` ; | & > $HOME \\ é漢\nsecond line\t*'

CASES: dict[str, dict[str, Any]] = {
    "plain-script": {"script": "echo hello\n"},
    "shebang-with-directives": {
        "script": (
            "#!/usr/bin/env python3\n"
            "# a comment\n"
            "#SBATCH --account=proj-1\n"
            "\n"
            "#SBATCH --gres=gpu:1 # one GPU\n"
            "import sys\n"
            "#SBATCH --comment=too-late\n"
            "print(sys.argv)\n"
        ),
    },
    "hostile-command": {
        "command": ["printf", "[%s]\\n", "a b", "$(id)", "`id`", "'\"", "-n", HOSTILE, ""],
    },
    "hostile-env-and-workdir": {
        "script": 'echo "$A"\n',
        "env": {"A": HOSTILE, "EMPTY": "", "B": "$(touch /tmp/pwned)'\"'"},
        "workdir": "/data/work dir 'q' $(x)/\n;rm -rf /",
    },
    "resources": {
        "script": "srun hostname\n",
        "name": "the user's name; $(id)\n#SBATCH --wrap=x",
        "resources": {
            "nodes": 2,
            "ntasks": 8,
            "cpus_per_task": 4,
            "memory": "1536K",
            "time_limit": "2-00:00:30",
            "partition": "gpu.a100",
        },
    },
}


def check_golden(name: str, text: str) -> None:
    """Compare ``text`` with golden file ``name`` (or rewrite it when updating)."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        pytest.fail(f"rewrote {path}; review the diff and run again without HPCBOX_UPDATE_GOLDEN")
    assert path.exists(), f"missing golden file {path}; run with HPCBOX_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_script_golden(case: str) -> None:
    spec = parse_job_spec(CASES[case])
    check_golden(f"{case}.sh", render_batch_script(spec, job_id=42, attempt=3, home=HOME))


def test_names_and_paths() -> None:
    assert job_name(7) == "hpcbox-7"
    assert job_dir(7, 2, home="/home/alice/") == "/home/alice/.hpcbox/jobs/7/2"
    files = job_files(7, 2, home="/home/alice")
    assert files.dir == "/home/alice/.hpcbox/jobs/7/2"
    assert files.batch == f"{files.dir}/batch.sh"
    assert files.script == f"{files.dir}/script"
    assert (files.stdout, files.stderr) == (f"{files.dir}/stdout", f"{files.dir}/stderr")
    assert files.exit_code == f"{files.dir}/exit_code"


@pytest.mark.parametrize(("job_id", "attempt", "home"), [(0, 1, HOME), (1, 0, HOME), (1, 1, "rel")])
def test_bad_ids_and_relative_homes_are_refused(job_id: int, attempt: int, home: str) -> None:
    with pytest.raises(ValueError):
        job_dir(job_id, attempt, home=home)


@pytest.mark.parametrize("home", ["/home/a\nb", "/home/a\\b"])
def test_homes_that_no_output_directive_can_hold_are_refused(home: str) -> None:
    spec = parse_job_spec({"script": "true\n"})
    with pytest.raises(PermanentError):
        render_batch_script(spec, job_id=1, attempt=1, home=home)


def test_attempts_are_told_apart_by_work_dir() -> None:
    work_dir = job_dir(7, 2, home=HOME)
    assert is_attempt_dir(work_dir, 7, 2)
    assert not is_attempt_dir(work_dir, 7, 1)
    assert not is_attempt_dir(work_dir, 17, 2)
    assert not is_attempt_dir(None, 7, 2)
    # slurmdbd stores '"' as '`': only the tail is compared.
    assert is_attempt_dir("/home/we`ird/.hpcbox/jobs/7/2", 7, 2)


def test_user_script_is_verbatim() -> None:
    text = "#!/bin/sh\r\necho 'hi'\n\n"
    assert user_script(parse_job_spec({"script": text})) == text
    assert user_script(parse_job_spec({"command": ["true"]})) is None


def test_user_directives_stop_where_sbatch_stops() -> None:
    script = (
        "#!/bin/bash\n#SBATCH -A x\n  # indented comment\n\n#SBATCH --qos=y\r\necho\n#SBATCH -N 9\n"
    )
    assert user_directives(script) == ["#SBATCH -A x", "#SBATCH --qos=y\r"]
    assert user_directives("echo\n#SBATCH -N 2\n") == []


def test_memory_is_rounded_up_to_whole_megabytes() -> None:
    spec = parse_job_spec({"script": "true\n", "resources": {"memory": "1025K"}})
    assert "#SBATCH --mem=2M\n" in render_batch_script(spec, job_id=1, attempt=1, home=HOME)


def test_the_name_never_reaches_the_script() -> None:
    spec = parse_job_spec(CASES["resources"])
    text = render_batch_script(spec, job_id=42, attempt=3, home=HOME)
    assert "user's name" not in text
    assert "--wrap" not in text


# --- the wrapper, run by bash (without SLURM the #SBATCH lines are comments) ---


def _run(tmp_path: Path, data: dict[str, Any], *, home: Path | None = None) -> tuple[str, str]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    home = home or tmp_path / "home"
    spec = parse_job_spec(data)
    files = job_files(1, 1, home=str(home))
    Path(files.dir).mkdir(parents=True)
    Path(files.batch).write_text(render_batch_script(spec, job_id=1, attempt=1, home=str(home)))
    if (text := user_script(spec)) is not None:
        Path(files.script).write_text(text)
    done = subprocess.run(
        [bash, files.batch], capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path
    )
    code = Path(files.exit_code).read_text()
    assert code == f"{done.returncode}\n"
    assert not Path(files.exit_code + ".tmp").exists()
    return done.stdout, code


def test_wrapper_passes_hostile_env_and_workdir_verbatim(tmp_path: Path) -> None:
    workdir = tmp_path / "work dir 'q' $(x)\n;x"
    workdir.mkdir()
    out, code = _run(
        tmp_path,
        {
            "script": 'printf "%s|" "$A" "$B" "$(pwd)"\nexit 3\n',
            "env": {"A": HOSTILE, "B": ""},
            "workdir": str(workdir),
        },
    )
    assert out == f"{HOSTILE}||{workdir}|"
    assert code == "3\n"


def test_wrapper_runs_hostile_argv_verbatim(tmp_path: Path) -> None:
    argv = ["printf", "[%s]", "a b", "$(id)", "`id`", "'\"", "-n", HOSTILE, ""]
    out, code = _run(tmp_path, {"command": argv})
    assert out == "".join(f"[{arg}]" for arg in argv[2:])
    assert code == "0\n"


def test_wrapper_honours_the_scripts_shebang(tmp_path: Path) -> None:
    out, _ = _run(tmp_path, {"script": '#!/bin/sh\necho "$0"\n'})
    assert out.strip().endswith("/script")


def test_wrapper_runs_scripts_without_shebang_with_bash(tmp_path: Path) -> None:
    out, code = _run(tmp_path, {"script": "echo ${BASH_VERSION:+bash}\nfalse\n"})
    assert (out, code) == ("bash\n", "1\n")


def test_wrapper_reports_a_missing_workdir(tmp_path: Path) -> None:
    out, code = _run(tmp_path, {"script": "echo ran\n", "workdir": str(tmp_path / "nope")})
    assert (out, code) == ("", "1\n")


def test_wrapper_env_does_not_reach_the_trailer(tmp_path: Path) -> None:
    # A PATH without mv must not stop the exit code from being recorded.
    _, code = _run(tmp_path, {"script": "exit 4\n", "env": {"PATH": "/nonexistent"}})
    assert code == "4\n"


def test_wrapper_works_under_a_hostile_home(tmp_path: Path) -> None:
    home = tmp_path / "we ird%j #\"x'q$(id)"
    out, code = _run(tmp_path, {"script": "echo ok\n"}, home=home)
    assert (out, code) == ("ok\n", "0\n")
