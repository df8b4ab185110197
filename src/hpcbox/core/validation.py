"""pydantic's validation errors, as hpcbox's :class:`InvalidInputError` naming the field."""

from __future__ import annotations

from pydantic import ValidationError

from hpcbox.core.errors import InvalidInputError

__all__ = ["validation_error"]


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "spec"


def validation_error(exc: ValidationError) -> InvalidInputError:
    """Translate pydantic's error into ours, naming the field."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    return InvalidInputError(message, field=_field_path(tuple(first["loc"])))
