"""The compiled supervisor's request format, its sealed binary and its argv."""

from __future__ import annotations

import os
import struct

import pytest

from hpcbox.judge.sandbox.argv import BoxCommand, build_argv
from hpcbox.judge.sandbox.compiled import encode_request, sealed_executable


def _strings(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def test_request_is_length_prefixed_strings_in_order() -> None:
    data = encode_request(
        ("sh", "-c", "echo 'a b'; rm -rf /"),
        {"PATH": "/usr/bin", "X": "=y"},
        "input.txt",
        True,
        {"CPU": (6, 7), "CORE": (0, 0)},
        17,
    )
    assert _strings(data) == [
        b"17",
        b"3", b"sh", b"-c", b"echo 'a b'; rm -rf /",
        b"2", b"PATH=/usr/bin", b"X==y",
        b"input.txt", b"1",
        b"2", b"CPU", b"6", b"7", b"CORE", b"0", b"0",
    ]  # fmt: skip


def test_request_keeps_nul_bytes_for_the_supervisor_to_refuse() -> None:
    # A NUL cannot be passed to execve: the supervisor reports it (ValueError, like
    # Python's os.execvpe) instead of running a truncated argv.
    strings = _strings(encode_request(("a\0b",), {}, None, False, {}, 3))
    assert strings == [b"3", b"1", b"a\0b", b"0", b"", b"0", b"0"]


def test_sealed_executable_cannot_be_changed() -> None:
    fd = sealed_executable(b"\x7fELF binary")
    try:
        assert os.pread(fd, 64, 0) == b"\x7fELF binary"
        with pytest.raises(OSError):
            os.write(fd, b"x")  # opened read-only
        writer = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
        try:
            with pytest.raises(PermissionError):  # and sealed against any writer
                os.write(writer, b"x")
        finally:
            os.close(writer)
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


def test_argv_execs_the_compiled_supervisor_when_given() -> None:
    base = {
        "sh": "/bin/sh",
        "setpriv": "/usr/bin/setpriv",
        "bwrap": "/usr/bin/bwrap",
        "host_uid": 65534,
        "rootfs": "/r",
        "box_bytes": 1 << 20,
        "tmp_bytes": 1 << 19,
        "procs_files": [],
        "seccomp_fd": 10,
        "info_fd": 11,
        "request_fd": 3,
        "result_fd": 4,
        "stdout_fd": 5,
        "stderr_fd": 6,
        "supervisor_source": "print(1)",
    }
    compiled = build_argv(BoxCommand(**base, supervisor_exec="/proc/self/fd/12"))  # type: ignore[arg-type]
    assert compiled[-5:] == ["/proc/self/fd/12", "3", "4", "5", "6"]
    assert "print(1)" not in compiled and "/usr/bin/python3" not in compiled
    python = build_argv(BoxCommand(**base))  # type: ignore[arg-type]
    assert python[-9:] == ["/usr/bin/python3", "-I", "-S", "-c", "print(1)", "3", "4", "5", "6"]
    assert compiled[: compiled.index("--", 20)] == python[: python.index("--", 20)]
