"""How the judge queue runs: :class:`QueueConfig`, made from ``settings.judge``
(the ``HPCBOX_JUDGE_*`` and ``HPCBOX_BROKER_URL`` variables, read by
:mod:`hpcbox.core.settings`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from hpcbox.core.settings import JudgeSettings, reveal
from hpcbox.judge.judge0.mapping import Judge0Config

__all__ = ["QueueConfig", "default_threads"]


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
    broker_url: str | None = field(default=None, repr=False)
    #: Threads judging in-process (embedded mode) or per ``hpcbox worker`` process.
    threads: int = 2
    #: Warm boxes per language (see :func:`~hpcbox.core.settings.parse_pool_size`);
    #: None: the judge's default.
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
    def from_settings(cls, judge: JudgeSettings) -> QueueConfig:
        """The queue ``settings.judge`` describes (``threads`` unset: :func:`default_threads`)."""
        return cls(
            broker_url=reveal(judge.broker_url),
            threads=default_threads() if judge.threads is None else judge.threads,
            pool_size=judge.pool_size,
            lease_s=judge.lease_seconds,
            retention_s=judge.retention_seconds,
            max_queue_size=judge.max_queue,
            callback_secret=reveal(judge.callback_secret),
            callback_tries=judge.callback_tries,
            callback_timeout=judge.callback_timeout,
            callback_backoff=judge.callback_backoff,
        )

    def judge0(self) -> Judge0Config:
        """The Judge0 routes' configuration that follows from these settings."""
        return Judge0Config(
            max_queue_size=self.max_queue_size,
            callbacks_max_tries=self.callback_tries,
            callbacks_timeout=self.callback_timeout,
        )
