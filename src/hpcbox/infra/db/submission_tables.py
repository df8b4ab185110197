"""Tables of the judge's submissions and their per-test results (migration 0004).

Declared with SQLAlchemy Core on the shared metadata, so that Alembic sees them
beside the job tables. Times are naive UTC, as in the job tables.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from hpcbox.infra.db.models import Base

__all__ = ["submission_tests", "submissions"]

submissions = Table(
    "submissions",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: UUID4, the public name of a submission.
    Column("token", String(36), nullable=False, unique=True),
    #: A client's ``Idempotency-Key``: a second POST with it returns the first submission.
    Column("idempotency_key", String(255), nullable=True, unique=True),
    #: SHA-256 of the request that used the idempotency key (a different body is a conflict).
    Column("request_hash", String(64), nullable=True),
    #: Which API made it ("judge0" or "v1"): decides the callback's JSON.
    Column("api", String(8), nullable=False),
    Column("language", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    #: queued -> processing -> done; a processing row whose lease ran out is claimable again.
    Column("state", String(16), nullable=False),
    Column("submission", Text, nullable=False),
    #: Judge0 input fields as the client sees them back (JSON), when made by /judge0.
    Column("echo", Text, nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("verdict", String(32), nullable=True),
    Column("result", Text, nullable=True),
    #: The current claim (a UUID per run) and how long it holds without a heartbeat.
    Column("claim", String(36), nullable=True),
    Column("lease_until", DateTime, nullable=True),
    #: How many times a worker claimed it (more than 1: a worker died and it ran again).
    Column("runs", Integer, nullable=False),
    #: Seconds a finished submission is kept; None = the service's default.
    Column("retain_s", Integer, nullable=True),
    Column("expires_at", DateTime, nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=True),
    Column("finished_at", DateTime, nullable=True),
    Index("ix_submissions_state_priority_id", "state", "priority", "id"),
    Index("ix_submissions_expires_at", "expires_at"),
)

submission_tests = Table(
    "submission_tests",
    Base.metadata,
    Column("submission_id", Integer, ForeignKey("submissions.id", ondelete="CASCADE")),
    Column("idx", Integer, nullable=False),
    Column("result", Text, nullable=False),
    PrimaryKeyConstraint("submission_id", "idx"),
)
