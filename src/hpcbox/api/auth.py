"""Bearer-token authentication for the REST API (see :mod:`hpcbox.core.network`
for when a token is mandatory)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, status

__all__ = ["require_token"]


def require_token(expected: str | None) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency that checks ``Authorization: Bearer <token>``.

    Compared in constant time; the token never appears in responses or logs.
    """

    # async: FastAPI runs a plain def dependency in its thread pool, a thread
    # hand-off per request for a check that never blocks.
    async def dependency(request: Request) -> None:
        if not expected:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), expected.encode()
        ):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return dependency
