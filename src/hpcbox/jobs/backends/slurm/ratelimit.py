"""A token bucket for the SLURM commands hpcbox sends to one target.

Sites may turn on SLURM's RPC rate limiter (``SlurmctldParameters=rl_enable``):
per user, a bucket of ``rl_bucket_size`` tokens (30 by default) refilled at
``rl_refill_rate`` tokens a second (2 by default); a user who empties it has
their commands stalled and retried by slurmctld. hpcbox shares that bucket with
the user's own commands, so it keeps its own, smaller one per target: the
watcher's squeue and sacct, submissions (sbatch), lookups and scancel all take
a token from it.

Pure arithmetic: the caller passes the time (a monotonic clock's seconds) and
sleeps for the delay it gets back. Thread-safe, and first come, first served: a
call that has to wait reserves its token at once, so later callers queue
behind it instead of racing for the next refill.
"""

from __future__ import annotations

import threading

__all__ = ["RateLimit"]


class RateLimit:
    """At most ``burst`` calls at once, then ``calls_per_second`` on average.

    ``calls_per_second`` of None means no limit (every :meth:`reserve` returns
    0), for clusters that do not limit RPCs, such as hpcbox's own. The bucket
    starts full.
    """

    def __init__(self, calls_per_second: float | None, *, burst: int = 1) -> None:
        """Raises :class:`ValueError` unless ``calls_per_second`` is None or positive
        and ``burst`` is at least 1."""
        if calls_per_second is not None and not calls_per_second > 0:
            raise ValueError(f"calls_per_second must be positive, got {calls_per_second}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer of at least 1, got {burst!r}")
        self.calls_per_second = calls_per_second
        self.burst = burst
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.calls_per_second is None

    def reserve(self, now: float) -> float:
        """Take a token for a call at ``now``; return how many seconds to wait first.

        The token is taken even when the answer is not 0: the caller must
        wait that long, then call. A clock that went back refills nothing.
        """
        rate = self.calls_per_second
        if rate is None:
            return 0.0
        with self._lock:
            if self._updated is not None and now > self._updated:
                self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * rate)
            if self._updated is None or now > self._updated:
                self._updated = now
            # Below zero, the bucket is a queue: -tokens calls wait for refills.
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / rate

    def same_policy(self, calls_per_second: float | None, burst: int) -> bool:
        """True when this bucket was made with these settings (else make a new one)."""
        return self.calls_per_second == calls_per_second and self.burst == burst
