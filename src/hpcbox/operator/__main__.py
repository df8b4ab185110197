"""``python -m hpcbox.operator``: run the SlurmJob operator (what ``hpcbox operator`` execs).

Options::

    --namespace NS        watch this namespace (repeatable; globs as kopf allows)
    --all-namespaces      watch the whole cluster (needs the cluster-wide RBAC)
    --liveness URL        serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz
    --log-image IMAGE     image of the Pods that print finished jobs' output
    --poll-interval S     seconds between two passes of the status poller
    -v / --verbose        debug logging

The job store is hpcbox's usual one: ``$HPCBOX_HOME`` (SQLite) or
``$HPCBOX_DATABASE_URL`` (PostgreSQL); keep it on a persistent volume so a
restarted operator finds its jobs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hpcbox.core.errors import HpcboxError

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="hpcbox operator", description="Run the SlurmJob Kubernetes operator (kopf)."
    )
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="namespace to watch (repeatable)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--liveness", metavar="URL", help="liveness endpoint (kopf)")
    parser.add_argument("--log-image", metavar="IMAGE", help="image of the log Pods")
    parser.add_argument("--poll-interval", type=float, default=1.0, metavar="S")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.poll_interval <= 0:
        parser.error("--poll-interval must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Imported here: --help stays fast, and a bad option never starts anything.
    import kopf

    from hpcbox.jobs.engine import JobEngine
    from hpcbox.operator.controller import DEFAULT_LOG_IMAGE, SlurmJobController
    from hpcbox.operator.handlers import registry
    from hpcbox.operator.lightkube_api import LightkubeApi

    try:
        kube = LightkubeApi()
        engine = JobEngine(scheduling="thread")
    except HpcboxError as exc:
        print(f"hpcbox operator: {exc}", file=sys.stderr)
        return exc.exit_code
    controller = SlurmJobController(
        engine, kube, log_image=args.log_image or DEFAULT_LOG_IMAGE, interval=args.poll_interval
    )
    # standalone: one replica (the Deployment says so), no peering resources needed.
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespaces or (),
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(controller=controller),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
