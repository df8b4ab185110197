"""The Celery app of ``hpcbox worker``: the task that runs one judge submission.

The task gets a submission's token, claims it in the database (compare-and-set
with a lease), judges it with this machine's :class:`JudgeService` and stores the
result; the message is acknowledged only after that (``acks_late``). A message
for a submission that is done, deleted, or held by a live claim elsewhere is
acknowledged without running anything, so redeliveries never run it twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, bootsteps

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.judge.queue.callbacks import CallbackSender
from hpcbox.judge.queue.celery_app import TASK_NAME, celery_config
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.judge.queue.queue import JudgeBackend, load_judge_service
from hpcbox.judge.queue.runner import run_claimed
from hpcbox.judge.store.repository import SubmissionStore

__all__ = ["build_app"]

_log = logging.getLogger(__name__)


class _WorkerState:
    """What the task needs, built once per worker process on first use."""

    def __init__(self, settings: Settings, config: QueueConfig) -> None:
        self.settings = settings
        self.config = config
        self._lock = threading.Lock()
        self._ready: tuple[SubmissionStore, JudgeBackend, CallbackSender] | None = None

    def get(self) -> tuple[SubmissionStore, JudgeBackend, CallbackSender]:
        with self._lock:
            if self._ready is None:
                store = SubmissionStore(open_engine(self.settings))
                service = load_judge_service(self.settings, pool_size=self.config.pool_size)
                callbacks = CallbackSender(
                    secret=self.config.callback_secret,
                    tries=self.config.callback_tries,
                    timeout=self.config.callback_timeout,
                    backoff=self.config.callback_backoff,
                )
                self._ready = (store, service, callbacks)
            return self._ready


def build_app(settings: Settings, config: QueueConfig) -> Celery:
    """The worker's Celery app, its task registered under ``TASK_NAME``."""
    if not config.broker_url:
        raise InvalidInputError(
            "hpcbox worker needs a broker: set HPCBOX_BROKER_URL (redis://... or amqp://...)",
            field="HPCBOX_BROKER_URL",
        )
    app = Celery("hpcbox-worker", set_as_current=False)
    app.conf.update(celery_config(config.broker_url, visibility_timeout_s=3600))
    state = _WorkerState(settings, config)

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def run(token: str) -> str:
        store, service, callbacks = state.get()
        record = store.claim(token, lease_s=config.lease_s)
        if record is None:
            return "skipped"
        _log.info("judging %s (run %d)", token, record.runs)
        finished = run_claimed(
            store,
            service,
            record,
            lease_s=config.lease_s,
            retention_s=config.retention_s,
            callbacks=callbacks,
        )
        return "lost" if finished is None else finished.state

    app.conf.hpcbox_state = state
    app.steps["worker"].add(_PollOften)
    return app


#: How often the worker's event loop looks again whether it may take a message.
POLL_INTERVAL_S = 0.01


class _PollOften(bootsteps.StartStopStep):  # type: ignore[misc]
    """Wakes the worker's event loop every POLL_INTERVAL_S.

    With acks_late and Redis, a message is asked for only when the loop wakes up
    and its prefetch allows one; a task acknowledged from a pool thread does not
    wake it, so the loop took the next message only at its next timer, up to 2 s
    later (celery/celery#4378): measured, 1.3 submissions/s with one worker. A
    timer that fires often makes it ask within POLL_INTERVAL_S of each ack, at the
    cost of 100 cheap wake-ups a second.
    """

    requires = ("celery.worker.components:Hub",)

    def start(self, worker: Any) -> None:
        if worker.hub is not None:
            worker.hub.call_repeatedly(POLL_INTERVAL_S, _nothing)


def _nothing() -> None:
    """The timer's work: none (waking the loop is the point)."""


def warm_up(app: Any) -> None:
    """Start the judge service before taking the first message (warm pool ready)."""
    app.conf.hpcbox_state.get()
