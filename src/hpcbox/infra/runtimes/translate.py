"""Map docker SDK and connection errors onto hpcbox's error hierarchy, once.

Every call into the SDK runs inside :func:`engine_errors`, so callers of a
runtime only ever see :class:`~hpcbox.core.errors.HpcboxError` subclasses,
each chained to the original exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions

from hpcbox.core.errors import (
    ConflictError,
    HpcboxError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    TransientError,
)

__all__ = ["engine_errors", "translate"]

#: Engine messages can be long (whole build logs); keep errors readable.
_MAX_MESSAGE = 600
#: Podman 4.3 answers some conflicts with 500 where Docker says 409: a name
#: already taken, an exec in a stopped container, a network still in use.
_PODMAN_CONFLICTS = ("already in use", "state improper", "is being used", "is not running")


def translate(exc: Exception, what: str) -> HpcboxError:
    """The hpcbox error for ``exc``, raised while doing ``what`` (e.g. "start node-1")."""
    if isinstance(exc, docker.errors.NotFound):
        return NotFoundError(f"{what}: not found ({_explain(exc)})")
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        detail = f"{what}: {_explain(exc)}"
        # Docker answers 403 to removing a network that still has endpoints.
        if status in (403, 409) or (status == 500 and _looks_like_conflict(detail)):
            return ConflictError(detail)
        if status in (400, 422):
            return InvalidInputError(detail)
        if status in (502, 503, 504):
            return TransientError(detail, retry_after=2.0)
        return PermanentError(detail)
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientError(f"{what}: the container engine did not answer in time")
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError):
        return TransientError(f"{what}: cannot reach the container engine ({_clip(str(exc))})")
    if isinstance(exc, docker.errors.DockerException):
        return PermanentError(f"{what}: {_clip(str(exc))}")
    return PermanentError(f"{what}: {type(exc).__name__}: {_clip(str(exc))}")


@contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Translate SDK and connection errors raised inside the block (see :func:`translate`)."""
    try:
        yield
    except HpcboxError:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise translate(exc, what) from exc


def _looks_like_conflict(detail: str) -> bool:
    return any(hint in detail for hint in _PODMAN_CONFLICTS)


def _explain(exc: docker.errors.APIError) -> str:
    explanation = exc.explanation
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return _clip(str(explanation or exc))


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + " ..."
