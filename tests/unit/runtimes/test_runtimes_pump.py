"""The exec socket loop, against a fake engine on the other end of a socketpair."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from hpcbox.infra.runtimes.pump import ExecTimeout, pump


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


Start = Callable[[Callable[[socket.socket], None]], socket.socket]


@pytest.fixture
def engine() -> Iterator[Start]:
    """Start ``serve(peer)`` in a thread; return our end of the pair."""
    threads: list[threading.Thread] = []
    ends: list[socket.socket] = []

    def start(serve: Callable[[socket.socket], None]) -> socket.socket:
        ours, theirs = socket.socketpair()
        ends.extend((ours, theirs))
        thread = threading.Thread(target=serve, args=(theirs,), daemon=True)
        thread.start()
        threads.append(thread)
        return ours

    yield start
    for end in ends:
        end.close()
    for thread in threads:
        thread.join(timeout=5)


def read_all(peer: socket.socket) -> bytes:
    data = b""
    while chunk := peer.recv(65536):
        data += chunk
    return data


def test_stdin_is_fed_then_closed_and_output_collected(engine: Start) -> None:
    def cat_like(peer: socket.socket) -> None:
        received = read_all(peer)  # ends when our side half-closes
        peer.sendall(frame(1, received) + frame(2, b"%d bytes" % len(received)))
        peer.shutdown(socket.SHUT_WR)

    ours = engine(cat_like)
    data = b"0123456789" * 100_000
    out = pump(ours, data, timeout=10)
    assert out.stdout == data
    assert out.stderr == b"1000000 bytes"


def test_output_larger_than_buffers_while_stdin_is_pending_does_not_deadlock(engine: Start) -> None:
    # A command that writes a lot before it reads: a write-everything-first
    # loop would block here, as both sides' buffers fill up.
    def chatty(peer: socket.socket) -> None:
        for _ in range(64):
            peer.sendall(frame(1, b"y" * 65536))
        received = read_all(peer)
        peer.sendall(frame(2, b"%d" % len(received)))
        peer.shutdown(socket.SHUT_WR)

    ours = engine(chatty)
    out = pump(ours, b"z" * 4_000_000, timeout=20)
    assert len(out.stdout) == 64 * 65536
    assert out.stderr == b"4000000"


def test_without_stdin_the_command_sees_end_of_file_at_once(engine: Start) -> None:
    def reader(peer: socket.socket) -> None:
        assert read_all(peer) == b""
        peer.sendall(frame(1, b"eof seen"))
        peer.shutdown(socket.SHUT_WR)

    assert pump(engine(reader), None, timeout=5).stdout == b"eof seen"


def test_a_command_that_ignores_stdin_still_finishes(engine: Start) -> None:
    def ignores(peer: socket.socket) -> None:
        peer.sendall(frame(1, b"done"))
        peer.close()

    out = pump(engine(ignores), b"q" * 10_000_000, timeout=10)
    assert out.stdout == b"done"


def test_deadline(engine: Start) -> None:
    def silent(peer: socket.socket) -> None:
        time.sleep(1.0)

    started = time.monotonic()
    with pytest.raises(ExecTimeout):
        pump(engine(silent), None, timeout=0.2)
    assert time.monotonic() - started < 0.9
