"""Fixtures for the contract tests: the real ``hpcbox`` command, a real ``hpcbox serve``
and the Python API, each on a fresh ``HPCBOX_HOME``.

The homes live outside ``/tmp`` (in ``/var/tmp``) on purpose: a job's ``/tmp`` is private,
so a home under ``/tmp`` is exercised only by the test written for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from hpcbox.core.settings import Settings
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.states import JobState
from tests.conftest import require

HPCBOX_BIN = Path(sys.executable).parent / "hpcbox"

#: The fields shared/DESIGN.md ("Machine-readable output") requires in a job's JSON.
JOB_FIELDS = (
    "id",
    "name",
    "state",
    "native_state",
    "reason",
    "backend",
    "target",
    "native_id",
    "exit_code",
    "submitted_at",
    "started_at",
    "finished_at",
    "attempts",
)
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "ERROR"}
)
ACTIVE = frozenset({JobState.NEW, JobState.PENDING, JobState.RUNNING})
AGENT_IDLE = "2"


def require_sandbox() -> None:
    require(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed")
    require(
        os.geteuid() == 0 or os.access("/sys/fs/cgroup", os.W_OK),
        "cgroups are not writable here (run as root or with a delegated cgroup)",
    )
    require(HPCBOX_BIN.exists(), f"the hpcbox console script is not installed ({HPCBOX_BIN})")


def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (this process excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


def _agents_of(home: Path) -> list[int]:
    """Pids of ``hpcbox agent`` processes scheduling for ``home``."""
    wanted = f"HPCBOX_HOME={home}".encode()
    pids = []
    for pid in processes_with("hpcbox.jobs.backends.local.agent"):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            pids.append(pid)
    return pids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def new_home(base: str = "/var/tmp") -> Path:
    if not os.access(base, os.W_OK):
        base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="hpcbox-contract-", dir=base))


def settings_for(home: Path, **extra: Any) -> Settings:
    return Settings(home=home, cpus=2, agent_idle_seconds=float(AGENT_IDLE), **extra)


def cleanup_home(home: Path) -> None:
    """Cancel what is still active, stop this home's agents (by pid), remove the home."""
    if (home / "hpcbox.db").exists():
        engine = JobEngine(settings_for(home), scheduling="none")
        try:
            for job in engine.list_jobs(states=ACTIVE, limit=10_000):
                engine.cancel(job.id)
        finally:
            engine.close(handover=False)
    for pid in _agents_of(home):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        eventually(lambda pid=pid: not _alive(pid), timeout=10)
    shutil.rmtree(home, ignore_errors=True)


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCBOX_")}
    env.update(
        HPCBOX_HOME=str(home),
        HPCBOX_CPUS="2",
        HPCBOX_AGENT_IDLE_SECONDS=AGENT_IDLE,
    )
    return env


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


class Cli:
    """The ``hpcbox`` console script, run as a user runs it."""

    def __init__(self, home: Path, cwd: Path) -> None:
        self.home = home
        self.cwd = cwd
        self.env = base_env(home)
        self._engine: JobEngine | None = None

    def __call__(
        self, *args: str, stdin: str | None = None, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(HPCBOX_BIN), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or self.cwd,
            input=stdin,
        )

    def many(self, calls: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands side by side (each is a whole Python start-up)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self(*args), calls))

    def ok(self, *args: str, **kwargs: Any) -> str:
        proc = self(*args, **kwargs)
        assert proc.returncode == 0, f"hpcbox {args} -> {proc.returncode}\n{proc.stderr}"
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def script(self, text: str, name: str = "job.sh") -> Path:
        path = self.cwd / name
        path.write_text(text, encoding="utf-8")
        return path

    def submit(self, text: str, *flags: str, name: str = "job.sh") -> int:
        out = self.ok("job", "submit", *flags, str(self.script(text, name))).strip()
        assert out.isdigit(), out
        return int(out)

    def submit_many(self, jobs: list[tuple[str, str, tuple[str, ...]]]) -> list[int]:
        """Submit ``(name, script text, flags)`` side by side; return the ids in order."""
        calls = [
            ("job", "submit", *flags, str(self.script(text, name))) for name, text, flags in jobs
        ]
        ids = []
        for proc in self.many(calls):
            assert proc.returncode == 0, proc.stderr
            ids.append(int(proc.stdout))
        return ids

    @property
    def engine(self) -> JobEngine:
        """A read-mostly engine on the same store (schedules nothing)."""
        if self._engine is None:
            self._engine = JobEngine(settings_for(self.home), scheduling="none")
        return self._engine

    def job(self, job_id: int) -> dict[str, Any]:
        return self.engine.get(job_id).to_json()

    def wait_state(self, job_id: int, states: set[str], timeout: float = 20) -> dict[str, Any]:
        job: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal job
            job = self.job(job_id)
            return job["state"] in states

        eventually(reached, timeout=timeout)
        assert job["state"] in states, job
        return job

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close(handover=False)
            self._engine = None


@pytest.fixture
def home() -> Iterator[Path]:
    path = new_home()
    yield path
    cleanup_home(path)


@pytest.fixture
def cli(home: Path, tmp_path: Path) -> Iterator[Cli]:
    require_sandbox()
    work = tmp_path / "work"
    work.mkdir()
    runner = Cli(home, work)
    yield runner
    runner.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A real ``hpcbox serve`` process on a free loopback port."""

    def __init__(self, home: Path, token: str | None = None, host: str = "127.0.0.1") -> None:
        self.home = home
        self.host = host
        self.token = token
        self.env = base_env(home)
        if token:
            self.env["HPCBOX_API_TOKEN"] = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.home / "serve.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(HPCBOX_BIN), "serve", "--host", self.host, "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=self.home,
            )
        if not eventually(self._up, timeout=30, interval=0.1):
            self.stop()
            raise RuntimeError((self.home / "serve.log").read_text())

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"serve exited: {(self.home / 'serve.log').read_text()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.client.post("/v1/jobs", json=body)
        assert resp.status_code == 201, resp.text
        job: dict[str, Any] = resp.json()
        return job

    def job(self, job_id: int) -> dict[str, Any]:
        resp = self.client.get(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        return job

    def wait_state(self, job_id: int, states: set[str], timeout: float = 20) -> dict[str, Any]:
        job: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal job
            job = self.job(job_id)
            return job["state"] in states

        eventually(reached, timeout=timeout, interval=0.1)
        assert job["state"] in states, job
        return job

    def close(self) -> None:
        self.stop()
        self.client.close()


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    require_sandbox()
    srv = Server(home)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Server]:
    """One server for a module's REST tests (each test cleans up its own jobs)."""
    require_sandbox()
    path = new_home()
    srv = Server(path)
    yield srv
    srv.close()
    cleanup_home(path)
