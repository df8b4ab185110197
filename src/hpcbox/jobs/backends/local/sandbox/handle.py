"""How to find a launched run again, from any process: :class:`RunHandle`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.isolation.ids import validate_group_path, validate_safe_id

__all__ = ["RunHandle"]


@dataclass(frozen=True)
class RunHandle:
    """Everything needed to re-attach to a run from a fresh process.

    ``pid`` is the run's outer process (the trampoline shell, which lives exactly
    as long as bwrap); ``start_ticks`` is field 22 of ``/proc/<pid>/stat`` at
    launch, so a recycled pid is never mistaken for the run. ``cgroup`` is the
    driver-independent relative group path (``<parent_group>/<run_id>``).
    JSON-serialisable through :meth:`to_dict` / :meth:`from_dict`.
    """

    run_id: str
    pid: int
    start_ticks: int
    status_path: str
    cgroup: str
    started_at: float

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-compatible dict; :meth:`from_dict` inverts it exactly."""
        return {
            "run_id": self.run_id,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "status_path": self.status_path,
            "cgroup": self.cgroup,
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> RunHandle:
        """Rebuild a handle; raise InvalidInputError on missing or mistyped fields.

        The ids and the cgroup path are re-validated because the dict may come
        from a file or a database that someone else can write.
        """
        try:
            run_id = d["run_id"]
            pid = d["pid"]
            start_ticks = d["start_ticks"]
            status_path = d["status_path"]
            cgroup = d["cgroup"]
            started_at = d["started_at"]
        except KeyError as exc:
            raise InvalidInputError(f"run handle lacks field {exc.args[0]!r}") from exc
        if not isinstance(status_path, str) or not status_path:
            raise InvalidInputError("must be a non-empty string", field="status_path")
        if isinstance(started_at, bool) or not isinstance(started_at, int | float):
            raise InvalidInputError(f"must be a number, got {started_at!r}", field="started_at")
        return cls(
            run_id=validate_safe_id(run_id, field="run_id"),
            pid=_non_negative_int(pid, "pid"),
            start_ticks=_non_negative_int(start_ticks, "start_ticks"),
            status_path=status_path,
            cgroup=validate_group_path(cgroup, field="cgroup"),
            started_at=float(started_at),
        )


def _non_negative_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"must be a non-negative integer, got {value!r}", field=field)
    return value
