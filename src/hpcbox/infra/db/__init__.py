"""The database: engine, SQLAlchemy models and the Alembic migrations every store shares."""

from hpcbox.infra.db.database import HEAD_REVISION, open_engine

__all__ = ["HEAD_REVISION", "open_engine"]
