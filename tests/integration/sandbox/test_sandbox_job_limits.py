"""Profile "job" limits on the real machine: memory (OOM), CPU quota, tasks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.core.errors import ConflictError
from hpcbox.jobs.backends.local.sandbox import (
    DEFAULT_PIDS,
    LaunchRequest,
    ResourceLimits,
    RunOutcome,
    Sandbox,
)
from tests.integration.helpers import SANDBOX_PYTHON

pytestmark = pytest.mark.integration

Make = Callable[..., LaunchRequest]

BUSY = """
import time
end = time.monotonic() + 0.8
while time.monotonic() < end:
    pass
"""

FORKS = """
import os
r, w = os.pipe()
n = 0
for _ in range(64):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
print(n, flush=True)
os.close(w)
for _ in range(n):
    os.wait()
"""


def test_memory_cap_oom_kills(sandbox: Sandbox, make_req: Make) -> None:
    cap = 50 << 20
    req = make_req(
        [SANDBOX_PYTHON, "-c", "x = b'x' * (200 << 20)"], limits=ResourceLimits(memory_bytes=cap)
    )
    outcome = sandbox.run(req, timeout=60)
    assert outcome.oom_killed is True
    assert (outcome.exit_code, outcome.signal) == (None, 9)
    assert 0 < outcome.peak_memory_bytes <= cap


def test_memory_within_cap_is_fine(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req(
        [SANDBOX_PYTHON, "-c", "x = b'x' * (20 << 20)"],
        limits=ResourceLimits(memory_bytes=200 << 20),
    )
    outcome = sandbox.run(req, timeout=60)
    assert (outcome.exit_code, outcome.oom_killed) == (0, False)
    assert outcome.peak_memory_bytes >= 20 << 20


def test_cpu_quota_slows_a_busy_loop(sandbox: Sandbox, make_req: Make) -> None:
    outcomes: dict[float, RunOutcome] = {}

    def busy(cpus: float) -> None:
        outcomes[cpus] = sandbox.run(
            make_req([SANDBOX_PYTHON, "-c", BUSY], limits=ResourceLimits(cpus=cpus)), timeout=60
        )

    threads = [threading.Thread(target=busy, args=(c,)) for c in (0.25, 1.0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    quarter, full = outcomes[0.25].cpu_time_s, outcomes[1.0].cpu_time_s
    assert outcomes[0.25].exit_code == outcomes[1.0].exit_code == 0
    # Same 0.8 s wall window: about 0.2 s of CPU against about 0.8 s.
    assert quarter < 0.6 * full, (quarter, full)
    assert quarter < 0.45


def test_pids_limit_caps_forks(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req([SANDBOX_PYTHON, "-c", FORKS], limits=ResourceLimits(pids=5))
    outcome = sandbox.run(req, timeout=60)
    assert outcome.exit_code == 0, Path(req.stderr_path).read_text()
    # Five tasks for the command: itself and four children.
    assert Path(req.stdout_path).read_text().strip() == "4"


def test_run_id_of_a_live_run_is_refused(sandbox: Sandbox, make_req: Make) -> None:
    req = make_req(["sleep", "30"])
    handle = sandbox.launch(req)
    try:
        with pytest.raises(ConflictError):
            sandbox.launch(make_req(["true"], run_id=req.run_id))
    finally:
        sandbox.kill(handle)
        assert sandbox.poll(handle) is not None


def test_default_task_limit_applies(sandbox: Sandbox, make_req: Make, parent_group: str) -> None:
    req = make_req(["sleep", "30"])
    handle = sandbox.launch(req)
    try:
        limits = [
            Path(f).with_name("pids.max").read_text().strip()
            for f in sandbox.driver.procs_files(handle.cgroup)
            if Path(f).with_name("pids.max").exists()
        ]
        # DEFAULT_PIDS plus the sandbox's own three tasks.
        assert limits == [str(DEFAULT_PIDS + 3)]
    finally:
        sandbox.kill(handle)
        assert sandbox.poll(handle) is not None
