"""The app factory ``hpcbox serve`` hands to uvicorn by import path.

The CLI names this factory as a string (``hpcbox.api.server:create_app_from_env``)
so that the two shells never import each other. The app owns a
:class:`JobEngine` whose scheduler thread runs while the server does; at
shutdown, jobs still active are handed to a background agent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hpcbox.api.app import create_app
from hpcbox.core.settings import Settings, reveal
from hpcbox.jobs.engine import JobEngine
from hpcbox.judge.queue.queue import open_judge_queue

__all__ = ["create_app_from_env"]


def create_app_from_env() -> FastAPI:
    """Build the served app from ``HPCBOX_*`` settings."""
    settings = Settings.from_env()
    engine = JobEngine(settings, scheduling="thread")
    judge_queue = open_judge_queue(settings, engine.store.engine)
    app = create_app(engine, token=reveal(settings.api.token), judge_queue=judge_queue)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if judge_queue is not None:
            judge_queue.start()
        yield
        if judge_queue is not None:
            judge_queue.close()
        engine.close()

    app.router.lifespan_context = lifespan
    return app
