"""Safe identifiers: the names a run may give to its cgroup and files.

A safe id is 1 to 128 characters from ``[A-Za-z0-9_.-]`` and is neither ``.``
nor ``..``, so it can be used as one path component anywhere without quoting.
A group path is one or more safe ids joined by ``/`` (e.g. ``hpcbox/run-1``).
"""

from __future__ import annotations

import re

from hpcbox.core.errors import InvalidInputError

__all__ = ["validate_group_path", "validate_safe_id"]

_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_GROUP_PATH = re.compile(r"[A-Za-z0-9_.-]{1,128}(?:/[A-Za-z0-9_.-]{1,128})*")


def validate_safe_id(value: object, *, field: str = "run_id") -> str:
    """Return ``value`` unchanged if it is a safe id; raise InvalidInputError otherwise."""
    if not isinstance(value, str) or _SAFE_ID.fullmatch(value) is None:
        raise InvalidInputError(
            f"must be 1-128 characters from [A-Za-z0-9_.-], got {value!r}", field=field
        )
    if value in (".", ".."):
        raise InvalidInputError(f"must not be {value!r}", field=field)
    return value


def validate_group_path(value: object, *, field: str = "cgroup") -> str:
    """Return ``value`` if it is a relative path of safe ids joined by ``/``; else raise."""
    # The common case in one match (a sandbox's driver checks its group's path a
    # few dozen times per run); anything else takes the checks that say what is wrong.
    if (
        isinstance(value, str)
        and _GROUP_PATH.fullmatch(value) is not None
        and ("." not in value or all(part not in (".", "..") for part in value.split("/")))
    ):
        return value
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"must be a non-empty relative path, got {value!r}", field=field)
    for part in value.split("/"):
        validate_safe_id(part, field=field)
    return value
