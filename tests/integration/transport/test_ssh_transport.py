"""SshTransport against a real OpenSSH server (see conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncssh
import pytest

from hpcbox.core.errors import PermanentError, TransientError
from hpcbox.infra.transport import Backoff, CommandResult, OutcomeUnknownError, SshTransport
from tests.integration.transport.conftest import FAST_BACKOFF, Sshd, descendants
from tests.unit.transport.hostile import ECHO_ARGV, HOSTILE, decode_argv

pytestmark = pytest.mark.integration


# -- commands ---------------------------------------------------------------------


def test_hostile_argv_is_echoed_back_verbatim(transport: SshTransport) -> None:
    result = transport.run([*ECHO_ARGV, *HOSTILE])
    assert result.exit_code == 0, result.stderr
    assert decode_argv(result.stdout) == HOSTILE
    assert not Path("/tmp/hpcbox-pwned").exists()


def test_a_long_argument_travels_intact(transport: SshTransport) -> None:
    arg = "ä'$;`\n" * 10_000
    assert decode_argv(transport.run([*ECHO_ARGV, arg]).stdout) == [arg]


def test_stdin_exit_codes_and_separate_stderr(transport: SshTransport) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert transport.run(["cat"], stdin=data).stdout == data
    assert transport.run(["cat"], timeout=10).stdout == b""  # no stdin: EOF at once
    assert transport.run(["sh", "-c", "echo out; echo err >&2; exit 42"]) == CommandResult(
        42, b"out\n", b"err\n"
    )
    assert transport.run(["true"]).exit_code == 0
    assert transport.run(["sh", "-c", "kill -9 $$"]).exit_code == -9
    assert transport.run(["hpcbox-no-such-program"]).exit_code == 127


def test_cwd_with_hostile_name(transport: SshTransport, tmp_path: Path) -> None:
    assert transport.run(["pwd"]).stdout.decode().strip() == transport.home()
    weird = str(tmp_path / "dir 'q' $(x) ;\nnl ✓")
    transport.put_file(f"{weird}/marker", b"")
    assert transport.run(["pwd"], cwd=weird).stdout.decode() == f"{weird}\n"
    missing = transport.run(["pwd"], cwd=str(tmp_path / "no-such-dir"))
    assert missing.exit_code != 0
    assert missing.stdout == b""


def test_huge_output_is_intact(transport: SshTransport) -> None:
    code = (
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 40960);"
        "sys.stderr.buffer.write(b'e' * 1_000_000)"
    )
    result = transport.run([sys.executable, "-c", code], timeout=120)
    assert result.exit_code == 0
    assert result.stdout == bytes(range(256)) * 40960  # 10 MiB
    assert result.stderr == b"e" * 1_000_000


def test_timeout_raises_outcome_unknown_and_the_link_survives(transport: SshTransport) -> None:
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError, match="did not finish within 1"):
        transport.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 5
    assert transport.run(["echo", "still here"]).stdout == b"still here\n"


def test_many_threads_share_one_connection(
    sshd: Sshd, transport: SshTransport, tmp_path: Path
) -> None:
    def work(i: int) -> bytes:
        return transport.run(["sh", "-c", 'sleep 0.3; echo "$1"', "sh", str(i)]).stdout

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=40) as pool:
        outputs = list(pool.map(work, range(60)))
    elapsed = time.monotonic() - started
    assert outputs == [f"{i}\n".encode() for i in range(60)]
    # Files over SFTP from other threads at the same time, on the same connection.
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda i: transport.put_file(f"{tmp_path}/{i}", str(i).encode()), range(30)))
        sizes = list(pool.map(lambda i: transport.file_size(f"{tmp_path}/{i}"), range(30)))
    assert sizes == [len(str(i)) for i in range(30)]
    # 60 commands of 0.3 s each, at most 9 at a time: ~2 s, far from 18 s serially.
    assert elapsed < 8
    assert sshd.logins() == 1
    assert transport.stats().connections_made == 1
    assert transport.stats().commands_run == 60


def test_reconnects_after_sshd_restart(sshd: Sshd, transport: SshTransport) -> None:
    assert transport.run(["echo", "before"]).stdout == b"before\n"
    sshd.kill()
    time.sleep(0.3)  # let the client see the connection close

    # The server comes back while the transport is backing off.
    restarter = threading.Timer(0.8, sshd.start)
    restarter.start()
    started = time.monotonic()
    try:
        result = transport.run(["echo", "after"])
    finally:
        restarter.join()
    assert result.stdout == b"after\n"
    assert time.monotonic() - started >= 0.5  # it had to wait for the server
    assert transport.stats().connections_made == 2
    assert sshd.logins() == 2
    assert transport.read_file("nothing-here") == b""  # SFTP reopened on the new link


def test_gives_up_with_target_unreachable(sshd: Sshd) -> None:
    with SshTransport(sshd.target(), backoff=Backoff(attempts=3, first_delay_s=0.1)) as ssh:
        ssh.run(["true"])
        sshd.kill()
        time.sleep(0.3)
        with pytest.raises(TransientError, match=r"^target unreachable: ") as caught:
            ssh.run(["true"])
        # Nothing was sent, so this is a plain transient error, safe to retry.
        assert not isinstance(caught.value, OutcomeUnknownError)


def test_link_dropped_mid_command_is_outcome_unknown(sshd: Sshd, transport: SshTransport) -> None:
    transport.run(["true"])
    killer = threading.Timer(0.5, sshd.kill)
    killer.start()
    try:
        with pytest.raises(OutcomeUnknownError, match="check its effect"):
            transport.run(["sleep", "10"])
    finally:
        killer.join()


# -- host keys and authentication -------------------------------------------------


def test_pinned_host_key_is_accepted_without_known_hosts(sshd: Sshd, tmp_path: Path) -> None:
    target = sshd.target(known_hosts=str(tmp_path / "absent"), host_key=sshd.host_public_key)
    with SshTransport(target) as ssh:
        assert ssh.run(["echo", "ok"]).stdout == b"ok\n"


def test_wrong_pinned_host_key_is_refused_without_retrying(sshd: Sshd) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with SshTransport(sshd.target(host_key=other), backoff=FAST_BACKOFF) as ssh:
        started = time.monotonic()
        with pytest.raises(PermanentError, match="host key"):
            ssh.run(["true"])
        assert time.monotonic() - started < 1.5  # no backoff for a failure that cannot heal
    assert sshd.logins() == 0


def test_known_hosts_with_another_key_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other}")
    unlisted = tmp_path / "unlisted_known_hosts"
    unlisted.write_text(f"elsewhere.example {sshd.host_public_key}\n")
    for path in (wrong, unlisted):
        with (
            SshTransport(sshd.target(known_hosts=str(path))) as ssh,
            pytest.raises(PermanentError, match="host key"),
        ):
            ssh.run(["true"])
    assert sshd.logins() == 0


def test_key_held_in_memory(sshd: Sshd) -> None:
    target = sshd.target(key_path=None, key_data=sshd.client_key.read_text())
    with SshTransport(target) as ssh:
        assert ssh.run(["echo", "in memory"]).stdout == b"in memory\n"


def test_unknown_client_key_is_refused(sshd: Sshd) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    target = sshd.target(key_path=None, key_data=stranger)
    with (
        SshTransport(target, backoff=FAST_BACKOFF) as ssh,
        pytest.raises(PermanentError, match="authentication failed"),
    ):
        ssh.run(["true"])


# -- files ------------------------------------------------------------------------


@pytest.fixture
def base(tmp_path: Path) -> str:
    """An absolute directory to work in: the "remote" side is this machine."""
    return str(tmp_path / "remote")


def test_relative_paths_are_relative_to_home(transport: SshTransport) -> None:
    home = transport.home()
    assert transport.run(["printenv", "HOME"]).stdout.decode().strip() == home
    name = f".hpcbox-transport-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        transport.put_file(name, b"in home")
        assert Path(home, name).read_bytes() == b"in home"
        assert transport.read_file(name) == b"in home"
        assert transport.file_size(name) == 7
    finally:
        transport.remove(name)
    assert not Path(home, name).exists()


def test_put_read_size_remove(transport: SshTransport, base: str) -> None:
    path = f"{base}/jobs/1/script.sh"
    transport.put_file(path, b"0123456789", mode=0o750)
    assert transport.run(["stat", "-c", "%a %s", path]).stdout == b"750 10\n"
    assert transport.read_file(path) == b"0123456789"
    assert transport.read_file(path, offset=3, limit=4) == b"3456"
    assert transport.read_file(path, offset=8, limit=100) == b"89"
    assert transport.read_file(path, offset=50) == b""
    assert transport.read_file(path, limit=0) == b""
    assert transport.file_size(path) == 10
    transport.put_file(path, b"new")
    assert transport.read_file(path) == b"new"
    transport.remove(path)
    transport.remove(path)  # already gone: fine
    assert transport.file_size(path) is None
    assert transport.read_file(path) == b""
    assert os.listdir(f"{base}/jobs/1") == []  # no temporary files left behind


def test_put_file_mode_ignores_the_server_umask(transport: SshTransport, base: str) -> None:
    transport.put_file(f"{base}/exec", b"#!/bin/sh\necho ran\n", mode=0o755)
    assert transport.run([f"{base}/exec"]).stdout == b"ran\n"
    transport.put_file(f"{base}/private", b"x", mode=0o600)
    assert transport.run(["stat", "-c", "%a", f"{base}/private"]).stdout == b"600\n"


def test_put_file_replaces_a_planted_symlink_instead_of_following_it(
    transport: SshTransport, base: str, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    transport.put_file(f"{base}/placeholder", b"")
    transport.run(["ln", "-s", str(victim), f"{base}/out.txt"])
    transport.put_file(f"{base}/out.txt", b"replacement")
    assert victim.read_bytes() == b"precious"
    kind = transport.run(["stat", "-c", "%F", f"{base}/out.txt"]).stdout
    assert kind == b"regular file\n"
    assert transport.read_file(f"{base}/out.txt") == b"replacement"


def test_put_file_without_parents(transport: SshTransport, base: str) -> None:
    with pytest.raises(PermanentError):
        transport.put_file(f"{base}/missing/dir/f", b"x", make_parents=False)


def test_large_file_round_trip_with_offsets(transport: SshTransport, base: str) -> None:
    data = os.urandom(10 * 1024 * 1024 + 7)
    path = f"{base}/big.bin"
    transport.put_file(path, data)
    assert transport.file_size(path) == len(data)
    assert transport.read_file(path, limit=len(data) + 100) == data
    assert transport.read_file(path, offset=3_000_001, limit=2_500_000) == data[3_000_001:5_500_001]
    assert transport.read_file(path) == data[: 1 << 20]  # the default limit


def test_removing_a_directory_fails_permanently(transport: SshTransport, base: str) -> None:
    transport.put_file(f"{base}/d/f", b"")
    with pytest.raises(PermanentError):
        transport.remove(f"{base}/d")


def test_closed_transport_refuses_work(sshd: Sshd) -> None:
    ssh = SshTransport(sshd.target())
    ssh.run(["true"])
    ssh.close()
    with pytest.raises(PermanentError, match="closed"):
        ssh.run(["true"])
    with pytest.raises(PermanentError, match="closed"):
        ssh.read_file("x")


def test_keepalive_drops_a_silent_connection(sshd: Sshd) -> None:
    assert sshd.proc is not None
    with SshTransport(sshd.target(keepalive_s=0.3), backoff=FAST_BACKOFF) as ssh:
        ssh.run(["true"])
        # Freeze the per-connection sshd processes: the TCP link stays up but
        # the server goes silent, as behind a dead NAT entry.
        frozen = descendants(sshd.proc.pid)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)  # three unanswered keepalives, 0.3 s apart
            assert ssh.run(["echo", "fresh"]).stdout == b"fresh\n"
        finally:
            for pid in frozen:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert ssh.stats().connections_made == 2
