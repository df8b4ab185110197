#!/usr/bin/env python3
"""Benchmark the judge.

(a) ``warm``: a trivial C program (``int main(void){return 0;}``) run in a warm
    untrusted sandbox (prepared ahead, as the warm pool does; binary written in)
    against the bare exec of the same binary (posix_spawn + waitpid), in the same
    run. Reported: median and p90 per run for both, the overhead and the ratio.
    Target: at most 2 ms of overhead per run.

(b) ``throughput``: end-to-end submissions/s through the Judge0 routes of a real
    ``hpcbox serve`` (uvicorn, in-process queue, SQLite, fresh home), for a Python
    print and a C hello (compiled), against the same compile-and-run without
    sandbox or API (plain subprocesses: ``gcc`` then the binary; ``python3``), in
    the same run and at the same concurrency. Each API client does what a Judge0
    client does: ``POST /judge0/submissions`` (wait=false), then polls
    ``GET /judge0/submissions/{token}`` until the status is final, every 0.1 s on
    average (jittered between 0.05 and 0.15 s: independent clients are not in step;
    clients of Judge0 in the wild poll every 0.8 to 1.5 s; more often costs the
    server more polls), 16 of them: each has one submission in flight and waits
    at least one poll for it, so 8 clients could never ask for more than 80
    submissions/s, while every client more lengthens the queue, and so the polls
    per submission. Measured a
    second time with clients that ask for the result in the same request, as
    Judge0 allows: ``POST /judge0/submissions?wait=true`` (one request per
    submission, no polls). Measured a third time with batch clients, as a course
    tool sends a deadline's burst:
    ``POST /judge0/submissions/batch`` of up to 20 submissions, then ``GET
    /judge0/submissions/batch?tokens=...`` until all are final. Reported:
    submissions/s for both sides and the ratio, per client kind. Target: ratio
    at least 0.75.

(c) ``latency``: ``POST /judge0/submissions?wait=true`` of a Python print, one at
    a time, on the same kind of server. Reported: p50 and p99. Target: p50 under
    150 ms.

``requests`` (only when named, a diagnostic of (b)): the server's CPU per request
    of each kind a Judge0 client polls with, and the idle server's CPU.

Needs root, bubblewrap, gcc and /usr/bin/python3 on the host, and the judge runtime
(built on first use; ``hpcbox judge setup``). Usage:
.venv/bin/python bench/judge.py [--runs 200] [--submissions 1000] [--concurrency 8]
[--poll-clients 16]
[--poll 0.1] [--json]
[--part warm|throughput|latency|requests] [--clients single|wait|batch ...] [--threads N]
[--language python3|c ...] [--broker redis://HOST:6379/N]  (judge in an ``hpcbox worker``
process via Celery)
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop

from hpcbox.core.settings import Settings
from hpcbox.infra.isolation.cgroup.detect import detect_driver
from hpcbox.judge.languages import load_registry
from hpcbox.judge.rootfs import ensure_rootfs
from hpcbox.judge.sandbox import RunSpec, UntrustedSandbox
from hpcbox.judge.service import judge_cache_dir

TRIVIAL_C = b"int main(void){return 0;}\n"
_ENV = {"PATH": "/usr/bin:/bin"}


@dataclass(frozen=True)
class Options:
    """What the command line sets for every part."""

    #: Runs (a) and requests (c).
    runs: int = 200
    #: Concurrent clients of the API and concurrent bare compile-and-runs (b).
    concurrency: int = 8
    #: Seconds between two polls of one submission or batch (b).
    poll_s: float = 0.1
    #: HPCBOX_JUDGE_THREADS of the server (None: its default).
    threads: int | None = None
    #: Which Judge0 clients (b) measures: "single" (POST, then polls), "wait"
    #: (POST with wait=true) and "batch" (batch POST, then batch polls).
    clients: tuple[str, ...] = ("single", "wait", "batch")
    #: A Celery broker URL: (b) then judges in one ``hpcbox worker`` process
    #: beside ``hpcbox serve`` (None: the serving process judges, in-process).
    broker: str | None = None
    #: Which languages (b) measures.
    languages: tuple[str, ...] = ("python3", "c")
    #: Concurrent polling clients (one submission per request, then polls) and
    #: bare compile-and-runs beside them (b).
    poll_clients: int = 16
    #: Submissions per language, side and client kind (b). Each side's time runs
    #: from the first request to the last answer, so it includes a start and an
    #: end when fewer than all clients have work, and for polling clients the
    #: last poll's wait (0.05-0.15 s): on 200 submissions (under 1.5 s of Python
    #: prints) that alone took 0.07x-0.09x off the polling ratio, measured at
    #: 0.70x-0.73x with 200 and 0.78x-0.79x with 1000.
    submissions: int = 1000


def _rootfs() -> Path:
    packages = [lang.package for lang in load_registry().values() if lang.package]
    return ensure_rootfs(judge_cache_dir(Settings.from_env()), packages, progress=print)


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p90_ms": ordered[int(len(ordered) * 0.9)] * 1e3,
        "min_ms": ordered[0] * 1e3,
    }


def bench_warm(opts: Options) -> dict[str, Any]:
    """Part (a): warm sandbox run vs bare exec of the same binary."""
    runs = opts.runs
    sandbox = UntrustedSandbox(_rootfs())
    sandbox.check()
    try:
        with sandbox.prepare() as box:  # compile once, in a sandbox
            box.write_file("main.c", TRIVIAL_C)
            done = box.run(RunSpec(argv=("gcc", "-O2", "-o", "main", "main.c"), env=_ENV))
            if done.exit_code != 0:
                raise SystemExit(f"compile failed: {done.stdout!r} {done.stderr!r}")
            binary = box.read_file("main", max_bytes=1 << 24)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "main")
            Path(path).write_bytes(binary)
            os.chmod(path, 0o700)
            bare: list[float] = []
            for _ in range(runs):
                start = time.perf_counter()
                pid = os.posix_spawn(path, [path], {})
                os.waitpid(pid, 0)
                bare.append(time.perf_counter() - start)
        warm: list[float] = []
        for _ in range(runs):
            box = sandbox.prepare()  # the pool's job, ahead of the run: not timed
            box.write_file("main", binary, mode=0o755)
            try:
                start = time.perf_counter()
                result = box.run(RunSpec(argv=("./main",)))
                warm.append(time.perf_counter() - start)
            finally:
                box.destroy()
            if result.exit_code != 0:
                raise SystemExit(f"sandboxed run failed: {result}")
    finally:
        sandbox.close()
    b, w = _stats(bare), _stats(warm)
    return {
        "part": "warm",
        "runs": runs,
        "bare": b,
        "warm_sandbox": w,
        "overhead_ms": w["median_ms"] - b["median_ms"],
        "ratio": w["median_ms"] / b["median_ms"],
        "target_overhead_ms": 2.0,
    }


# -- (b) and (c): through a real `hpcbox serve` ------------------------------------

HOST_PYTHON = "/usr/bin/python3"  # Debian's, the same 3.11 as the runtime's
PY_PRINT = "print('hello')\n"
C_HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
#: Judge0 CE language ids of the registry's python3 and c.
_JUDGE0_IDS = {"python3": 71, "c": 50}
_SOURCES = {"python3": PY_PRINT, "c": C_HELLO}
#: The compile argv of languages.yaml's "c" entry, run on the host for the baseline.
_HOST_GCC = ("gcc", "-O2", "-std=gnu17", "-pipe", "-o", "main", "main.c", "-lm")


class _Server:
    """A real ``hpcbox serve`` (uvicorn, in-process judge queue, SQLite) in a fresh
    home, started as a child process; ``url`` once its judge answers."""

    def __init__(self, home: Path, threads: int | None, broker: str | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPCBOX_")}
        env.update(
            HPCBOX_HOME=str(home),
            HPCBOX_JUDGE_CACHE=str(judge_cache_dir(Settings.from_env())),
            HPCBOX_JUDGE_MAX_QUEUE="10000",
        )
        if threads:
            env["HPCBOX_JUDGE_THREADS"] = str(threads)
        self._worker: subprocess.Popen[bytes] | None = None
        if broker:
            env["HPCBOX_BROKER_URL"] = broker
            with open(home / "worker.log", "ab") as out:
                self._worker = subprocess.Popen(
                    [sys.executable, "-m", "hpcbox.cli.main", "worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self.log = home / "serve.log"
        argv = [sys.executable, "-m", "hpcbox.cli.main", "serve", "--port", str(port)]
        with open(self.log, "ab") as out:
            self._proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.url = f"http://127.0.0.1:{port}"
        self.pid = self._proc.pid
        deadline = time.monotonic() + 300  # the first start may build the runtime
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SystemExit(f"hpcbox serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/judge0/languages", timeout=120).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"hpcbox serve did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self._worker is not None and self._worker.poll() is None:
            os.killpg(self._worker.pid, signal.SIGTERM)
            self._worker.wait(timeout=30)
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()


@contextlib.contextmanager
def _serving(threads: int | None = None, broker: str | None = None) -> Iterator[_Server]:
    with tempfile.TemporaryDirectory(prefix="hpcbox-bench-judge-") as home:
        server = _Server(Path(home), threads, broker)
        try:
            yield server
        finally:
            server.stop()


def _host_run(language: str) -> None:
    """One compile-and-run without sandbox or API (the baseline's unit of work)."""
    with tempfile.TemporaryDirectory(prefix="hpcbox-bench-bare-") as tmp:
        if language == "c":
            Path(tmp, "main.c").write_text(C_HELLO)
            subprocess.run(_HOST_GCC, cwd=tmp, check=True)
            argv = ["./main"]
        else:
            Path(tmp, "main.py").write_text(PY_PRINT)
            argv = [HOST_PYTHON, "-B", "main.py"]
        out = subprocess.run(argv, cwd=tmp, capture_output=True, check=True).stdout
    if out != b"hello\n":
        raise SystemExit(f"bare {language} run printed {out!r}")


def _machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (all CPUs, /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> tuple[float, float]:
    """CPU seconds of this process and of its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _proc_cpu_s(pid: int) -> tuple[float, float]:
    """CPU seconds of process ``pid`` and of its reaped children (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / hz, (int(fields[13]) + int(fields[14])) / hz


def _bare_rate(language: str, runs: int, concurrency: int) -> dict[str, float]:
    """Submissions/s of ``concurrency`` threads doing :func:`_host_run`, and the
    CPU time per submission (driver and subprocesses)."""
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        cpu0, start, machine0 = _own_cpu_s(), time.perf_counter(), _machine_cpu_s()
        for future in [pool.submit(_host_run, language) for _ in range(runs)]:
            future.result()
        elapsed, cpu1, machine1 = time.perf_counter() - start, _own_cpu_s(), _machine_cpu_s()
    cpu = (cpu1[0] - cpu0[0]) + (cpu1[1] - cpu0[1])
    return {
        "per_s": runs / elapsed,
        "cpu_ms": cpu / runs * 1e3,
        "machine_cpu_ms": (machine1 - machine0) / runs * 1e3,
    }


def _request_body(language: str) -> dict[str, Any]:
    """One submission as a Judge0 client sends it: the hello program, expecting hello."""
    return {
        "source_code": _SOURCES[language],
        "language_id": _JUDGE0_IDS[language],
        "expected_output": "hello",
    }


async def _judge0_client(
    client: aiohttp.ClientSession, language: str, todo: list[int], poll_s: float
) -> None:
    """A Judge0 client: submit (wait=false), poll until final, check the verdict."""
    body = _request_body(language)
    while todo:
        todo.pop()
        status, answer = await _call(client, "POST", "/judge0/submissions", json=body)
        if status != 201:
            raise SystemExit(f"POST answered {status}: {answer}")
        token = answer["token"]
        while True:
            await asyncio.sleep(_jittered(poll_s))
            _, got = await _call(client, "GET", f"/judge0/submissions/{token}?fields=status")
            if got["status"]["id"] > 2:  # neither "In Queue" nor "Processing"
                break
        if got["status"]["id"] != 3:
            _, full = await _call(client, "GET", f"/judge0/submissions/{token}?fields=*")
            raise SystemExit(f"{language} submission ended {full}")


async def _judge0_wait_client(
    client: aiohttp.ClientSession, language: str, todo: list[int], poll_s: float
) -> None:
    """A Judge0 client asking for the result in the same request (wait=true)."""
    body = _request_body(language)
    while todo:
        todo.pop()
        status, answer = await _call(client, "POST", "/judge0/submissions?wait=true", json=body)
        if status != 201 or answer["status"]["id"] != 3:
            raise SystemExit(f"{language} wait=true answered {status}: {answer}")


def _jittered(poll_s: float) -> float:
    """A poll interval of ``poll_s`` on average, as independent clients have: in
    step (all waiting exactly ``poll_s``), clients started together submit in
    bursts, and the judge idles between the bursts."""
    return random.uniform(0.5, 1.5) * poll_s


async def _call(
    client: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    """One request; its status and JSON body."""
    async with client.request(method, url, **kwargs) as answer:
        return answer.status, await answer.json(content_type=None)


#: Submissions per batch request: Judge0's default max_submission_batch_size.
BATCH_SIZE = 20


async def _judge0_batch_client(
    client: aiohttp.ClientSession, language: str, todo: list[int], poll_s: float
) -> None:
    """A Judge0 client sending batches: POST /submissions/batch, then poll
    GET /submissions/batch?tokens=... until every one is final; check verdicts."""
    body = _request_body(language)
    while todo:
        count = min(BATCH_SIZE, len(todo))
        del todo[-count:]
        status, answer = await _call(
            client, "POST", "/judge0/submissions/batch", json={"submissions": [body] * count}
        )
        if status != 201:
            raise SystemExit(f"batch POST answered {status}: {answer}")
        pending = [item["token"] for item in answer]
        while pending:
            await asyncio.sleep(_jittered(poll_s))
            _, got = await _call(
                client,
                "GET",
                "/judge0/submissions/batch",
                params={"tokens": ",".join(pending), "fields": "token,status"},
            )
            still = []
            for item in got["submissions"]:
                if item["status"]["id"] <= 2:  # "In Queue" or "Processing"
                    still.append(item["token"])
                elif item["status"]["id"] != 3:
                    _, full = await _call(
                        client, "GET", f"/judge0/submissions/{item['token']}?fields=*"
                    )
                    raise SystemExit(f"{language} submission ended {full}")
            pending = still


def _api_rate(
    server: _Server, language: str, runs: int, concurrency: int, poll_s: float, kind: str
) -> dict[str, float]:
    """Submissions/s of ``concurrency`` Judge0 clients sharing ``runs`` submissions,
    and where the CPU went per submission: the server process itself (HTTP,
    database, queue, judging threads), its sandboxes (every process it started
    and reaped: bwrap, supervisors, compilers, programs) and the clients."""

    one_client = {
        "single": _judge0_client,
        "wait": _judge0_wait_client,
        "batch": _judge0_batch_client,
    }[kind]

    async def main() -> float:
        todo = list(range(runs))
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=120)
        session = aiohttp.ClientSession(server.url, connector=connector, timeout=timeout)
        async with session as client:
            start = time.perf_counter()
            await asyncio.gather(
                *(one_client(client, language, todo, poll_s) for _ in range(concurrency))
            )
            return time.perf_counter() - start

    server0, client0, boxes0 = _proc_cpu_s(server.pid), _own_cpu_s()[0], _boxes_cpu_s()
    machine0 = _machine_cpu_s()
    elapsed = _run_clients(main())
    server1, client1, boxes1 = _proc_cpu_s(server.pid), _own_cpu_s()[0], _boxes_cpu_s()
    machine1 = _machine_cpu_s()
    # Boxes forked from the fork-server are not the server's children: every box's
    # processes are in the judge's cgroups, whose CPU counter includes them all.
    boxes = boxes1 - boxes0 if boxes0 is not None and boxes1 is not None else None
    return {
        "per_s": runs / elapsed,
        "server_cpu_ms": (server1[0] - server0[0]) / runs * 1e3,
        "sandbox_cpu_ms": (boxes if boxes is not None else server1[1] - server0[1]) / runs * 1e3,
        "client_cpu_ms": (client1 - client0) / runs * 1e3,
        # Everything, the kernel's own threads included (e.g. network namespaces
        # are torn down by a kernel worker).
        "machine_cpu_ms": (machine1 - machine0) / runs * 1e3,
    }


def _run_clients(clients: Coroutine[Any, Any, float]) -> float:
    """Run the clients in uvloop's event loop: they share the machine with the judge,
    and every bit of CPU they spend is taken from it (per polled C hello, 2.0-2.1 ms
    of client CPU in asyncio's own loop)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(clients)


def _boxes_cpu_s() -> float | None:
    """CPU seconds of every sandbox process so far (the ``hpcbox-judge`` cgroup,
    descendants included); None where it cannot be read."""
    try:
        return detect_driver().stats("hpcbox-judge").cpu_time_s
    except Exception:  # no cgroup yet, or none readable: fall back to reaped children
        return None


def bench_throughput(opts: Options) -> dict[str, Any]:
    """Part (b): submissions/s through /judge0 vs plain compile-and-run, per language."""
    out: dict[str, Any] = {
        "part": "throughput",
        "submissions": opts.submissions,
        "concurrency": opts.concurrency,
        "poll_clients": opts.poll_clients,
        "poll_s": opts.poll_s,
        "judge_threads": opts.threads,
        "broker": opts.broker,
        "target_ratio": 0.75,
    }
    out["clients"] = list(opts.clients)
    with _serving(opts.threads, opts.broker) as server:
        for kind in opts.clients:
            clients = opts.poll_clients if kind == "single" else opts.concurrency
            for language in opts.languages:
                warmup = max(4, clients)
                _bare_rate(language, warmup, clients)
                _api_rate(server, language, warmup, clients, opts.poll_s, kind)
                # Bare, API, API, bare (half the runs each): a drift of the machine's
                # other load over the run weighs on both sides alike.
                half = max(1, opts.submissions // 2)
                bare1 = _bare_rate(language, half, clients)
                api1 = _api_rate(server, language, half, clients, opts.poll_s, kind)
                api2 = _api_rate(server, language, half, clients, opts.poll_s, kind)
                bare2 = _bare_rate(language, half, clients)
                bare, api = _halves(bare1, bare2), _halves(api1, api2)
                out.setdefault(kind, {})[language] = {
                    "concurrency": clients,
                    "bare": bare,
                    "api": api,
                    "ratio": api["per_s"] / bare["per_s"],
                }
    return out


def _halves(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Two measurements of equally many submissions as one: the rate over the total
    time, the mean of the per-submission CPU times."""
    both = {k: (first[k] + second[k]) / 2 for k in first}
    both["per_s"] = 2 / (1 / first["per_s"] + 1 / second["per_s"])
    return both


def bench_latency(opts: Options) -> dict[str, Any]:
    """Part (c): wait=true latency of a Python print, one request at a time."""
    body = {"source_code": PY_PRINT, "language_id": 71, "expected_output": "hello"}
    samples: list[float] = []
    with _serving(opts.threads) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        for n in range(opts.runs + 10):  # the first 10 warm up
            start = time.perf_counter()
            answer = client.post("/judge0/submissions?wait=true&fields=status", json=body)
            elapsed = time.perf_counter() - start
            if answer.status_code != 201 or answer.json()["status"]["id"] != 3:
                raise SystemExit(f"wait=true answered {answer.status_code}: {answer.text}")
            if n >= 10:
                samples.append(elapsed)
    ordered = sorted(samples)
    return {
        "part": "latency",
        "runs": opts.runs,
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "min_ms": ordered[0] * 1e3,
        "max_ms": ordered[-1] * 1e3,
        "target_p50_ms": 150.0,
    }


#: What ``--part requests`` measures: a name, and the request (over 20 finished
#: Python prints) that 8 clients repeat.
_REQUESTS = {
    "status poll": "/judge0/submissions/{one}?fields=status",
    "batch poll, 10 tokens": "/judge0/submissions/batch?fields=token,status&tokens={ten}",
    "batch poll, 20 tokens": "/judge0/submissions/batch?fields=token,status&tokens={twenty}",
    "whole submission": "/judge0/submissions/{one}?fields=*",
}


def bench_requests(opts: Options) -> dict[str, Any]:
    """A diagnostic of (b), not one of the issue's parts: the server's CPU per
    request of each kind a Judge0 client polls with (8 clients repeating it for
    ``seconds``), and the idle server's CPU (nothing asked of it)."""
    seconds = 5.0
    body = _request_body("python3")

    async def finished_tokens(url: str) -> list[str]:
        async with aiohttp.ClientSession(url) as client:
            tokens = []
            for _ in range(20):
                _, answer = await _call(client, "POST", "/judge0/submissions?wait=true", json=body)
                tokens.append(answer["token"])
            return tokens

    async def repeat(url: str, path: str) -> int:
        done = 0
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(url, connector=connector) as client:
            end = time.perf_counter() + seconds

            async def one() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    async with client.get(path) as answer:
                        await answer.read()
                        if answer.status != 200:
                            raise SystemExit(f"{path} answered {answer.status}")
                    done += 1

            await asyncio.gather(*(one() for _ in range(8)))
        return done

    out: dict[str, Any] = {"part": "requests", "seconds": seconds, "requests": {}}
    with _serving(opts.threads) as server:
        tokens = asyncio.run(finished_tokens(server.url))
        time.sleep(1.0)  # let the warm pool refill
        before = _proc_cpu_s(server.pid)[0]
        time.sleep(seconds)
        out["idle_cpu_percent"] = (_proc_cpu_s(server.pid)[0] - before) / seconds * 100
        for name, template in _REQUESTS.items():
            path = template.format(
                one=tokens[0], ten=",".join(tokens[:10]), twenty=",".join(tokens)
            )
            before = _proc_cpu_s(server.pid)[0]
            done = asyncio.run(repeat(server.url, path))
            cpu = _proc_cpu_s(server.pid)[0] - before
            out["requests"][name] = {"server_cpu_ms": cpu / done * 1e3, "per_s": done / seconds}
    return out


PARTS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "warm": bench_warm,
    "throughput": bench_throughput,
    "latency": bench_latency,
    "requests": bench_requests,
}
#: The parts run when none is named: the issue's three.
DEFAULT_PARTS = ("warm", "throughput", "latency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs of (a), requests of (c)")
    parser.add_argument(
        "--submissions",
        type=int,
        default=1000,
        help="submissions per language, side and client kind, for (b)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="wait=true and batch clients, for (b)"
    )
    parser.add_argument(
        "--poll-clients", type=int, default=16, help="polling single clients, for (b)"
    )
    parser.add_argument("--poll", type=float, default=0.1, help="poll interval (s), for (b)")
    parser.add_argument("--threads", type=int, help="the server's HPCBOX_JUDGE_THREADS")
    parser.add_argument("--part", choices=list(PARTS), action="append")
    parser.add_argument(
        "--clients",
        choices=["single", "wait", "batch"],
        action="append",
        help="Judge0 clients of (b) (repeatable; default: all): one submission per "
        "request then polls, one per request with wait=true, batches of 20",
    )
    parser.add_argument(
        "--broker",
        help="a Celery broker URL (redis://...): (b) judges in an `hpcbox worker` process",
    )
    parser.add_argument(
        "--language",
        choices=["python3", "c"],
        action="append",
        help="a language (b) measures (repeatable; default: both)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    clients = tuple(args.clients or ("single", "wait", "batch"))
    languages = tuple(args.language or ("python3", "c"))
    opts = Options(
        args.runs,
        args.concurrency,
        args.poll,
        args.threads,
        clients,
        args.broker,
        languages,
        args.poll_clients,
        args.submissions,
    )
    for part in args.part or DEFAULT_PARTS:
        result = PARTS[part](opts)
        if args.json:
            print(json.dumps(result, indent=2))
            continue
        if part == "warm":
            b, w = result["bare"], result["warm_sandbox"]
            print(f"(a) trivial C program, {result['runs']} runs each")
            print(f"    bare exec:     median {b['median_ms']:.3f} ms  p90 {b['p90_ms']:.3f} ms")
            print(f"    warm sandbox:  median {w['median_ms']:.3f} ms  p90 {w['p90_ms']:.3f} ms")
            print(
                f"    overhead {result['overhead_ms']:.3f} ms per run (target <= 2 ms), "
                f"ratio {result['ratio']:.1f}x"
            )
        elif part == "throughput":
            threads = result["judge_threads"] or "default"
            print(
                f"(b) end-to-end throughput, {result['submissions']} submissions per language and "
                f"side (bare, API, API, bare: half each), the same concurrency on both "
                f"sides (API clients poll every {result['poll_s'] * 1e3:.0f} ms; judge "
                f"threads: {threads})"
            )
            if result["broker"]:
                print("    judged by one `hpcbox worker` process through the Celery broker")
            for kind in result["clients"]:
                label = {
                    "single": "one per request, then polls",
                    "wait": "one per request with wait=true",
                    "batch": f"batches of {BATCH_SIZE}",
                }[kind]
                concurrency = result["poll_clients" if kind == "single" else "concurrency"]
                print(f"    {concurrency} Judge0 clients sending {label}:")
                for language in result[kind]:
                    row = result[kind][language]
                    bare, api = row["bare"], row["api"]
                    print(
                        f"    {language:8} bare {bare['per_s']:6.1f}/s  /judge0 "
                        f"{api['per_s']:6.1f}/s  ratio {row['ratio']:.2f}x (target >= 0.75x)"
                    )
                    print(
                        f"             CPU per submission: bare {bare['cpu_ms']:.1f} ms; /judge0 "
                        f"server {api['server_cpu_ms']:.1f} ms + sandboxes "
                        f"{api['sandbox_cpu_ms']:.1f} ms + clients {api['client_cpu_ms']:.1f} ms"
                    )
                    print(
                        f"             machine CPU per submission (all processes): bare "
                        f"{bare['machine_cpu_ms']:.1f} ms; /judge0 {api['machine_cpu_ms']:.1f} ms"
                    )
        elif part == "requests":
            print(
                f"server CPU per request (8 clients repeating it for {result['seconds']:.0f} s; "
                "over finished Python prints)"
            )
            for name, row in result["requests"].items():
                print(f"    {name:22} {row['server_cpu_ms']:.3f} ms  ({row['per_s']:.0f}/s)")
            print(f"    idle server: {result['idle_cpu_percent']:.2f}% of a CPU")
        elif part == "latency":
            print(f"(c) wait=true latency, Python print, {result['runs']} requests one at a time")
            print(
                f"    p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                f"(min {result['min_ms']:.1f}, max {result['max_ms']:.1f}; target p50 < 150 ms)"
            )


if __name__ == "__main__":
    main()
