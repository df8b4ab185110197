"""Settings of the judge queue, read from ``HPCBOX_JUDGE_*`` and ``HPCBOX_BROKER_URL``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hpcbox.core.errors import InvalidInputError
from hpcbox.judge.judge0.mapping import Judge0Config

__all__ = ["QueueConfig", "default_threads", "parse_pool_size"]


def parse_pool_size(text: str) -> int | dict[str, int]:
    """``HPCBOX_JUDGE_POOL_SIZE``: ``N`` warm boxes for every language, or
    ``KEY=N,KEY=N`` per language key (``*=N`` for the languages not named; without
    it they keep none warm and start a box when a run needs one).

    Raises InvalidInputError naming the setting for anything else.
    """

    def count(value: str) -> int:
        try:
            n = int(value.strip())
        except ValueError:
            n = -1
        if n < 0:
            raise InvalidInputError(
                f"pool sizes are whole numbers >= 0, got {value.strip()!r}",
                field="HPCBOX_JUDGE_POOL_SIZE",
            )
        return n

    if "=" not in text:
        return count(text)
    sizes: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or key in sizes:
            raise InvalidInputError(
                f"expected N or KEY=N,KEY=N (each language once), got {text!r}",
                field="HPCBOX_JUDGE_POOL_SIZE",
            )
        sizes[key] = count(value)
    return sizes


def default_threads() -> int:
    """Four judging threads per CPU, at most 32. A thread spends most of a
    submission waiting (its box's program, the database, a box's start), so with
    one per CPU the machine sat a quarter idle: with 4 per CPU, Python prints in
    batches went from 0.55x-0.59x to 0.67x-0.73x of bare runs (bench/judge.py,
    2 CPUs). The judge runs at most one program per CPU at once whatever the
    threads (JudgeService), so that runs do not stretch each other's wall times."""
    return max(1, min(32, 4 * (os.cpu_count() or 1)))


@dataclass(frozen=True)
class QueueConfig:
    """How submissions are queued and run."""

    #: Celery broker (``redis://...`` or ``amqp://...``); None runs submissions in-process.
    broker_url: str | None = None
    #: Threads judging in-process (embedded mode) or per ``hpcbox worker`` process.
    threads: int = 2
    #: Warm boxes per language (see :func:`parse_pool_size`); None: the judge's default.
    pool_size: int | Mapping[str, int] | None = None
    #: Seconds a claim holds without a heartbeat; a worker that dies is noticed after this.
    lease_s: float = 30.0
    #: Seconds finished submissions are kept by default (then purged): one week.
    retention_s: int = 7 * 24 * 3600
    #: Upper bound on a submission's own ``retention_s`` (native API): 90 days.
    max_retention_s: int = 90 * 24 * 3600
    #: Queued submissions before new ones are refused with 503 (Judge0's cap: 100).
    max_queue_size: int = 100
    #: Secret for the ``X-Hpcbox-Signature`` HMAC of callbacks; None sends them unsigned.
    callback_secret: str | None = field(default=None, repr=False)
    callback_tries: int = 3
    #: Seconds one callback attempt may take.
    callback_timeout: float = 5.0
    #: Seconds before the first callback retry; doubled after each failure.
    callback_backoff: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> QueueConfig:
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            return env.get(name) or default

        try:
            return cls(
                broker_url=env.get("HPCBOX_BROKER_URL") or None,
                threads=int(get("HPCBOX_JUDGE_THREADS", str(default_threads()))),
                pool_size=(
                    parse_pool_size(env["HPCBOX_JUDGE_POOL_SIZE"])
                    if env.get("HPCBOX_JUDGE_POOL_SIZE")
                    else None
                ),
                lease_s=float(get("HPCBOX_JUDGE_LEASE_SECONDS", "30")),
                retention_s=int(get("HPCBOX_JUDGE_RETENTION_SECONDS", str(7 * 24 * 3600))),
                max_queue_size=int(get("HPCBOX_JUDGE_MAX_QUEUE", "100")),
                callback_secret=env.get("HPCBOX_JUDGE_CALLBACK_SECRET") or None,
                callback_tries=int(get("HPCBOX_JUDGE_CALLBACK_TRIES", "3")),
                callback_timeout=float(get("HPCBOX_JUDGE_CALLBACK_TIMEOUT", "5")),
                callback_backoff=float(get("HPCBOX_JUDGE_CALLBACK_BACKOFF", "1")),
            )
        except ValueError as exc:
            raise InvalidInputError(f"invalid HPCBOX_JUDGE_* setting: {exc}") from exc

    def judge0(self) -> Judge0Config:
        """The Judge0 routes' configuration that follows from these settings."""
        return Judge0Config(
            max_queue_size=self.max_queue_size,
            callbacks_max_tries=self.callback_tries,
            callbacks_timeout=self.callback_timeout,
        )
