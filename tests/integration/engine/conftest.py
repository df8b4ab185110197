from __future__ import annotations

from collections.abc import Iterator

import pytest

from hpcbox.core.settings import Settings
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.states import ACTIVE_STATES
from tests.integration.helpers import require_sandbox


@pytest.fixture
def engine(settings: Settings) -> Iterator[JobEngine]:
    require_sandbox()
    eng = JobEngine(settings, scheduling="thread")
    yield eng
    for job in eng.list_jobs(states=ACTIVE_STATES, limit=10_000):
        eng.cancel(job.id)
    eng.close(handover=False)
