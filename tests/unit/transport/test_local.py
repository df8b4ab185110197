"""LocalTransport against real subprocesses and real files."""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError, PermanentError, TransientError
from hpcbox.infra.transport import CommandResult, LocalTransport, OutcomeUnknownError
from tests.unit.transport.hostile import ECHO_ARGV, HOSTILE, decode_argv


@pytest.fixture
def local(tmp_path: Path) -> LocalTransport:
    home = tmp_path / "home"
    home.mkdir()
    return LocalTransport(home=str(home))


def home_of(local: LocalTransport) -> Path:
    return Path(local.home())


# -- run --------------------------------------------------------------------------


def test_run_passes_hostile_arguments_verbatim(local: LocalTransport) -> None:
    result = local.run([*ECHO_ARGV, *HOSTILE])
    assert result == CommandResult(0, result.stdout, b"")
    assert decode_argv(result.stdout) == HOSTILE
    assert not Path("/tmp/hpcbox-pwned").exists()


def test_run_reports_exit_code_and_keeps_stderr_apart(local: LocalTransport) -> None:
    result = local.run(["sh", "-c", "echo out; echo err >&2; exit 42"])
    assert result == CommandResult(42, b"out\n", b"err\n")
    assert not result.ok


def test_a_signal_is_a_negative_exit_code(local: LocalTransport) -> None:
    assert local.run(["sh", "-c", "kill -9 $$"]).exit_code == -9


def test_stdin_is_fed_or_empty(local: LocalTransport) -> None:
    data = bytes(range(256)) * 1000
    assert local.run(["cat"], stdin=data).stdout == data
    # Without stdin the command reads end-of-file at once instead of hanging.
    assert local.run(["cat"], timeout=5).stdout == b""


def test_default_cwd_is_home_and_cwd_is_relative_to_it(local: LocalTransport) -> None:
    (home_of(local) / "sub dir").mkdir()
    assert local.run(["pwd"]).stdout.decode().strip() == local.home()
    assert local.run(["pwd"], cwd="sub dir").stdout.decode().strip() == f"{local.home()}/sub dir"


def test_a_missing_cwd_fails_like_cd(local: LocalTransport) -> None:
    result = local.run(["pwd"], cwd="nowhere")
    assert result.exit_code == 1
    assert result.stdout == b""
    assert b"nowhere" in result.stderr


def test_a_missing_program_exits_127_like_a_shell(local: LocalTransport) -> None:
    result = local.run(["hpcbox-no-such-program", "x"])
    assert result.exit_code == 127
    assert b"command not found" in result.stderr


def test_a_non_executable_file_exits_126(local: LocalTransport) -> None:
    script = home_of(local) / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert local.run([str(script)]).exit_code == 126


def test_timeout_kills_the_whole_process_group(local: LocalTransport, tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError) as caught:
        # The child shell's grandchild `sleep` holds the pipes open; it must die too.
        local.run(["sh", "-c", f"sleep 30; touch '{marker}'"], timeout=0.5)
    assert isinstance(caught.value, TransientError)
    assert time.monotonic() - started < 5
    assert not marker.exists()


def test_large_output_on_both_streams_does_not_deadlock(local: LocalTransport) -> None:
    code = "import sys; sys.stdout.buffer.write(b'o' * 5_000_000); sys.stderr.buffer.write(b'e' * 5_000_000)"
    result = local.run([sys.executable, "-c", code])
    assert (len(result.stdout), len(result.stderr)) == (5_000_000, 5_000_000)


@pytest.mark.parametrize("argv", [[], ["a\0b"], "echo hi"])
def test_invalid_argv_is_refused(local: LocalTransport, argv: list[str]) -> None:
    with pytest.raises(InvalidInputError):
        local.run(argv)


def test_run_is_thread_safe(local: LocalTransport) -> None:
    results: dict[int, bytes] = {}

    def work(i: int) -> None:
        results[i] = local.run(["echo", str(i)]).stdout

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: f"{i}\n".encode() for i in range(20)}


# -- files ------------------------------------------------------------------------


def test_put_read_size_remove(local: LocalTransport) -> None:
    local.put_file("jobs/1/script.sh", b"0123456789", mode=0o750)
    path = home_of(local) / "jobs/1/script.sh"
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert local.read_file("jobs/1/script.sh") == b"0123456789"
    assert local.read_file("jobs/1/script.sh", offset=3, limit=4) == b"3456"
    assert local.read_file("jobs/1/script.sh", offset=8, limit=100) == b"89"
    assert local.read_file("jobs/1/script.sh", offset=50) == b""
    assert local.read_file("jobs/1/script.sh", limit=0) == b""
    assert local.file_size("jobs/1/script.sh") == 10
    local.remove("jobs/1/script.sh")
    assert local.file_size("jobs/1/script.sh") is None
    local.remove("jobs/1/script.sh")  # already gone: fine
    assert os.listdir(home_of(local) / "jobs/1") == []  # no temporary file left behind


def test_put_file_mode_ignores_the_umask(local: LocalTransport) -> None:
    old = os.umask(0o077)
    try:
        local.put_file("shared.txt", b"x", mode=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE((home_of(local) / "shared.txt").stat().st_mode) == 0o644


def test_put_file_replaces_content_atomically(local: LocalTransport) -> None:
    local.put_file("f", b"old" * 1000)
    local.put_file("f", b"new")
    assert local.read_file("f") == b"new"


def test_put_file_absolute_path(local: LocalTransport, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "f"
    local.put_file(str(target), b"abs")
    assert target.read_bytes() == b"abs"


def test_put_file_without_parents_fails_permanently(local: LocalTransport) -> None:
    with pytest.raises(PermanentError):
        local.put_file("missing/dir/f", b"x", make_parents=False)


def test_put_file_never_writes_through_a_symlink(local: LocalTransport, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (home_of(local) / "out.txt").symlink_to(victim)
    local.put_file("out.txt", b"attacker-controlled")
    assert victim.read_bytes() == b"precious"
    planted = home_of(local) / "out.txt"
    assert not planted.is_symlink()
    assert planted.read_bytes() == b"attacker-controlled"


def test_reads_do_not_follow_a_symlink(local: LocalTransport, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"root-only")
    (home_of(local) / "link").symlink_to(secret)
    with pytest.raises(PermanentError, match="symlink"):
        local.read_file("link")
    with pytest.raises(PermanentError, match="symlink"):
        local.file_size("link")
    local.remove("link")  # removes the link, not its target
    assert secret.read_bytes() == b"root-only"


def test_reading_a_fifo_or_directory_fails_without_hanging(local: LocalTransport) -> None:
    os.mkfifo(home_of(local) / "fifo")
    (home_of(local) / "dir").mkdir()
    for name in ("fifo", "dir"):
        with pytest.raises(PermanentError, match="regular file"):
            local.read_file(name)
    with pytest.raises(PermanentError):
        local.remove("dir")


def test_missing_things_read_as_empty(local: LocalTransport) -> None:
    assert local.read_file("nope") == b""
    assert local.read_file("nope/deeper") == b""
    assert local.file_size("nope") is None
    local.put_file("file", b"x")
    assert local.read_file("file/under-a-file") == b""


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("read_file", {"offset": -1}),
        ("read_file", {"limit": -1}),
    ],
)
def test_bad_ranges_are_invalid(local: LocalTransport, call: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidInputError):
        getattr(local, call)("f", **kwargs)


def test_bad_paths_and_modes_are_invalid(local: LocalTransport) -> None:
    with pytest.raises(InvalidInputError):
        local.put_file("", b"x")
    with pytest.raises(InvalidInputError):
        local.read_file("a\0b")
    with pytest.raises(InvalidInputError):
        local.put_file("f", b"x", mode=0o10000)


def test_home_defaults_to_the_users_home() -> None:
    assert LocalTransport().home() == os.path.abspath(os.path.expanduser("~"))


def test_closed_transport_refuses_work(local: LocalTransport) -> None:
    with local:
        pass
    with pytest.raises(PermanentError, match="closed"):
        local.run(["true"])
    local.close()  # idempotent
