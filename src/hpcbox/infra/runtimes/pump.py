"""Drive one attached exec socket: feed stdin, collect output, honour a deadline.

Writing all of stdin before reading could deadlock: a command that prints
more than the pipe buffers hold before it reads its input would block on its
output while we block on its input. So one loop writes and reads as the socket
allows, and half-closes the write side when stdin is done (the command then
sees end-of-file while its output keeps flowing).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time

from hpcbox.infra.runtimes.frames import FrameDecoder

__all__ = ["ExecTimeout", "pump"]

_CHUNK = 64 * 1024


class ExecTimeout(Exception):
    """The deadline passed before the command's output ended."""


def pump(sock: socket.socket, stdin: bytes | None, timeout: float | None) -> FrameDecoder:
    """Exchange data on ``sock`` until the engine closes the output stream.

    Returns the decoder holding everything the command wrote. Raises
    :class:`ExecTimeout` once ``timeout`` seconds have passed, and OSError when
    the connection fails.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    decoder = FrameDecoder()
    data = stdin or b""
    sent = 0
    sock.setblocking(False)
    with selectors.DefaultSelector() as selector:
        if data:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        else:
            _close_input(sock)
            selector.register(sock, selectors.EVENT_READ)
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise ExecTimeout
            for _, mask in selector.select(wait):
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent += sock.send(data[sent : sent + _CHUNK])
                    except BlockingIOError:
                        pass
                    except (BrokenPipeError, ConnectionResetError):
                        # The command exited (or closed stdin) without reading
                        # everything; its output may still be on its way.
                        sent = len(data)
                    if sent >= len(data):
                        _close_input(sock)
                        selector.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(_CHUNK)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        # The peer closed while stdin we sent was still unread
                        # there; everything it wrote before was read already.
                        return decoder
                    if not chunk:
                        return decoder
                    decoder.feed(chunk)


def _close_input(sock: socket.socket) -> None:
    # An OSError means the peer already closed: there is nothing left to signal.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
