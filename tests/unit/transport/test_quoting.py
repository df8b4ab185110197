"""shell_command: what a real POSIX shell makes of the line must be the argv given."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.transport import MAX_COMMAND_BYTES, shell_command
from tests.unit.transport.hostile import ECHO_ARGV, HOSTILE, decode_argv

SHELLS = [name for name in ("sh", "dash", "bash", "zsh", "ksh") if shutil.which(name)]


def _via_shell(shell: str, line: str, cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([shell, "-c", line], capture_output=True, cwd=cwd, check=False)


@pytest.mark.parametrize("shell", SHELLS)
def test_hostile_arguments_reach_the_program_verbatim(shell: str) -> None:
    result = _via_shell(shell, shell_command([*ECHO_ARGV, *HOSTILE]))
    assert result.returncode == 0, result.stderr
    assert decode_argv(result.stdout) == HOSTILE


@pytest.mark.parametrize("shell", SHELLS)
def test_each_hostile_argument_alone(shell: str) -> None:
    for arg in HOSTILE:
        result = _via_shell(shell, shell_command([*ECHO_ARGV, arg]))
        assert decode_argv(result.stdout) == [arg]


def test_a_very_long_argument_fits() -> None:
    arg = "ä'$;" * 10_000  # 90 kB on the line once quoted, every fourth character a quote
    result = _via_shell("sh", shell_command([*ECHO_ARGV, arg]))
    assert decode_argv(result.stdout) == [arg]


@pytest.mark.parametrize("word", ["if", "until", "A=1", "!", "{", "done"])
def test_the_program_name_is_never_a_keyword_or_assignment(word: str) -> None:
    # A bare `if` is a syntax error (status 2) and `A=1` an assignment (status 0);
    # quoted, each is just a program that does not exist.
    result = _via_shell("sh", shell_command([word]))
    assert result.returncode == 127


def test_cwd_is_quoted_and_checked(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    weird = root / "dir with 'quote' $(x) ; and\nnewline"
    weird.mkdir()
    ok = _via_shell("sh", shell_command(["pwd"], cwd=str(weird)))
    assert ok.stdout.decode() == f"{weird}\n"
    missing = _via_shell("sh", shell_command(["pwd"], cwd=str(root / "missing")))
    assert missing.returncode != 0
    assert missing.stdout == b""


def test_cwd_with_a_leading_dash_is_not_an_option(tmp_path: object) -> None:
    from pathlib import Path

    (Path(str(tmp_path)) / "-P").mkdir()
    line = shell_command(["pwd"], cwd="-P")
    assert line.startswith("cd ./-P && ")
    result = _via_shell("sh", line, cwd=str(tmp_path))
    assert result.stdout.decode().strip().endswith("/-P")


@pytest.mark.parametrize(
    ("argv", "cwd"),
    [
        ([], None),
        (["echo", "a\0b"], None),
        (["echo"], ""),
        (["echo"], "a\0b"),
        (["echo", "\udcff"], None),  # a surrogate escape cannot travel as UTF-8
        (["echo", "x" * MAX_COMMAND_BYTES], None),
    ],
)
def test_impossible_command_lines_are_invalid_input(argv: list[str], cwd: str | None) -> None:
    with pytest.raises(InvalidInputError):
        shell_command(argv, cwd=cwd)


def test_a_single_string_is_not_an_argv() -> None:
    with pytest.raises(InvalidInputError, match="sequence"):
        shell_command("echo hi")
