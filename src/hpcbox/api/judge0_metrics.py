"""Prometheus metrics of the judge: queue depth, per-language latency, pool occupancy.

Read from the database at scrape time, so that the numbers cover every worker
(Celery workers on other machines included), which is what autoscaling needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hpcbox.core.clock import utcnow
from hpcbox.judge.model import SubmissionState
from hpcbox.judge.queue.queue import JudgeQueue

__all__ = ["JudgeCollector"]

#: Latency quantiles cover the submissions finished in this window.
WINDOW = timedelta(minutes=5)
_QUANTILES = (0.5, 0.9, 0.99)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class JudgeCollector(Collector):
    def __init__(self, queue: JudgeQueue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = self._queue.store.count_by_state()
        depth = GaugeMetricFamily(
            "hpcbox_judge_queue_depth", "Submissions by state", labels=["state"]
        )
        for state in (SubmissionState.QUEUED, SubmissionState.PROCESSING):
            depth.add_metric([state.value], counts.get(state, 0))
        yield depth
        waits: dict[str, list[float]] = defaultdict(list)
        runs: dict[str, list[float]] = defaultdict(list)
        for language, queued, ran in self._queue.store.recent_latencies(since=utcnow() - WINDOW):
            waits[language].append(queued)
            runs[language].append(queued + ran)
        latency = GaugeMetricFamily(
            "hpcbox_judge_latency_seconds",
            "Seconds from submission to result, by language, over the last 5 minutes",
            labels=["language", "quantile"],
        )
        wait = GaugeMetricFamily(
            "hpcbox_judge_queue_wait_seconds",
            "Seconds from submission to the start of its run, over the last 5 minutes",
            labels=["language", "quantile"],
        )
        finished = GaugeMetricFamily(
            "hpcbox_judge_finished_recent",
            "Submissions finished in the last 5 minutes, by language",
            labels=["language"],
        )
        for language in sorted(runs):
            finished.add_metric([language], len(runs[language]))
            for q in _QUANTILES:
                latency.add_metric([language, str(q)], _quantile(runs[language], q))
                wait.add_metric([language, str(q)], _quantile(waits[language], q))
        yield latency
        yield wait
        yield finished
        pool = GaugeMetricFamily(
            "hpcbox_judge_pool_ready",
            "Warm sandboxes ready, by language (this process)",
            labels=["language"],
        )
        try:
            occupancy = self._queue.service.pool_occupancy()
        except Exception:  # a scrape must not fail because the pool is restarting
            occupancy = {}
        for language, ready in sorted(occupancy.items()):
            pool.add_metric([language], ready)
        yield pool
