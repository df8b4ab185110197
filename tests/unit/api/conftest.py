"""Fixtures shared by the judge's route tests (/judge0 and /v1/submissions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hpcbox.core.settings import Settings
from hpcbox.judge.queue.config import QueueConfig
from tests.unit.api.judge_fakes import Harness


@pytest.fixture
def harness(settings: Settings) -> Iterator[Harness]:
    """The app over a started queue (two judging threads) and a fake judge."""
    h = Harness(settings, QueueConfig(threads=2, lease_s=5))
    h.start()
    yield h
    h.close()
