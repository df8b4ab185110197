"""Reading the status file that bwrap and the trampoline write.

bwrap (``--json-status-fd``) writes one JSON object per line: first
``{"child-pid": N, ...namespace ids}`` once the sandbox exists, then
``{"exit-code": N}`` when the command exits. bwrap reports a command killed by
signal S as ``128 + S`` (bash convention) and writes no exit-code at all when
setup fails or bwrap itself is killed. After bwrap returns, the trampoline
appends ``{"bwrap-exit-code": N}`` with bwrap's own exit status (again
``128 + S`` if bwrap was killed by a signal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["BwrapStatus", "parse_status", "read_status"]


@dataclass(frozen=True)
class BwrapStatus:
    """What the status file says so far; a field is None until its line is written."""

    child_pid: int | None = None
    exit_code: int | None = None
    bwrap_exit_code: int | None = None


def parse_status(text: str) -> BwrapStatus:
    """Parse status-file text; lines that are not complete JSON objects are ignored.

    Tolerating garbage matters because the writer may have been killed midway
    through a line.
    """
    fields: dict[str, int] = {}
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        for key in ("child-pid", "exit-code", "bwrap-exit-code"):
            value = obj.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                fields[key] = value
    return BwrapStatus(
        child_pid=fields.get("child-pid"),
        exit_code=fields.get("exit-code"),
        bwrap_exit_code=fields.get("bwrap-exit-code"),
    )


def read_status(path: str) -> BwrapStatus | None:
    """Parse the status file at ``path``; None when it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_status(f.read())
    except FileNotFoundError:
        return None
