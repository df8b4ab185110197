"""Cheap probes: the ping reply parser, and process checks on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpcbox.infra.runtimes.probe import parse_ping_reply, pid_alive, ping_headers, process_cmdline


def test_parse_ping_reply() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\n"
        b"Server: Libpod/4.3.1 (linux)\r\nContent-Length: 2\r\n\r\nOK"
    )
    assert parse_ping_reply(reply) == {
        "api-version": "1.41",
        "libpod-api-version": "4.3.1",
        "server": "Libpod/4.3.1 (linux)",
        "content-length": "2",
    }


def test_parse_ping_reply_refuses_errors_and_garbage() -> None:
    assert parse_ping_reply(b"HTTP/1.1 500 Internal Server Error\r\n\r\n") is None
    assert parse_ping_reply(b"SSH-2.0-OpenSSH_9.2\r\n") is None
    assert parse_ping_reply(b"") is None


def test_ping_of_a_missing_or_dead_socket(tmp_path: Path) -> None:
    assert ping_headers(tmp_path / "none.sock") is None
    plain = tmp_path / "not-a-socket"
    plain.write_text("x")
    assert ping_headers(plain) is None


def test_process_checks() -> None:
    assert pid_alive(os.getpid())
    argv = process_cmdline(os.getpid())
    assert argv is not None and argv[0]
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    assert process_cmdline(2**22 + 12345) is None
