"""Repository of clusters: what was brought up, with which spec, in which state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, delete, insert, select, update

from hpcbox.clusters.spec import ClusterSpec, ClusterState
from hpcbox.core.clock import iso, utcnow
from hpcbox.core.errors import ConflictError, NotFoundError
from hpcbox.infra.db.models import ClusterRow

__all__ = ["ClusterRecord", "ClusterStore"]

_clusters: Table = ClusterRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class ClusterRecord:
    """A stored cluster. ``state`` is a :class:`~hpcbox.clusters.spec.ClusterState` value."""

    name: str
    kind: str
    runtime: str
    state: str
    spec: ClusterSpec
    workers: int
    ssh_port: int | None
    message: str | None
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "runtime": self.runtime,
            "state": self.state,
            "workers": self.workers,
            "ssh_port": self.ssh_port,
            "message": self.message,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def _record(row: Any) -> ClusterRecord:
    return ClusterRecord(
        name=row.name,
        kind=row.kind,
        runtime=row.runtime,
        state=row.state,
        spec=ClusterSpec.model_validate_json(row.spec),
        workers=row.workers,
        ssh_port=row.ssh_port,
        message=row.message,
        created_at=row.created_at.replace(tzinfo=UTC),
        updated_at=row.updated_at.replace(tzinfo=UTC),
    )


class ClusterStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, spec: ClusterSpec, *, runtime: str, replace: bool = False) -> ClusterRecord:
        """Record a cluster being created (state CREATING).

        A record of that name that is DOWN is replaced (its homes may be reused);
        with ``replace``, one in any state is (the caller has removed what it left).
        Otherwise ConflictError, saying how to go on.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(_clusters.c.state).where(_clusters.c.name == spec.name)
            ).scalar_one_or_none()
            if existing is not None and existing != ClusterState.DOWN and not replace:
                raise ConflictError(
                    f"cluster {spec.name!r} already exists ({existing}); "
                    f"`hpcbox cluster down {spec.name}` first, or up with --replace"
                )
            if existing is not None:
                conn.execute(delete(_clusters).where(_clusters.c.name == spec.name))
            conn.execute(
                insert(_clusters).values(
                    name=spec.name,
                    kind=spec.kind.value,
                    runtime=runtime,
                    state=ClusterState.CREATING.value,
                    spec=spec.model_dump_json(),
                    workers=spec.workers.count,
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get(spec.name)

    def find(self, name: str) -> ClusterRecord | None:
        """The cluster of that name, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_clusters).where(_clusters.c.name == name)).first()
        return None if row is None else _record(row)

    def get(self, name: str) -> ClusterRecord:
        """The cluster of that name; NotFoundError if there is none."""
        record = self.find(name)
        if record is None:
            raise NotFoundError(f"no cluster named {name!r}")
        return record

    def list_clusters(self) -> list[ClusterRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_clusters).order_by(_clusters.c.name))
            return [_record(row) for row in rows]

    def update(self, name: str, **values: Any) -> ClusterRecord:
        """Set columns (state, workers, ssh_port, message, spec as a ClusterSpec)."""
        if "spec" in values and isinstance(values["spec"], ClusterSpec):
            values["spec"] = values["spec"].model_dump_json()
        values["updated_at"] = utcnow()
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(_clusters).where(_clusters.c.name == name).values(**values)
            ).rowcount
        if changed != 1:
            raise NotFoundError(f"no cluster named {name!r}")
        return self.get(name)

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_clusters).where(_clusters.c.name == name))
