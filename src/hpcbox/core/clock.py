"""Time as the stores keep it and the shells show it: naive UTC in, ISO 8601 out."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "utcnow"]


def utcnow() -> datetime:
    """Now, as the naive UTC the tables store."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
