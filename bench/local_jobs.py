#!/usr/bin/env python3
"""Benchmark local jobs: engine and REST throughput, sandbox overhead, listing speed.

Everything is measured side by side in one run, so the ratios hold on a noisy
machine even when absolute times drift:

1. bare fork-exec of ``/bin/true`` (``subprocess.run``) against the same command
   through the "job" sandbox (bubblewrap + cgroup): the sandbox's overhead per job;
2. N trivial jobs through the engine's Python API: submissions per second and
   jobs per second end to end (submit of the first to completion of the last);
3. the same through the REST API of a real ``hpcbox serve``;
4. ``hpcbox job list --json`` (a whole CLI process) over 100,000 stored jobs.

Usage: .venv/bin/python bench/local_jobs.py [--jobs 1000] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.backends.local.sandbox import LaunchRequest, ResourceLimits, Sandbox
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import ACTIVE_STATES
from hpcbox.jobs.store import JobStore

TRUE = "/bin/true"


def sandbox_overhead(runs: int, workdir: Path) -> dict[str, float]:
    bare = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([TRUE], check=True)
        bare.append(time.perf_counter() - t)
    sandbox = Sandbox()
    boxed = []
    for i in range(runs):
        run_dir = workdir / f"run{i}"
        run_dir.mkdir()
        request = LaunchRequest(
            run_id=f"bench-{os.getpid()}-{i}",
            argv=[TRUE],
            env={"PATH": "/usr/bin:/bin"},
            workdir=str(run_dir),
            stdout_path=str(run_dir / "stdout"),
            stderr_path=str(run_dir / "stderr"),
            status_path=str(run_dir / "status.json"),
            limits=ResourceLimits(cpus=1.0, memory_bytes=256 * 1024**2, pids=64),
        )
        t = time.perf_counter()
        outcome = sandbox.run(request, timeout=30)
        boxed.append(time.perf_counter() - t)
        assert outcome.exit_code == 0, outcome
    bare_ms = statistics.median(bare) * 1000
    boxed_ms = statistics.median(boxed) * 1000
    return {
        "bare_ms": round(bare_ms, 3),
        "sandbox_ms": round(boxed_ms, 3),
        "overhead_ms": round(boxed_ms - bare_ms, 3),
        "ratio": round(boxed_ms / bare_ms, 2),
    }


def engine_throughput(n: int, home: Path) -> dict[str, float]:
    settings = Settings(home=home)
    engine = JobEngine(settings, scheduling="thread")
    spec = parse_job_spec({"command": [TRUE], "workdir": str(home)})
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            engine.submit(spec)
        t_submit = time.perf_counter() - t0
        while engine.store.count(states=ACTIVE_STATES):
            time.sleep(0.05)
        t_all = time.perf_counter() - t0
        failed = n - engine.store.count_by_state().get("COMPLETED", 0)
    finally:
        engine.close(handover=False)
    return {
        "jobs": n,
        "submit_per_s": round(n / t_submit, 1),
        "end_to_end_per_s": round(n / t_all, 1),
        "not_completed": failed,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rest_throughput(n: int, home: Path, clients: int = 4) -> dict[str, float]:
    port = _free_port()
    env = dict(os.environ)
    env.update(Settings(home=home).to_env())
    server = subprocess.Popen(
        [sys.executable, "-m", "hpcbox.cli.main", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = {"command": [TRUE], "workdir": str(home)}
        per_client = n // clients

        def post_many(_: int) -> int:
            with httpx.Client(base_url=base, timeout=30) as http:
                for _ in range(per_client):
                    http.post("/v1/jobs", json=body).raise_for_status()
            return per_client

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            total = sum(pool.map(post_many, range(clients)))
        t_submit = time.perf_counter() - t0
        with httpx.Client(base_url=base, timeout=30) as http:
            while True:
                counts = {
                    state: len(http.get("/v1/jobs", params={"state": state, "limit": 1}).json())
                    for state in ("NEW", "PENDING", "RUNNING")
                }
                if not any(counts.values()):
                    break
                time.sleep(0.05)
        t_all = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    store = JobStore(open_engine(Settings(home=home)))
    done = store.count_by_state().get("COMPLETED", 0)
    store.engine.dispose()
    return {
        "jobs": total,
        "clients": clients,
        "submit_per_s": round(total / t_submit, 1),
        "end_to_end_per_s": round(total / t_all, 1),
        "not_completed": total - done,
    }


def list_100k(home: Path, repeats: int = 5) -> dict[str, float]:
    engine = open_engine(Settings(home=home))
    spec = parse_job_spec({"command": [TRUE]}).model_dump_json()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, name, backend, target, state, attempt, cpus, "
                "created_at, updated_at) VALUES (:i, 'true', 'local', 'local', 'COMPLETED', "
                "1, 1, '2026-01-01', '2026-01-01')"
            ),
            [{"i": i} for i in range(1, 100_001)],
        )
        conn.execute(
            text(
                "INSERT INTO attempts (job_id, number, spec, state, exit_code, submitted_at) "
                "VALUES (:i, 1, :s, 'COMPLETED', 0, '2026-01-01')"
            ),
            [{"i": i, "s": spec} for i in range(1, 100_001)],
        )
    engine.dispose()
    env = dict(os.environ)
    env.update(Settings(home=home).to_env())
    cli = Path(sys.executable).parent / "hpcbox"
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = subprocess.run(
            [str(cli), "job", "list", "--json"], env=env, capture_output=True, check=True
        )
        times.append(time.perf_counter() - t)
    listed = len(json.loads(out.stdout))
    t = time.perf_counter()
    subprocess.run([str(cli), "--version"], env=env, capture_output=True, check=True)
    version_s = time.perf_counter() - t
    return {
        "stored_jobs": 100_000,
        "listed_per_page": listed,
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
        "cli_startup_s": round(version_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--overhead-runs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    with tempfile.TemporaryDirectory(prefix="hpcbox-bench-") as tmp:
        root = Path(tmp)
        for name in ("overhead", "engine", "rest", "list"):
            (root / name).mkdir()
        results["sandbox"] = sandbox_overhead(args.overhead_runs, root / "overhead")
        results["engine_api"] = engine_throughput(args.jobs, root / "engine")
        results["rest_api"] = rest_throughput(args.jobs, root / "rest")
        results["list_100k"] = list_100k(root / "list")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    s, e, r, ls = (
        results["sandbox"],
        results["engine_api"],
        results["rest_api"],
        results["list_100k"],
    )
    print(f"machine: {results['machine']}")
    print(
        f"sandbox overhead: bare fork-exec {s['bare_ms']} ms, sandboxed {s['sandbox_ms']} ms "
        f"-> +{s['overhead_ms']} ms per job (x{s['ratio']})   [target <= 10 ms]"
    )
    print(
        f"engine API, {e['jobs']} jobs: submit {e['submit_per_s']}/s, "
        f"end to end {e['end_to_end_per_s']}/s, not completed {e['not_completed']}"
    )
    print(
        f"REST API, {r['jobs']} jobs ({r['clients']} clients): submit {r['submit_per_s']}/s, "
        f"end to end {r['end_to_end_per_s']}/s, not completed {r['not_completed']}"
        "   [target >= 100/s]"
    )
    print(
        f"job list --json over {ls['stored_jobs']} jobs ({ls['listed_per_page']} per page): "
        f"median {ls['median_s']} s, max {ls['max_s']} s; bare CLI start "
        f"{ls['cli_startup_s']} s   [target < 1 s]"
    )


if __name__ == "__main__":
    main()
