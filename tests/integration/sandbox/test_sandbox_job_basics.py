"""Profile "job" on the real machine: exit status, output, isolation, verbatim values."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.backends.local.sandbox import LaunchRequest, Sandbox

from .conftest import ENV

pytestmark = pytest.mark.integration

HOSTILE = [
    "a b",
    "'single'",
    '"double"',
    "; rm -rf / ;",
    "$(touch /tmp/pwned)",
    "`id`",
    "line1\nline2\n",
    "tab\there",
    "ünïcödé ☃ 🚀",
    "",
    "--",
    "-",
    "--bind",
    "*",
    "\\",
    "%s %d",
    "$HOME",
    "x" * 100_000,
]

Make = Callable[..., LaunchRequest]


def test_exit_code_and_output(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req(["sh", "-c", "echo out; echo err >&2; exit 3"])
    outcome = sandbox.run(req, timeout=30)
    assert (outcome.exit_code, outcome.signal, outcome.lost) == (3, None, False)
    assert outcome.oom_killed is False
    assert outcome.cpu_time_s > 0
    assert outcome.peak_memory_bytes > 0
    assert 0 < outcome.wall_time_s < 10
    assert Path(req.stdout_path).read_text() == "out\n"
    assert Path(req.stderr_path).read_text() == "err\n"


def test_output_is_appended(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req(["echo", "second"])
    Path(req.stdout_path).write_text("first\n")
    assert sandbox.run(req, timeout=30).exit_code == 0
    assert Path(req.stdout_path).read_text() == "first\nsecond\n"


@pytest.mark.parametrize("sig", [9, 15, 11])
def test_death_by_signal_is_reported_as_signal(sandbox: Sandbox, make_req: Make, sig: int) -> None:
    outcome = sandbox.run(make_req(["sh", "-c", f"kill -{sig} $$"]), timeout=30)
    assert (outcome.exit_code, outcome.signal, outcome.lost) == (None, sig, False)


def test_missing_workdir_is_a_failed_setup(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req(["true"], workdir=f"/nonexistent-{uuid.uuid4().hex}")
    outcome = sandbox.run(req, timeout=30)
    assert (outcome.exit_code, outcome.lost) == (1, False)
    assert "chdir" in Path(req.stderr_path).read_text()


def test_unknown_command_exits_127(sandbox: Sandbox, make_req: Make) -> None:
    outcome = sandbox.run(make_req([f"no-such-command-{uuid.uuid4().hex}"]), timeout=30)
    assert outcome.exit_code == 127


def test_hostile_argv_arrives_verbatim(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req(["/usr/bin/printf", "%s\\0", *HOSTILE])
    assert sandbox.run(req, timeout=30).exit_code == 0
    expected = b"".join(arg.encode() + b"\0" for arg in HOSTILE)
    assert Path(req.stdout_path).read_bytes() == expected


def _env_inside(sandbox: Sandbox, make_req: Make, env: dict[str, str]) -> dict[str, str]:
    req = make_req(["/usr/bin/env", "-0"], env=env)
    assert sandbox.run(req, timeout=30).exit_code == 0
    items = Path(req.stdout_path).read_bytes().decode().split("\0")
    assert items[-1] == ""
    return dict(item.split("=", 1) for item in items[:-1])


def test_hostile_env_arrives_exactly(sandbox: Sandbox, make_req: Make) -> None:
    env = dict(ENV)
    env.update({f"H{i}": value for i, value in enumerate(HOSTILE)})
    env.update({"A-B.c": "odd name", "EMPTY": "", "NL": "a\nb=c"})
    assert _env_inside(sandbox, make_req, env) == env


def test_requested_pwd_is_kept(sandbox: Sandbox, make_req: Make) -> None:
    env = dict(ENV, PWD="/somewhere/else")
    assert _env_inside(sandbox, make_req, env) == env


def test_symlinked_output_is_refused(
    sandbox: Sandbox, make_req: Make, tmp_path: Path, parent_group: str
) -> None:
    target = tmp_path / "victim"
    target.write_text("precious\n")
    req = make_req(["echo", "overwritten"])
    os.symlink(target, req.stdout_path)
    with pytest.raises(InvalidInputError, match="symlink"):
        sandbox.launch(req)
    assert target.read_text() == "precious\n"
    assert not sandbox.driver.exists(f"{parent_group}/{req.run_id}")


def test_private_tmp_but_shared_files(sandbox: Sandbox, make_req: Make, tmp_path: Path) -> None:
    secret = Path(f"/tmp/hpcbox-private-{uuid.uuid4().hex}")
    (tmp_path / "planted").write_text("from outside\n")
    script = 'echo inside > "$1"; cat planted; echo made > made; ls -A /tmp | grep -c . || true'
    req = make_req(["sh", "-c", script, "sh", str(secret)])
    assert sandbox.run(req, timeout=30).exit_code == 0
    assert not secret.exists()
    assert (tmp_path / "made").read_text() == "made\n"
    lines = Path(req.stdout_path).read_text().splitlines()
    assert lines[0] == "from outside"
    # The private /tmp holds the secret and the re-bound workdir's top directory.
    assert int(lines[1]) <= 2


def test_workdir_outside_tmp(sandbox: Sandbox, make_req: Make) -> None:
    workdir = Path(f"/var/tmp/hpcbox-test-{uuid.uuid4().hex}")
    workdir.mkdir()
    try:
        req = make_req(["sh", "-c", "pwd; echo hi > file"], workdir=str(workdir))
        assert sandbox.run(req, timeout=30).exit_code == 0
        assert (workdir / "file").read_text() == "hi\n"
        assert Path(req.stdout_path).read_text() == f"{workdir}\n"
    finally:
        shutil.rmtree(workdir)
