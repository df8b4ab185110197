"""Cheap checks on engine sockets and processes, without the docker SDK.

Used to decide which engine to talk to and whether a Podman service hpcbox
started earlier is still alive, before any client is built.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

__all__ = [
    "MAX_SOCKET_PATH",
    "parse_ping_reply",
    "pid_alive",
    "ping_headers",
    "ping_unix",
    "process_cmdline",
]

#: sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


def ping_unix(path: Path, *, timeout: float = 2.0) -> bool:
    """True when an Engine API server on the unix socket ``path`` answers ``GET /_ping``."""
    return ping_headers(path, timeout=timeout) is not None


def ping_headers(path: Path, *, timeout: float = 2.0) -> dict[str, str] | None:
    """The headers (names lower-cased) of a 200 answer to ``GET /_ping`` on the unix
    socket ``path``; ``None`` when nothing answers so.

    They say which engine it is and its API version, which spares a
    ``GET /version`` (a third of a second on Podman, which asks its OCI
    runtime and conmon for their versions on each call).
    """
    if not path.exists():
        return None
    reply = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            while b"\r\n\r\n" not in reply and len(reply) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    return parse_ping_reply(reply)


def parse_ping_reply(reply: bytes) -> dict[str, str] | None:
    """Headers of an HTTP reply if its status is 200, else ``None``."""
    head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    status = lines[0].split()
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "200":
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def process_cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, or ``None`` when it is gone or a zombie.

    A zombie child of this process is reaped on the way, so that a service
    that died while we were running does not look alive.
    """
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        raw = (proc / "cmdline").read_bytes()
    except OSError:
        return None
    # The state letter follows the command name, which is in parentheses and
    # may itself contain spaces or parentheses.
    if stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pid_alive(pid: int) -> bool:
    """True when ``pid`` names a live (non-zombie) process."""
    return process_cmdline(pid) is not None
