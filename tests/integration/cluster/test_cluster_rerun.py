"""``cluster up`` can be run again: after an up that failed, one interrupted by Ctrl-C and
one whose process was killed; a running cluster is refused (or replaced with
--replace). Real Podman, real SLURM containers (a controller only, to stay quick)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.naming import container_name, labels
from hpcbox.clusters.spec import ClusterState, parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.errors import HpcboxError
from hpcbox.core.settings import Settings
from tests.integration.helpers import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def hpcbox(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(settings.to_env(), *args, check=check)


@pytest.fixture
def cleanup(manager: ClusterManager) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        if manager.store.find(name) is not None:
            manager.down(name, purge=True)


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def test_up_after_a_failed_up_then_refused_then_replaced(
    cluster_settings: Settings, manager: ClusterManager, cleanup: list[str], tmp_path: Path
) -> None:
    name = "hb-rerun"
    cleanup.append(name)
    if manager.store.find(name) is not None:
        manager.down(name, purge=True)
    # The SSH port the spec asks for is taken: the controller cannot start, and the
    # failed up leaves it (created) and the network behind.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = {"name": name, "workers": {"count": 0}, "login": {"ssh_port": port}}
        spec_file = tmp_path / "spec.yaml"
        spec_file.write_text(json.dumps(data))  # JSON is YAML
        with pytest.raises(HpcboxError):
            manager.up(parse_cluster_spec(data))
    record = manager.store.get(name)
    assert record.state == ClusterState.FAILED
    assert record.message is not None and "`hpcbox cluster up` again" in record.message
    rt = manager.runtime()
    assert [c.name for c in rt.list(labels=labels(name))] == [container_name(name, "controller")]

    def up_cli(*flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return hpcbox(cluster_settings, "cluster", "up", "-f", str(spec_file), *flags, check=check)

    # Run again as a user would: it cleans up and comes up.
    up = up_cli("--json")
    assert json.loads(up.stdout)["state"] == "RUNNING"
    assert json.loads(up.stdout)["ssh_port"] == port
    assert "cluster hb-rerun is FAILED: removing what it left" in up.stderr
    assert len(rt.list(labels=labels(name))) == 1
    out = hpcbox(cluster_settings, "cluster", "exec", name, "--", "scontrol", "ping")
    assert "UP" in out.stdout

    # A running cluster of that name is refused, in one line saying how to go on.
    again = up_cli(check=False)
    assert again.returncode == 1
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "--replace" in again.stderr and f"hpcbox cluster down {name}" in again.stderr
    before = rt.inspect(container_name(name, "controller"))
    assert before is not None

    replaced = up_cli("--replace", "--json")
    assert json.loads(replaced.stdout)["state"] == "RUNNING"
    after = rt.inspect(container_name(name, "controller"))
    assert after is not None and after.id != before.id


def test_up_after_ctrl_c_and_after_a_killed_up(
    cluster_settings: Settings, manager: ClusterManager, cleanup: list[str]
) -> None:
    name = "hb-rerun-int"
    cleanup.append(name)
    if manager.store.find(name) is not None:
        manager.down(name, purge=True)
    store: ClusterStore = manager.store
    rt = manager.runtime()
    controller = container_name(name, "controller")
    argv = [sys.executable, "-m", "hpcbox.cli.main", "cluster", "up", "--name", name]
    # One worker: the up waits for its slurmd well after the controller runs, so
    # the signal lands during the up (with none, the up is done within 0.5 s).
    argv += ["--workers", "1"]

    def running_controller() -> str | None:
        try:
            info = rt.inspect(controller)
        except HpcboxError:
            # Podman 4.3 answers an inspect during a concurrent remove with an error
            # ("does not exist in database") rather than 404.
            return None
        return info.id if info is not None and info.status == "running" else None

    def interrupted_up(sig: signal.Signals) -> subprocess.CompletedProcess[str]:
        """Start an up and send ``sig`` once its own controller container runs."""
        old = running_controller()
        # A suite started in the background (`cmd &`, as CI may) runs with SIGINT
        # ignored, which its children inherit, and Python then never raises
        # KeyboardInterrupt. A handled signal is reset to the default at exec: the
        # child gets Ctrl-C as a user's `cluster up` does.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(
                argv,
                env={**os.environ, **cluster_settings.to_env()},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            deadline = time.monotonic() + 600
            # Polled often: with one worker the up is done seconds after this.
            while running_controller() in (None, old) and proc.poll() is None:
                assert time.monotonic() < deadline, "no new running controller within 600 s"
                time.sleep(0.02)
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)

    stopped = interrupted_up(signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr
    record = store.get(name)
    assert record.state == ClusterState.FAILED
    assert record.message is not None and "interrupted (Ctrl-C)" in record.message

    # The next one is killed outright: its record stays CREATING, its containers stay.
    killed = interrupted_up(signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    assert store.get(name).state == ClusterState.CREATING
    assert rt.inspect(controller) is not None

    up = hpcbox(cluster_settings, "cluster", "up", "--name", name, "--workers", "0", "--json")
    assert json.loads(up.stdout)["state"] == "RUNNING"
    assert "is CREATING: removing what it left" in up.stderr
    assert [c.name for c in rt.list(labels=labels(name))] == [controller]
