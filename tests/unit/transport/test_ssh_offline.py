"""SshTransport and TransportPool behaviour that needs no SSH server."""

from __future__ import annotations

import socket
import threading
import time

import asyncssh
import pytest

from hpcbox.core.errors import InvalidInputError, PermanentError, TransientError
from hpcbox.infra.transport import Backoff, SshTarget, SshTransport, TransportPool
from hpcbox.infra.transport._loop import LoopThread

QUICK = Backoff(attempts=3, first_delay_s=0.05, factor=2, max_delay_s=1, jitter=0)


@pytest.fixture(scope="module")
def host_key() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_public_key().decode().strip()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_target_gives_up_after_the_backoff(host_key: str, closed_port: int) -> None:
    target = SshTarget(host="127.0.0.1", user="u", port=closed_port, host_key=host_key)
    with SshTransport(target, backoff=QUICK) as ssh:
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"^target unreachable: u@127\.0\.0\.1:"):
            ssh.run(["true"])
        # Three attempts with 0.05 s and 0.1 s between them.
        assert 0.14 <= time.monotonic() - started < 5
        assert ssh.stats().connections_made == 0


def test_concurrent_callers_share_one_connection_attempt(host_key: str, closed_port: int) -> None:
    target = SshTarget(host="127.0.0.1", user="u", port=closed_port, host_key=host_key)
    slow = Backoff(attempts=2, first_delay_s=0.5, jitter=0)
    errors: list[BaseException] = []

    def call(ssh: SshTransport) -> None:
        try:
            ssh.file_size("x")
        except TransientError as exc:
            errors.append(exc)

    with SshTransport(target, backoff=slow) as ssh:
        started = time.monotonic()
        threads = [threading.Thread(target=call, args=(ssh,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Eight callers waiting on one backoff, not eight backoffs one after another.
        assert time.monotonic() - started < 2.5
    assert len(errors) == 8


def test_closed_transport_refuses_work(host_key: str) -> None:
    ssh = SshTransport(SshTarget(host="127.0.0.1", user="u", host_key=host_key))
    ssh.close()
    ssh.close()
    with pytest.raises(PermanentError, match="closed"):
        ssh.run(["true"])


def test_invalid_arguments_are_refused_before_connecting(host_key: str) -> None:
    with SshTransport(SshTarget(host="127.0.0.1", user="u", host_key=host_key)) as ssh:
        with pytest.raises(InvalidInputError):
            ssh.run(["echo", "a\0b"])
        with pytest.raises(InvalidInputError):
            ssh.run(["true"], timeout=0)
        with pytest.raises(InvalidInputError):
            ssh.read_file("f", offset=-1)
        with pytest.raises(InvalidInputError):
            ssh.put_file("", b"")
        assert ssh.stats().connections_made == 0
    with pytest.raises(InvalidInputError):
        SshTransport(SshTarget(host="h", user="u"), max_sessions=1)


def test_loop_thread_refuses_calls_from_its_own_thread() -> None:
    loop = LoopThread("test")

    async def reenter() -> None:
        async def nothing() -> None:
            return None

        loop.call(nothing())

    with pytest.raises(PermanentError, match="inside its own event loop"):
        loop.call(reenter())
    loop.stop()

    async def late() -> int:
        return 1

    with pytest.raises(PermanentError, match="closed"):
        loop.call(late())


def test_pool_reuses_replaces_and_closes(host_key: str) -> None:
    made: list[SshTransport] = []

    def factory(target: SshTarget) -> SshTransport:
        transport = SshTransport(target, backoff=QUICK)
        made.append(transport)
        return transport

    pool = TransportPool(factory=factory)
    first = SshTarget(host="127.0.0.1", user="u", host_key=host_key)
    one = pool.get("cluster", first)
    assert pool.get("cluster", first) is one
    other = pool.get("other", first)
    assert other is not one

    edited = SshTarget(host="127.0.0.1", user="u", port=2222, host_key=host_key)
    replaced = pool.get("cluster", edited)
    assert replaced is not one
    with pytest.raises(PermanentError, match="closed"):
        one.home()

    pool.discard("other")
    pool.discard("never-there")
    with pytest.raises(PermanentError, match="closed"):
        other.home()
    pool.close_all()
    with pytest.raises(PermanentError, match="closed"):
        replaced.home()
    assert len(made) == 3
