"""The compiled supervisor (``supervisor.c``): its request format and its binary.

A box's PID 1 is either ``_supervisor.py`` run by the rootfs's ``python3`` or this
C program, which does the same job without an interpreter's start (about 6 ms of
CPU less per box, measured: ``python3 -I -S -c pass`` alone costs that). The
binary is built once per sandbox factory by the rootfs's own gcc inside an
ordinary (Python-supervised) box, kept in a sealed memfd, and executed in each
new box as ``/proc/self/fd/N``; a rootfs without gcc keeps the Python supervisor.
The same binary, run as ``supervisor zygote ...``, is the fork-server of every box
whose program is exec'd (see ``supervisor.c`` and ``start_forked.py``).
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["COMPILE_ARGV", "SOURCE", "encode_request", "sealed_executable"]

SOURCE = (Path(__file__).parent / "supervisor.c").read_bytes()
#: Static, so that a box pays no dynamic linking either; "-static" is dropped
#: when the rootfs has no libc.a (see supervisor_build.py).
COMPILE_ARGV = ("gcc", "-O2", "-static", "-o", "supervisor", "supervisor.c")

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _string(value: str) -> bytes:
    data = value.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(data)) + data


def encode_request(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: str | None,
    merge_stderr: bool,
    rlimits: Mapping[str, Sequence[int]],
    deadline_s: int,
) -> bytes:
    """One request in the compiled supervisor's format (see ``supervisor.c``).

    ``deadline_s``: whole seconds after which the supervisor kills the run itself.
    """
    parts = [_string(str(deadline_s)), _string(str(len(argv))), *map(_string, argv)]
    parts.append(_string(str(len(env))))
    parts += [_string(f"{key}={value}") for key, value in env.items()]
    parts += [_string(stdin or ""), _string("1" if merge_stderr else "0")]
    parts.append(_string(str(len(rlimits))))
    for name, (soft, hard) in rlimits.items():
        parts += [_string(name), _string(str(soft)), _string(str(hard))]
    return b"".join(parts)


def sealed_executable(binary: bytes) -> int:
    """A read-only descriptor of a sealed memfd holding ``binary`` (mode 0755):
    nothing can change it, and a box may exec it as ``/proc/self/fd/N``."""
    memfd = os.memfd_create("hpcbox-supervisor", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(binary)
        while view:
            view = view[os.write(memfd, view) :]
        os.fchmod(memfd, 0o755)
        fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, _SEALS)
        # A second, read-only open file description: what the boxes inherit.
        return os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(memfd)
