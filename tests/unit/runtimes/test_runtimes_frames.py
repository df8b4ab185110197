"""Splitting the Engine API's multiplexed exec stream."""

from __future__ import annotations

import struct

from hpcbox.infra.runtimes.frames import FrameDecoder


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_frames_are_sorted_by_stream() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(1, b"out1 ") + frame(2, b"err1 ") + frame(1, b"out2"))
    assert decoder.stdout == b"out1 out2"
    assert decoder.stderr == b"err1 "
    assert not decoder.truncated


def test_pieces_split_anywhere_give_the_same_result() -> None:
    stream = frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"") + frame(1, b"x" * 70_000)
    for size in (1, 2, 3, 7, 8, 9, 100, 65536):
        decoder = FrameDecoder()
        for start in range(0, len(stream), size):
            decoder.feed(stream[start : start + size])
        assert decoder.stdout == b"hello\n" + b"x" * 70_000
        assert decoder.stderr == b"oops\n"
        assert not decoder.truncated


def test_a_cut_frame_is_reported() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(1, b"complete") + frame(2, b"cut short")[:-3])
    assert decoder.stdout == b"complete"
    assert decoder.stderr == b""
    assert decoder.truncated


def test_unknown_stream_ids_count_as_stdout() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(0, b"a") + frame(7, b"b"))
    assert decoder.stdout == b"ab"
