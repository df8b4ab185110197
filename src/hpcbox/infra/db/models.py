"""SQLAlchemy 2 models: jobs, their attempts, and state events.

The current attempt's scheduling fields (state, cpus, memory) are copied onto
``jobs`` so that listings and the local queue read one narrow, indexed table.
Times are stored as naive UTC (SQLite has no time zones); the repository
attaches UTC when it reads them back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AttemptRow", "Base", "ClusterRow", "EventRow", "JobRow", "TargetRow"]


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_jobs_state_id", "state", "id"),
        Index("ix_jobs_backend_state", "backend", "state"),
    )


class AttemptRow(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    spec: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(32))
    native_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    native_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    signal: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Backend data needed to re-attach from a fresh process (JSON).
    handle: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ux_attempts_job_number", "job_id", "number", unique=True),)


class EventRow(Base):
    __tablename__ = "state_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str] = mapped_column(String(32))
    native_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (Index("ix_state_events_job", "job_id", "id"),)


class ClusterRow(Base):
    """A cluster hpcbox brought up. Secrets are files under $HPCBOX_HOME, never here."""

    __tablename__ = "clusters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    runtime: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    spec: Mapped[str] = mapped_column(Text)
    workers: Mapped[int] = mapped_column(Integer)
    ssh_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class TargetRow(Base):
    """A SLURM target reached over SSH. Holds no secret (key paths, not keys)."""

    __tablename__ = "targets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
