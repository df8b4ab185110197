"""The reconnect schedule: a few tries, spaced out exponentially, with jitter.

Jitter matters when many transports lose the same login node at once (a
restart): without it they all reconnect in the same instant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hpcbox.core.errors import InvalidInputError

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """How often and how far apart to try connecting before giving up.

    The defaults give up after about 3.5 s of waiting plus the attempts
    themselves: long enough to ride out an sshd restart, short enough that a
    watcher loop reports an unreachable target promptly and tries again on its
    next poll.
    """

    #: Connection attempts in all, the first one included.
    attempts: int = 4
    #: Seconds to wait after the first failed attempt.
    first_delay_s: float = 0.5
    #: Each wait is this many times the previous one,
    factor: float = 2.0
    #: but never longer than this many seconds (jitter included).
    max_delay_s: float = 8.0
    #: Each wait is scaled by a random factor in [1 - jitter, 1 + jitter].
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError("must be at least 1", field="attempts")
        if self.first_delay_s < 0 or self.max_delay_s < 0:
            raise InvalidInputError("delays cannot be negative", field="first_delay_s")
        if self.factor < 1:
            raise InvalidInputError("must be at least 1", field="factor")
        if not 0 <= self.jitter < 1:
            raise InvalidInputError("must be in [0, 1)", field="jitter")

    def delays(self, rng: random.Random | None = None) -> list[float]:
        """Return the waits between attempts: ``attempts - 1`` values in seconds."""
        rng = rng or random.Random()
        waits = []
        delay = self.first_delay_s
        for _ in range(self.attempts - 1):
            spread = rng.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0
            waits.append(min(delay * spread, self.max_delay_s))
            delay *= self.factor
        return waits
