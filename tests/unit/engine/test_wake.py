"""The scheduler's wake-up FIFO (hpcbox.jobs.wake): real FIFOs, no fakes."""

from __future__ import annotations

import os
import select
from pathlib import Path

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.wake import WakeListener, poke


def readable(fd: int, timeout: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], timeout)[0])


def test_poke_without_a_listener_is_a_no_op(tmp_path: Path) -> None:
    assert poke(tmp_path / "scheduler.wake") is False  # never created
    listener = WakeListener(tmp_path / "scheduler.wake")
    listener.close()
    assert poke(tmp_path / "scheduler.wake") is False  # nobody listens now: ENXIO


def test_poke_wakes_the_listener_and_drain_empties_it(tmp_path: Path) -> None:
    path = tmp_path / "home" / "scheduler.wake"
    listener = WakeListener(path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert not readable(listener.fd)
        for _ in range(3):
            assert poke(path) is True
        assert readable(listener.fd)
        listener.drain()
        # The pokers closed their ends: the listener's own writer keeps the read
        # end from reporting end-of-file, so it is quiet again.
        assert not readable(listener.fd, 0.05)
    finally:
        listener.close()


def test_a_full_fifo_does_not_block_the_poker(tmp_path: Path) -> None:
    listener = WakeListener(tmp_path / "scheduler.wake")
    try:
        for _ in range(70_000):  # more bytes than a pipe buffers (64 KiB)
            poke(tmp_path / "scheduler.wake")
        assert readable(listener.fd)
        listener.drain()
        assert not readable(listener.fd)
    finally:
        listener.close()


def test_poke_never_writes_to_a_planted_file_or_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep\n")
    (tmp_path / "link.wake").symlink_to(target)
    assert poke(tmp_path / "link.wake") is False
    plain = tmp_path / "plain.wake"
    plain.write_bytes(b"keep\n")
    assert poke(plain) is False
    assert target.read_bytes() == b"keep\n"
    assert plain.read_bytes() == b"keep\n"


def test_listener_refuses_a_path_that_is_not_a_fifo(tmp_path: Path) -> None:
    plain = tmp_path / "scheduler.wake"
    plain.write_bytes(b"")
    with pytest.raises(PermanentError, match="not a FIFO"):
        WakeListener(plain)
    (tmp_path / "link.wake").symlink_to(plain)
    with pytest.raises(OSError):  # ELOOP: never followed
        WakeListener(tmp_path / "link.wake")
