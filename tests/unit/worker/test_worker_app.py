"""The Celery worker's app: its settings and the event-loop timer that keeps it
taking messages (no broker needed: nothing here connects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcbox.core.settings import Settings
from hpcbox.judge.queue.celery_app import celery_config
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.worker.app import POLL_INTERVAL_S, _PollOften, build_app


class _Hub:
    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_repeatedly(self, interval: float, fun: Any) -> None:
        self.timers.append((interval, fun))


class _Worker:
    def __init__(self, hub: _Hub | None) -> None:
        self.hub = hub


def test_the_worker_takes_one_message_per_thread_and_acks_after_the_run() -> None:
    conf = celery_config("redis://127.0.0.1:6379/0", visibility_timeout_s=60)
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]


def test_the_worker_wakes_its_event_loop_often(tmp_path: Path) -> None:
    app = build_app(Settings(home=tmp_path), QueueConfig(broker_url="redis://127.0.0.1:6379/0"))
    assert _PollOften in app.steps["worker"]
    hub = _Hub()
    step = _PollOften.__new__(_PollOften)
    step.start(_Worker(hub))
    assert [interval for interval, _ in hub.timers] == [POLL_INTERVAL_S]
    assert POLL_INTERVAL_S <= 0.05
    hub.timers[0][1]()  # the timer's work is to wake the loop: it does nothing else
    step.start(_Worker(None))  # a worker without an event loop: nothing to do
