"""``python -m hpcbox.worker``: run a Celery worker that judges submissions.

``hpcbox worker`` execs this (the CLI shell never imports the worker shell).
Threads, not processes: one judge service (and warm pool) per worker process.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hpcbox.core.errors import HpcboxError
from hpcbox.core.settings import Settings
from hpcbox.judge.queue.celery_app import QUEUE_NAME
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.worker.app import build_app, warm_up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hpcbox worker", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=None, help="Judging threads.")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        settings = Settings.from_env()
        config = QueueConfig.from_settings(settings.judge)
        app = build_app(settings, config)
        warm_up(app)
    except HpcboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    concurrency = args.concurrency or config.threads
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            f"--queues={QUEUE_NAME}",
            f"--loglevel={args.loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
