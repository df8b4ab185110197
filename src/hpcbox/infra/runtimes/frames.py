"""Split the engine's multiplexed exec stream into stdout and stderr.

Without a TTY, the Docker Engine API (and Podman's copy of it) sends an exec's
output as frames: an 8-byte header (stream id, three zero bytes, payload
length as a big-endian 32-bit number) followed by the payload. Data arrives
from the socket in arbitrary pieces, so the decoder keeps partial frames.
"""

from __future__ import annotations

import struct

__all__ = ["FrameDecoder"]

_HEADER = struct.Struct(">BxxxL")
_STDERR = 2


class FrameDecoder:
    """Incremental decoder: :meth:`feed` pieces, then read :attr:`stdout`/:attr:`stderr`.

    Frames for stdin (id 0) or unknown ids go to stdout, as the engine only
    sends those for a TTY-less stream when something else is wrong.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._out = bytearray()
        self._err = bytearray()

    def feed(self, data: bytes) -> None:
        """Add the next piece of the stream; complete frames are sorted at once."""
        self._pending += data
        offset = 0
        while len(self._pending) - offset >= _HEADER.size:
            stream, length = _HEADER.unpack_from(self._pending, offset)
            end = offset + _HEADER.size + length
            if end > len(self._pending):
                break
            payload = self._pending[offset + _HEADER.size : end]
            (self._err if stream == _STDERR else self._out).extend(payload)
            offset = end
        del self._pending[:offset]

    @property
    def truncated(self) -> bool:
        """True when the stream ended inside a frame (the engine cut it short)."""
        return bool(self._pending)

    @property
    def stdout(self) -> bytes:
        return bytes(self._out)

    @property
    def stderr(self) -> bytes:
        return bytes(self._err)
