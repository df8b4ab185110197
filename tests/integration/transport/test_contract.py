"""The Transport contract, run against LocalTransport and SshTransport alike.

A backend written against :class:`Transport` must not be able to tell which one
it got, except in the documented differences (symlink reads).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.infra.transport import LocalTransport, OutcomeUnknownError, SshTransport, Transport
from tests.integration.transport.conftest import FAST_BACKOFF, Sshd
from tests.unit.transport.hostile import ECHO_ARGV, HOSTILE, decode_argv

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "ssh"])
def any_transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    if request.param == "local":
        with LocalTransport() as local:
            yield local
    else:
        sshd: Sshd = request.getfixturevalue("sshd")
        with SshTransport(sshd.target(), backoff=FAST_BACKOFF) as ssh:
            yield ssh


def test_argv_is_verbatim(any_transport: Transport) -> None:
    assert decode_argv(any_transport.run([*ECHO_ARGV, *HOSTILE]).stdout) == HOSTILE


def test_results_look_like_a_shells(any_transport: Transport, tmp_path: Path) -> None:
    assert any_transport.run(["hpcbox-no-such-program"]).exit_code == 127
    missing_dir = any_transport.run(["pwd"], cwd=str(tmp_path / "missing"))
    assert missing_dir.exit_code != 0
    assert missing_dir.stdout == b""
    assert missing_dir.stderr
    assert any_transport.run(["pwd"]).stdout.decode().strip() == any_transport.home()
    assert any_transport.run(["sh", "-c", "kill -TERM $$"]).exit_code == -15
    assert any_transport.run(["cat"], stdin=b"in").stdout == b"in"


def test_timeout(any_transport: Transport) -> None:
    with pytest.raises(OutcomeUnknownError):
        any_transport.run(["sleep", "20"], timeout=0.5)


def test_files(any_transport: Transport, tmp_path: Path) -> None:
    path = str(tmp_path / "a" / "b" / "f")
    assert any_transport.read_file(path) == b""
    assert any_transport.file_size(path) is None
    any_transport.remove(path)
    any_transport.put_file(path, b"hello world", mode=0o600)
    assert any_transport.read_file(path, offset=6, limit=3) == b"wor"
    assert any_transport.read_file(path, offset=100) == b""
    assert any_transport.file_size(path) == 11
    assert (tmp_path / "a" / "b" / "f").stat().st_mode & 0o777 == 0o600
    any_transport.remove(path)
    assert any_transport.file_size(path) is None


def test_put_file_replaces_a_symlink(any_transport: Transport, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    link = tmp_path / "link"
    link.symlink_to(victim)
    any_transport.put_file(str(link), b"new")
    assert victim.read_bytes() == b"keep"
    assert not link.is_symlink()
    assert link.read_bytes() == b"new"
