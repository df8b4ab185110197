"""The Celery side of the judge queue that the server and the workers share.

The server only *sends* tasks, by name, so that the engine never imports the
worker shell; ``hpcbox.worker`` defines the task under :data:`TASK_NAME`.
Messages are acknowledged after the run (``acks_late``) and given back when a
worker process is lost (``reject_on_worker_lost``); the submission's state lives
in the database, where a claim with a lease makes sure each delivery runs it at
most once at a time and a dead worker's submission runs again.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QUEUE_NAME", "TASK_NAME", "broker_priority", "celery_config", "make_client"]

TASK_NAME = "hpcbox.judge.run"
QUEUE_NAME = "hpcbox-judge"
_PRIORITY_LEVELS = 10


def celery_config(broker_url: str, *, visibility_timeout_s: float) -> dict[str, Any]:
    """Celery settings for both ends. ``visibility_timeout_s``: how long Redis keeps
    an unacknowledged message before handing it to another worker."""
    return {
        "broker_url": broker_url,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        # One message at a time per thread: a worker that dies holds no backlog,
        # and a burst spreads over every worker (the worker wakes its event loop
        # often so that this costs no throughput, see hpcbox.worker.app).
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE_NAME,
        "task_queue_max_priority": _PRIORITY_LEVELS - 1,
        "task_default_priority": 0,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout_s,
            "queue_order_strategy": "priority",
            "priority_steps": list(range(_PRIORITY_LEVELS)),
            "sep": ":",
        },
        "worker_hijack_root_logger": False,
        "task_ignore_result": True,
    }


def broker_priority(priority: int, broker_url: str) -> int:
    """hpcbox's priority (higher runs first) as the broker's 0..9 scale: Redis
    serves 0 first, RabbitMQ serves 9 first."""
    level = max(0, min(_PRIORITY_LEVELS - 1, priority))
    return _PRIORITY_LEVELS - 1 - level if broker_url.startswith("redis") else level


def make_client(broker_url: str, *, visibility_timeout_s: float) -> Any:
    """A Celery app that only sends judge tasks (for ``hpcbox serve``)."""
    from celery import Celery

    app = Celery("hpcbox-judge-client", set_as_current=False)
    app.conf.update(celery_config(broker_url, visibility_timeout_s=visibility_timeout_s))
    return app
