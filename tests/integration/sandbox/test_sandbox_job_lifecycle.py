"""Profile "job" lifecycle: kill, leftovers, timeouts, re-attaching from another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcbox.jobs.backends.local.sandbox import LaunchRequest, RunHandle, RunOutcome, Sandbox
from tests.integration.helpers import SANDBOX_PYTHON

pytestmark = pytest.mark.integration

Make = Callable[..., LaunchRequest]

# Starts a double-forked, setsid daemon carrying MARKER in its argv, waits until
# it is up, then either exits 0 ("exit") or sleeps ("sleep").
DAEMONIZE = """
import os, sys, time
marker, ready, mode = sys.argv[1:4]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c",
            "import sys, time; open(sys.argv[2], 'w').close(); time.sleep(60)", marker, ready])
    os._exit(0)
os.wait()
while not os.path.exists(ready):
    time.sleep(0.01)
if mode == "sleep":
    time.sleep(60)
"""


def processes_with(marker: str) -> list[int]:
    """Pids (other than ours) whose command line contains ``marker``."""
    needle = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def poll_until_done(sandbox: Sandbox, handle: RunHandle, timeout: float = 15.0) -> RunOutcome:
    deadline = time.monotonic() + timeout
    while (outcome := sandbox.poll(handle)) is None:
        assert time.monotonic() < deadline, "run did not finish"
        time.sleep(0.02)
    return outcome


def _daemon_req(make_req: Make, tmp_path: Path, mode: str) -> tuple[LaunchRequest, str, Path]:
    marker = f"hpcbox-marker-{uuid.uuid4().hex}"
    ready = tmp_path / f"{marker}.ready"
    req = make_req([SANDBOX_PYTHON, "-c", DAEMONIZE, marker, str(ready), mode])
    return req, marker, ready


def test_kill_leaves_no_process_behind(sandbox: Sandbox, make_req: Make, tmp_path: Path) -> None:
    req, marker, ready = _daemon_req(make_req, tmp_path, "sleep")
    handle = sandbox.launch(req)
    assert wait_until(ready.exists), Path(req.stderr_path).read_text()
    assert sandbox.is_alive(handle)
    assert sandbox.poll(handle) is None
    assert processes_with(marker)
    sandbox.kill(handle)
    assert processes_with(marker) == []
    outcome = poll_until_done(sandbox, handle)
    assert (outcome.exit_code, outcome.signal, outcome.lost) == (None, signal.SIGKILL, False)
    assert not sandbox.is_alive(handle)
    sandbox.kill(handle)
    assert sandbox.poll(handle) == outcome


def test_daemon_dies_when_main_process_exits(
    sandbox: Sandbox, make_req: Make, tmp_path: Path, parent_group: str
) -> None:
    req, marker, ready = _daemon_req(make_req, tmp_path, "exit")
    handle = sandbox.launch(req)
    assert wait_until(lambda: not sandbox.is_alive(handle))
    # Not collected yet: the kernel alone must have killed the daemon.
    assert sandbox.driver.exists(f"{parent_group}/{req.run_id}")
    assert ready.exists()
    assert wait_until(lambda: not processes_with(marker), timeout=2.0)
    outcome = poll_until_done(sandbox, handle)
    assert (outcome.exit_code, outcome.signal) == (0, None)
    assert not sandbox.driver.exists(f"{parent_group}/{req.run_id}")


def test_run_timeout_kills(sandbox: Sandbox, make_req: Make) -> None:
    start = time.monotonic()
    outcome = sandbox.run(make_req(["sleep", "30"]), timeout=0.3)
    assert time.monotonic() - start < 5
    assert (outcome.exit_code, outcome.signal, outcome.lost) == (None, signal.SIGKILL, False)
    assert 0.3 <= outcome.wall_time_s < 5


LAUNCHER = """
import json, sys
from hpcbox.jobs.backends.local.sandbox import LaunchRequest, ResourceLimits, Sandbox
fields = json.loads(sys.argv[1])
handle = Sandbox(parent_group=sys.argv[2]).launch(LaunchRequest(limits=ResourceLimits(), **fields))
print(json.dumps(handle.to_dict()), flush=True)
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_reattach_after_launcher_is_killed(
    sandbox: Sandbox, make_req: Make, parent_group: str
) -> None:
    req = make_req(["sh", "-c", "sleep 0.5; echo done; exit 7"])
    fields = {k: v for k, v in vars(req).items() if k != "limits"}
    launcher = subprocess.run(
        [sys.executable, "-c", LAUNCHER, json.dumps(fields), parent_group],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert launcher.returncode == -signal.SIGKILL, launcher.stderr.decode()
    handle = RunHandle.from_dict(json.loads(launcher.stdout))
    # This process never launched the run: it must use /proc and the files.
    assert sandbox.is_alive(handle)
    assert sandbox.poll(handle) is None
    outcome = poll_until_done(sandbox, handle)
    assert (outcome.exit_code, outcome.signal, outcome.lost) == (7, None, False)
    assert outcome.wall_time_s >= 0.5
    assert Path(req.stdout_path).read_text() == "done\n"
    assert not sandbox.driver.exists(handle.cgroup)
    # Idempotent, from any Sandbox instance.
    assert sandbox.poll(handle) == outcome
    assert Sandbox(parent_group=parent_group).poll(handle) == outcome
    assert not sandbox.is_alive(handle)


def test_run_killed_from_outside_is_lost(sandbox: Sandbox, make_req: Make) -> None:
    handle = sandbox.launch(make_req(["sleep", "30"]))
    os.kill(handle.pid, signal.SIGKILL)
    outcome = poll_until_done(sandbox, handle)
    assert outcome.lost
    assert (outcome.exit_code, outcome.signal) == (None, None)
    assert not sandbox.driver.exists(handle.cgroup)
