#!/usr/bin/env python3
"""Benchmark jobs on a SLURM cluster over SSH, against a container cluster.

(a) Submissions: N jobs through hpcbox (``JobEngine.submit`` until every job has
    its SLURM id) next to a raw loop of ``sbatch --parsable`` over one persistent
    asyncssh connection (same user, same script, uploaded once), in the same run.
    Prints raw seconds / hpcbox seconds: >= 1.0 means hpcbox is no slower.
(b) Remote commands per poll with 10, 100 and 1,000 active jobs (``sleep`` jobs,
    mostly pending), counted by the SSH transport itself (exec channels opened).
(c) State lag from SLURM's completion (sacct's ``End``) to hpcbox's COMPLETED
    (the job's ``finished_at``), p50 and p95, with the watcher's adaptive interval
    (1-10 s) as it runs in ``hpcbox serve``.

The container cluster does not turn on SLURM's RPC rate limiter, so its target is
registered without hpcbox's rate limit (``rate_limit: 0``); with the default of 2
commands per second, (a) would be paced by the limit, not by the submit path.

Usage: .venv/bin/python bench/slurm_ssh.py [--quick] [--jobs 1000] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.spec import parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.backends.slurm.backend import SlurmBackend
from hpcbox.jobs.backends.slurm.watcher import RemoteJobs
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from hpcbox.jobs.model.target import TargetSpec
from hpcbox.jobs.target_store import TargetStore

CLUSTER = "sshbench"
USER = "bench"
SCRIPT = "#!/bin/bash\ntrue\n"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def slurm(manager: ClusterManager, argv: list[str]) -> str:
    result = manager.exec(CLUSTER, argv, user=USER)
    if result.exit_code != 0:
        raise RuntimeError(f"{argv}: {result.stderr.decode()}")
    return result.stdout.decode()


def remote_jobs(engine: JobEngine) -> RemoteJobs:
    """The SLURM backend's submitter and watcher, which the measurements drive."""
    slurm = engine.backend("slurm")
    assert isinstance(slurm, SlurmBackend)
    return slurm.remote


def wait_queue_empty(manager: ClusterManager, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while slurm(manager, ["squeue", "-h", "-u", USER, "-o", "%i"]).strip():
        if time.monotonic() > deadline:
            raise RuntimeError("the queue did not drain")
        time.sleep(2)


# -- (a) -------------------------------------------------------------------------------


async def _raw_loop(target: TargetSpec, jobs: int) -> float:
    """Seconds for ``jobs`` sequential ``sbatch`` calls over one asyncssh connection."""
    import asyncssh

    known = asyncssh.import_known_hosts(f"[{target.host}]:{target.port} {target.host_key}")
    async with asyncssh.connect(
        target.host,
        port=target.port,
        username=target.user,
        client_keys=[target.key_path] if target.key_path else None,
        known_hosts=known,
    ) as conn:
        async with conn.start_sftp_client() as sftp, sftp.open("raw.sh", "w") as f:
            await f.write(SCRIPT)
        started = time.perf_counter()
        for index in range(jobs):
            result = await conn.run(
                f"sbatch --parsable --job-name=raw-{index} --output=/dev/null raw.sh", check=True
            )
            int(str(result.stdout).strip().split(";")[0])
        return time.perf_counter() - started


def hpcbox_submissions(engine: JobEngine, jobs: int) -> float:
    """Seconds from the first ``submit`` until every job has its SLURM id."""
    spec = parse_job_spec({"script": SCRIPT, "resources": {"memory": "10M"}})
    started = time.perf_counter()
    ids = [engine.submit(spec, target=CLUSTER).id for _ in range(jobs)]
    while engine.store.count(states={JobState.NEW}):
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    missing = [i for i in ids if not engine.get(i).current.native_id]
    if missing:
        raise RuntimeError(f"{len(missing)} jobs have no SLURM id: {engine.get(missing[0])}")
    return elapsed


# -- (b) -------------------------------------------------------------------------------


def commands_per_poll(engine: JobEngine, counts: list[int], polls: int) -> dict[int, Any]:
    """Bring the number of active ``sleep`` jobs to each of ``counts`` and count the
    remote commands of ``polls`` forced polls."""
    remote = remote_jobs(engine)
    transport = remote.remote(CLUSTER).transport
    spec = parse_job_spec({"command": ["sleep", "900"], "resources": {"memory": "10M"}})
    results: dict[int, Any] = {}
    active = 0
    for count in counts:
        for _ in range(count - active):
            engine.submit(spec, target=CLUSTER)
        active = count
        while engine.store.count(states={JobState.NEW}):
            remote.step()  # submits
        per_poll, seconds = [], []
        for _ in range(polls):
            remote._state[CLUSTER].next_poll = 0  # force a poll now
            before = transport.stats().commands_run  # type: ignore[attr-defined]
            started = time.perf_counter()
            seen = remote.step()
            seconds.append(time.perf_counter() - started)
            per_poll.append(transport.stats().commands_run - before)  # type: ignore[attr-defined]
            if seen != count:
                raise RuntimeError(f"expected {count} active jobs, the watcher saw {seen}")
        results[count] = {
            "commands_per_poll": statistics.mean(per_poll),
            "max_commands_per_poll": max(per_poll),
            "poll_seconds_p50": round(statistics.median(seconds), 4),
        }
        log(f"(b) {count} active jobs: {results[count]}")
    transport.run(["scancel", "-u", USER])
    return results


# -- (c) -------------------------------------------------------------------------------


def state_lag(engine: JobEngine, manager: ClusterManager, jobs: int) -> dict[str, Any]:
    """Lag from sacct's End to hpcbox's finished_at for ``jobs`` short jobs, submitted
    in waves so that completions are spread over time."""
    spec = parse_job_spec({"command": ["sleep", "3"], "resources": {"memory": "10M"}})
    ids = []
    for _ in range(jobs):
        ids.append(engine.submit(spec, target=CLUSTER).id)
        time.sleep(0.7)
    deadline = time.monotonic() + 600
    while any(not engine.get(i).terminal for i in ids):
        if time.monotonic() > deadline:
            raise RuntimeError("jobs did not finish")
        time.sleep(0.5)
    natives = {str(engine.get(i).current.native_id): engine.get(i) for i in ids}
    out = slurm(manager, ["sacct", "-X", "-n", "-P", "-j", ",".join(natives), "-o", "JobID,End"])
    zone = slurm(manager, ["date", "+%z"]).strip()
    lags = []
    for line in out.splitlines():
        native, end = line.split("|")
        job = natives[native]
        if job.state is not JobState.COMPLETED or job.current.finished_at is None:
            raise RuntimeError(f"job {job.id} ended {job.state}")
        slurm_end = datetime.strptime(end + zone, "%Y-%m-%dT%H:%M:%S%z")
        finished = job.current.finished_at
        if finished.tzinfo is None:
            finished = finished.replace(tzinfo=UTC)
        lags.append((finished - slurm_end).total_seconds())
    lags.sort()
    return {
        "jobs": len(lags),
        "p50_s": round(statistics.median(lags), 2),
        "p95_s": round(lags[max(0, round(0.95 * len(lags)) - 1)], 2),
        "max_s": round(lags[-1], 2),
        "min_interval_s": remote_jobs(engine).min_interval,
        "max_interval_s": remote_jobs(engine).max_interval,
        "note": "sacct's End has 1 s resolution (truncated), so each lag may read up to "
        "1 s longer than it was",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="submissions for (a)")
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--polls", type=int, default=5, help="forced polls per count in (b)")
    parser.add_argument("--lag-jobs", type=int, default=40, help="jobs for (c)")
    parser.add_argument("--quick", action="store_true", help="200 submissions, 20 lag jobs")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.lag_jobs = 200, 20

    cluster_home = Path(os.environ.get("HPCBOX_BENCH_HOME", "/var/tmp/hpcbox-bench"))
    cluster_home.mkdir(parents=True, exist_ok=True)
    cluster_settings = Settings(home=cluster_home)
    manager = ClusterManager(
        cluster_settings, store=ClusterStore(open_engine(cluster_settings)), progress=log
    )
    spec = parse_cluster_spec(
        {
            "name": CLUSTER,
            "workers": {"count": 2, "cpus": 2, "memory": "1G"},
            "accounting": True,
            "users": [{"name": USER}],
        }
    )
    if any(c.name == CLUSTER for c in manager.list_clusters()):
        manager.down(CLUSTER, purge=True)
    manager.up(spec)
    state = Path(tempfile.mkdtemp(prefix="hpcbox-bench-ssh-"))
    report: dict[str, Any] = {}
    try:
        target = TargetStore(manager.store.engine).get(CLUSTER).model_copy(update={"rate_limit": 0})
        settings = Settings(home=state)
        TargetStore(open_engine(settings)).add(target, replace=True)

        log(f"(a) raw sbatch loop, {args.jobs} jobs")
        raw = asyncio.run(_raw_loop(target, args.jobs))
        wait_queue_empty(manager)
        log(f"(a) hpcbox, {args.jobs} jobs")
        with JobEngine(settings, scheduling="thread") as engine:
            ours = hpcbox_submissions(engine, args.jobs)
            commands = remote_jobs(engine).remote(CLUSTER).transport.stats()  # type: ignore[attr-defined]
        wait_queue_empty(manager)
        report["a"] = {
            "jobs": args.jobs,
            "raw_sbatch_loop_s": round(raw, 2),
            "hpcbox_s": round(ours, 2),
            "raw_per_s": round(args.jobs / raw, 1),
            "hpcbox_per_s": round(args.jobs / ours, 1),
            "ratio_raw_over_hpcbox": round(raw / ours, 2),
            "hpcbox_ssh_connections": commands.connections_made,
        }
        log(f"(a) {report['a']}")

        engine = JobEngine(settings, scheduling="none")
        try:
            report["b"] = commands_per_poll(engine, sorted(args.counts), args.polls)
        finally:
            engine.close(handover=False)
        wait_queue_empty(manager)

        log(f"(c) state lag, {args.lag_jobs} jobs")
        with JobEngine(settings, scheduling="thread") as engine:
            report["c"] = state_lag(engine, manager, args.lag_jobs)
        log(f"(c) {report['c']}")
    finally:
        shutil.rmtree(state, ignore_errors=True)
        if not args.keep:
            manager.down(CLUSTER, purge=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    a = report["a"]
    print(
        f"(a) {a['jobs']} submissions: raw sbatch loop {a['raw_sbatch_loop_s']} s "
        f"({a['raw_per_s']}/s), hpcbox {a['hpcbox_s']} s ({a['hpcbox_per_s']}/s); "
        f"ratio raw/hpcbox = {a['ratio_raw_over_hpcbox']}"
    )
    for count, row in report["b"].items():
        print(
            f"(b) {count:>5} active jobs: {row['commands_per_poll']:.1f} commands per poll "
            f"(max {row['max_commands_per_poll']}), poll {row['poll_seconds_p50']} s"
        )
    c = report["c"]
    print(
        f"(c) state lag over {c['jobs']} jobs: p50 {c['p50_s']} s, p95 {c['p95_s']} s, "
        f"max {c['max_s']} s (poll interval {c['min_interval_s']}-{c['max_interval_s']} s)"
    )


if __name__ == "__main__":
    main()
