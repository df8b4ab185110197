"""Prometheus metrics of the REST process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hpcbox.jobs.model.states import JobState

__all__ = ["Metrics"]


class _JobsByState(Collector):
    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("hpcbox_jobs", "Jobs in the store by state", labels=["state"])
        counts = self._counts()
        for state in JobState:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class Metrics:
    """One registry per app, so that tests creating several apps do not clash."""

    def __init__(self, job_counts: Callable[[], Mapping[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.submitted = Counter(
            "hpcbox_jobs_submitted", "Jobs submitted through the API", registry=self.registry
        )
        self.requests = Counter(
            "hpcbox_http_requests",
            "HTTP requests by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hpcbox_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=self.registry,
        )
        self.registry.register(_JobsByState(job_counts))
