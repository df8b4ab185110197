"""The reconnect schedule."""

from __future__ import annotations

import random

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.transport import Backoff


def test_default_schedule_without_jitter() -> None:
    assert Backoff(jitter=0).delays() == [0.5, 1.0, 2.0]


def test_delays_are_capped() -> None:
    backoff = Backoff(attempts=7, first_delay_s=1, factor=3, max_delay_s=10, jitter=0)
    assert backoff.delays() == [1, 3, 9, 10, 10, 10]


def test_one_attempt_means_no_wait() -> None:
    assert Backoff(attempts=1).delays() == []


def test_jitter_stays_within_its_band_and_under_the_cap() -> None:
    backoff = Backoff(attempts=6, first_delay_s=1, factor=2, max_delay_s=10, jitter=0.25)
    rng = random.Random(7)
    for _ in range(200):
        for base, delay in zip([1, 2, 4, 8, 10], backoff.delays(rng), strict=True):
            assert base * 0.75 <= delay <= min(base * 1.25, 10)


def test_jitter_spreads_reconnects() -> None:
    rng = random.Random(1)
    firsts = {Backoff().delays(rng)[0] for _ in range(20)}
    assert len(firsts) > 1


@pytest.mark.parametrize(
    "kwargs",
    [{"attempts": 0}, {"first_delay_s": -1}, {"factor": 0.5}, {"jitter": 1.0}, {"jitter": -0.1}],
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError):
        Backoff(**kwargs)  # type: ignore[arg-type]
