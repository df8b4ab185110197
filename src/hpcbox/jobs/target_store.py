"""Repository of targets."""

from __future__ import annotations

from sqlalchemy import Engine, Table, delete, insert, select, update

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import ConflictError, NotFoundError
from hpcbox.infra.db.models import TargetRow
from hpcbox.jobs.model.target import TargetSpec

__all__ = ["TargetStore"]

_targets: Table = TargetRow.__table__  # type: ignore[assignment]


class TargetStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, target: TargetSpec, *, replace: bool = False) -> TargetSpec:
        """Store a target; ConflictError if the name is taken (unless ``replace``)."""
        now = utcnow()
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(_targets.c.name).where(_targets.c.name == target.name)
            ).first()
            if exists and not replace:
                raise ConflictError(f"target {target.name!r} exists; remove it first")
            if exists:
                conn.execute(
                    update(_targets)
                    .where(_targets.c.name == target.name)
                    .values(spec=target.model_dump_json(), updated_at=now)
                )
            else:
                conn.execute(
                    insert(_targets).values(
                        name=target.name,
                        spec=target.model_dump_json(),
                        created_at=now,
                        updated_at=now,
                    )
                )
        return target

    def get(self, name: str) -> TargetSpec:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(_targets.c.spec).where(_targets.c.name == name)
            ).scalar_one_or_none()
        if raw is None:
            raise NotFoundError(f"no target named {name!r} (see `hpcbox target list`)")
        return TargetSpec.model_validate_json(raw)

    def list_targets(self) -> list[TargetSpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_targets.c.spec).order_by(_targets.c.name))
            return [TargetSpec.model_validate_json(raw) for (raw,) in rows]

    def remove(self, name: str) -> None:
        with self.engine.begin() as conn:
            gone = conn.execute(delete(_targets).where(_targets.c.name == name)).rowcount
        if gone != 1:
            raise NotFoundError(f"no target named {name!r}")
