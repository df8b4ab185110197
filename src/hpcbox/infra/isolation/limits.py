"""Resource limits of one sandboxed run, and their translation to CFS quotas."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hpcbox.core.errors import InvalidInputError

__all__ = ["CFS_PERIOD_US", "ResourceLimits", "cpu_quota_us"]

#: CFS period used for every CPU quota (100 ms, the kernel's default period).
CFS_PERIOD_US = 100_000

# The kernel refuses quotas below 1 ms.
_MIN_QUOTA_US = 1_000


@dataclass(frozen=True)
class ResourceLimits:
    """Resource limits of the whole process tree of a run (what its cgroup enforces);
    ``None`` means "no limit".

    ``cpus`` is a quota in cores (1.5 = 150 % of one core, enforced per 100 ms
    period, at least 0.01); ``memory_bytes`` caps RAM and forbids swap beyond it;
    ``pids`` caps the number of tasks (processes and threads) the command may use.
    Invalid values raise InvalidInputError at construction.
    """

    cpus: float | None = None
    memory_bytes: int | None = None
    pids: int | None = None

    def __post_init__(self) -> None:
        cpus: object = self.cpus
        if cpus is not None:
            if isinstance(cpus, bool) or not isinstance(cpus, int | float):
                raise InvalidInputError(f"must be a number, got {cpus!r}", field="cpus")
            if not math.isfinite(cpus) or cpus * CFS_PERIOD_US < _MIN_QUOTA_US:
                raise InvalidInputError(
                    f"must be a finite number >= 0.01, got {cpus}", field="cpus"
                )
        _check_positive_int(self.memory_bytes, "memory_bytes")
        _check_positive_int(self.pids, "pids")


def _check_positive_int(value: object, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"must be a positive integer, got {value!r}", field=field)


def cpu_quota_us(cpus: float) -> int:
    """CFS quota in microseconds per :data:`CFS_PERIOD_US` for ``cpus`` cores."""
    return max(_MIN_QUOTA_US, round(cpus * CFS_PERIOD_US))
