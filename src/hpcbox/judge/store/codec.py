"""JSON for the judge's values, bytes included (programs' output need not be UTF-8).

Bytes are written as ``{"$b64": "..."}``; nothing else in these values is a dict
with that one key, so the round trip is exact.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["dumps", "load_model"]

_M = TypeVar("_M", bound=BaseModel)


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot store {type(value).__name__}")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$b64" in obj:
        return base64.b64decode(obj["$b64"])
    return obj


def dumps(model: BaseModel) -> str:
    """A judge value as JSON text."""
    return json.dumps(model.model_dump(mode="python"), default=_default, separators=(",", ":"))


def load_model(cls: type[_M], text: str) -> _M:
    """The value :func:`dumps` wrote."""
    return cls.model_validate(json.loads(text, object_hook=_hook))
