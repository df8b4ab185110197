"""``ClusterManager.up`` against a fake Runtime: the preflight, and ups that can be rerun
(after a failure, an interruption, a killed process; a running cluster refused or
replaced)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import hpcbox.clusters.render
from hpcbox.clusters import preflight
from hpcbox.clusters.manager import ClusterManager
from hpcbox.clusters.nodes import ClusterError
from hpcbox.clusters.spec import ClusterSpec, ClusterState, parse_cluster_spec
from hpcbox.clusters.store import ClusterStore
from hpcbox.core.errors import ConflictError, HpcboxError, UnavailableError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.runtimes import ContainerSpec, ExecResult
from hpcbox.jobs.target_store import TargetStore
from tests.unit.engine.fake_runtime import FakeContainer, FakeRuntime

CONTROLLER = "hpcbox-c1-controller"


@pytest.fixture
def rt() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def store(settings: Settings) -> ClusterStore:
    return ClusterStore(open_engine(settings))


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def manager(
    settings: Settings, store: ClusterStore, rt: FakeRuntime, said: list[str]
) -> ClusterManager:
    return ClusterManager(
        settings, store=store, runtime=rt, progress=said.append, ready_timeout=0.5
    )


@pytest.fixture(autouse=True)
def _quick_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing name lookup gives up after half a second, not ten."""
    monkeypatch.setattr(
        preflight,
        "preflight_checks",
        functools.partial(preflight.preflight_checks, dns_timeout=0.5),
    )


def spec(name: str = "c1") -> ClusterSpec:
    return parse_cluster_spec({"name": name, "workers": {"count": 0}})


def cluster_calls(rt: FakeRuntime) -> list[tuple[str, str]]:
    """The runtime calls on the cluster's own objects (not the preflight's probes)."""
    return [(op, name) for op, name in rt.calls if "doctor" not in name]


def slurmctld_down(_container: FakeContainer, argv: Sequence[str]) -> ExecResult | None:
    if list(argv)[:2] == ["scontrol", "ping"]:
        return ExecResult(1, b"", b"slurm_ping: Unable to contact slurm controller")
    return None


def test_up_runs_the_preflight_then_brings_the_cluster_up(
    manager: ClusterManager, rt: FakeRuntime, said: list[str], settings: Settings
) -> None:
    record = manager.up(spec())
    assert record.state == ClusterState.RUNNING
    assert record.ssh_port == 40022
    assert "container engine ok" in " ".join(said)
    # The probes ran first, and are gone.
    first_cluster_call = rt.calls.index(("create", CONTROLLER))
    assert any("doctor" in name for _op, name in rt.calls[:first_cluster_call])
    assert list(rt.containers) == [CONTROLLER]
    assert set(rt.networks) == {"hpcbox-c1"}
    assert TargetStore(manager.store.engine).get("c1").port == 40022
    # No process holds the cluster's lock once up has returned.
    assert (settings.home / "clusters" / ".locks" / "c1.lock").read_text() == ""


def test_a_running_cluster_is_refused_in_one_line_naming_the_ways_on(
    manager: ClusterManager, rt: FakeRuntime
) -> None:
    manager.up(spec())
    before = list(rt.calls)
    with pytest.raises(ConflictError) as info:
        manager.up(spec())
    message = str(info.value)
    assert "\n" not in message
    assert "already up (RUNNING)" in message
    assert "hpcbox cluster down c1" in message and "--replace" in message
    assert rt.calls == before  # refused before touching anything
    assert manager.store.get("c1").state == ClusterState.RUNNING


def test_replace_takes_the_running_cluster_down_first(
    manager: ClusterManager, rt: FakeRuntime, said: list[str]
) -> None:
    manager.up(spec())
    rt.calls.clear()
    record = manager.up(spec(), replace=True)
    assert record.state == ClusterState.RUNNING
    calls = cluster_calls(rt)
    assert calls.index(("remove", CONTROLLER)) < calls.index(("create", CONTROLLER))
    assert "cluster c1 is RUNNING: replacing it" in said


def test_an_up_that_failed_is_cleaned_up_and_retried(
    manager: ClusterManager, rt: FakeRuntime, said: list[str]
) -> None:
    rt.handlers.append(slurmctld_down)
    with pytest.raises(ClusterError):
        manager.up(spec())
    failed = manager.store.get("c1")
    assert failed.state == ClusterState.FAILED
    assert failed.message is not None
    assert "slurmctld (scontrol ping) on controller did not come up" in failed.message
    assert "`hpcbox cluster up` again cleans up and retries" in failed.message
    assert CONTROLLER in rt.containers  # left for inspection
    rt.handlers.clear()
    rt.calls.clear()
    record = manager.up(spec())
    assert record.state == ClusterState.RUNNING
    assert record.message is None
    assert "cluster c1 is FAILED: removing what it left" in said
    calls = cluster_calls(rt)
    assert calls[:2] == [("remove", CONTROLLER), ("remove-network", "hpcbox-c1")]
    assert ("create", CONTROLLER) in calls


def test_ctrl_c_mid_way_leaves_a_failed_cluster_that_the_next_up_recovers(
    manager: ClusterManager, rt: FakeRuntime
) -> None:
    def interrupt(op: str, name: str) -> None:
        if (op, name) == ("start", CONTROLLER):
            raise KeyboardInterrupt

    rt.before = interrupt
    with pytest.raises(KeyboardInterrupt):
        manager.up(spec())
    record = manager.store.get("c1")
    assert record.state == ClusterState.FAILED
    assert record.message is not None and record.message.startswith(
        "interrupted (Ctrl-C) while coming up"
    )
    rt.before = lambda _op, _name: None
    assert manager.up(spec()).state == ClusterState.RUNNING
    assert list(rt.containers) == [CONTROLLER]


def test_an_up_left_creating_by_a_dead_process_is_retried(
    manager: ClusterManager, rt: FakeRuntime, store: ClusterStore
) -> None:
    # What a killed `cluster up` leaves: a CREATING record and some containers.
    store.create(spec(), runtime="podman")
    rt.ensure_network("hpcbox-c1", labels={})
    rt.create(
        ContainerSpec(
            name=CONTROLLER,
            image="x",
            hostname="controller",
            network="hpcbox-c1",
            labels={"io.hpcbox.cluster": "c1"},
        )
    )
    rt.calls.clear()
    assert manager.up(spec()).state == ClusterState.RUNNING
    assert cluster_calls(rt)[0] == ("remove", CONTROLLER)


LOCK_HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
    print("locked", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def lock_holder(settings: Settings) -> Iterator[subprocess.Popen[str]]:
    """Another process bringing cluster c1 up (it holds c1's lock)."""
    path = settings.home / "clusters" / ".locks" / "c1.lock"
    path.parent.mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


def test_an_up_in_progress_in_another_process_is_not_disturbed(
    manager: ClusterManager,
    rt: FakeRuntime,
    store: ClusterStore,
    lock_holder: subprocess.Popen[str],
) -> None:
    store.create(spec(), runtime="podman")  # that process's record
    with pytest.raises(ConflictError) as info:
        manager.up(spec())
    assert f"pid {lock_holder.pid}" in str(info.value)
    assert rt.calls == []
    assert store.get("c1").state == ClusterState.CREATING
    with pytest.raises(ConflictError):
        manager.scale("c1", 1)
    # Once that process is gone (killed: the kernel drops its lock), up takes over.
    os.kill(lock_holder.pid, signal.SIGKILL)
    lock_holder.wait()
    assert manager.up(spec()).state == ClusterState.RUNNING


def test_a_failing_preflight_stops_up_before_anything_is_created(
    manager: ClusterManager, rt: FakeRuntime, store: ClusterStore
) -> None:
    rt.dns = False
    with pytest.raises(UnavailableError) as info:
        manager.up(spec())
    message = str(info.value)
    assert info.value.exit_code == 3
    assert "\n" not in message
    assert message.startswith("this machine cannot run a cluster yet: container DNS")
    assert "apt-get install netavark aardvark-dns" in message
    assert store.find("c1") is None
    assert cluster_calls(rt) == []
    assert rt.containers == {} and rt.networks == {}


def test_a_failing_preflight_leaves_a_failed_cluster_as_it_was(
    manager: ClusterManager, rt: FakeRuntime, store: ClusterStore
) -> None:
    rt.handlers.append(slurmctld_down)
    with pytest.raises(ClusterError):
        manager.up(spec())
    rt.handlers.clear()
    rt.init_missing = True
    with pytest.raises(UnavailableError) as info:
        manager.up(spec())
    assert "container init" in str(info.value) and "apt-get install catatonit" in str(info.value)
    assert store.get("c1").state == ClusterState.FAILED
    assert CONTROLLER in rt.containers


def test_what_is_certain_without_a_container_fails_before_any_image_is_built(
    manager: ClusterManager, rt: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    cni = preflight.PodmanFacts(
        network_backend="cni", aardvark_dns=False, dnsname_plugin=False, init_binary=True
    )
    monkeypatch.setattr(preflight, "podman_facts", lambda _rt: cni)
    rt.images = set()  # a build would be needed: it must not start
    with pytest.raises(UnavailableError) as info:
        manager.up(spec())
    assert "CNI network backend" in str(info.value)
    assert rt.calls == []


def test_without_preflight_up_goes_straight_to_the_cluster(
    settings: Settings, store: ClusterStore, rt: FakeRuntime
) -> None:
    manager = ClusterManager(settings, store=store, runtime=rt, preflight=False)
    rt.dns = False
    assert manager.up(spec()).state == ClusterState.RUNNING
    assert not any("doctor" in name for _op, name in rt.calls)


def test_down_of_a_failed_cluster_removes_its_leftovers(
    manager: ClusterManager, rt: FakeRuntime
) -> None:
    rt.handlers.append(slurmctld_down)
    with pytest.raises(HpcboxError):
        manager.up(spec())
    manager.down("c1")
    assert rt.containers == {} and rt.networks == {}
    assert manager.store.get("c1").state == ClusterState.DOWN


def test_each_node_gets_the_one_start_up_script_the_kubernetes_render_carries(
    manager: ClusterManager, rt: FakeRuntime
) -> None:
    manager.up(spec())
    script = (Path(hpcbox.clusters.render.__file__).parent / "hpcbox-node.sh").read_bytes()
    controller = rt.containers[CONTROLLER]
    assert controller.files["/usr/local/sbin/hpcbox-node"] == script
    assert controller.spec.command == ("/usr/local/sbin/hpcbox-node", "controller")
