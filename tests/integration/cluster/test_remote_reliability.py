"""Jobs on a real SLURM cluster over SSH when things go wrong: the service is
SIGKILLed in a burst of submissions, slurmctld restarts, SSH connections are cut,
and scripts and names are hostile.

One cluster ("relia", with accounting so that ``sacct`` can count what reached
SLURM) serves the module. hpcbox's state lives in a home of this module's own,
so no other test's scheduler competes for its lock; the target has no rate limit
(the container cluster does not limit RPCs), which keeps the burst short.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from hpcbox.clusters.manager import ClusterManager
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.backends.slurm.backend import SlurmBackend
from hpcbox.jobs.backends.slurm.watcher import RemoteJobs
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState
from hpcbox.jobs.store import JobStore
from hpcbox.jobs.target_store import TargetStore
from tests.integration.cluster.conftest import Up, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLUSTER = "relia"
USER = "rel"
BURST = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(bring_up: Up) -> str:
    bring_up(
        {
            "name": CLUSTER,
            "workers": {"count": 2, "cpus": 2, "memory": "1G"},
            "accounting": True,
            "users": [{"name": USER}],
            # A fixed port: the controller (login node) is restarted below, and a
            # port picked at start could change with it.
            "login": {"ssh_port": _free_port()},
        }
    )
    return CLUSTER


@pytest.fixture(scope="module")
def settings(
    cluster: str, manager: ClusterManager, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    home = tmp_path_factory.mktemp("relia-home")
    mine = Settings(home=home, slurm_rate_limit=None)
    target = TargetStore(manager.store.engine).get(cluster)
    TargetStore(open_engine(mine)).add(target.model_copy(update={"rate_limit": 0}), replace=True)
    return mine


def remote_jobs(engine: JobEngine) -> RemoteJobs:
    slurm = engine.backend("slurm")
    assert isinstance(slurm, SlurmBackend)
    return slurm.remote


@pytest.fixture
def engine(settings: Settings) -> Iterator[JobEngine]:
    eng = JobEngine(settings, scheduling="thread")
    yield eng
    eng.close(handover=False)


def wait_all_terminal(store: JobStore, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        active = [i for i in ids if store.get(i).state in ACTIVE_STATES]
        if not active:
            return
        assert time.monotonic() < deadline, [store.get(i).to_json() for i in active[:3]]
        time.sleep(0.5)


def sacct_names(manager: ClusterManager, since: str) -> Counter[str]:
    """How many SLURM jobs carry each hpcbox-<id> name (every user, since ``since``)."""
    out = run(
        manager,
        CLUSTER,
        ["sacct", "-a", "-X", "-n", "-P", "-S", since, "-o", "JobName%40,JobID"],
    ).stdout.decode()
    return Counter(line.split("|")[0] for line in out.splitlines() if line.startswith("hpcbox-"))


def cluster_time(manager: ClusterManager) -> str:
    return run(manager, CLUSTER, ["date", "+%Y-%m-%dT%H:%M:%S"]).stdout.decode().strip()


# -- SIGKILL during a burst --------------------------------------------------------


def test_sigkill_during_a_burst_tracks_every_job_once(
    settings: Settings, manager: ClusterManager
) -> None:
    from tests.integration.api.test_rest import Server

    since = cluster_time(manager)
    store = JobStore(open_engine(settings))
    server = Server(settings)
    accepted: dict[int, int] = {}  # burst index -> hpcbox job id
    lost: list[int] = []  # requests whose outcome the kill made unknown
    caught = threading.Event()  # the kill found a submission in flight
    killed = threading.Event()

    def killer() -> None:
        # SIGKILL the service while its watcher is sbatch-ing: as soon as a job is
        # marked "submitting" (sbatch sent, SLURM id not yet recorded), or at the
        # latest once half the burst is in.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.is_set():
            for job in store.list_jobs(states={JobState.NEW}, backend="slurm", limit=BURST):
                if (store.handle(job.id, 1) or {}).get("submitting"):
                    caught.set()
                    break
            if caught.is_set() or len(accepted) >= BURST // 2:
                break
        server.proc.kill()
        killed.set()

    body = {"command": ["true"], "target": CLUSTER, "resources": {"memory": "10M"}}
    watcher = threading.Thread(target=killer)
    try:
        for index in range(BURST):
            if index == 20:
                watcher.start()  # some jobs queued first, so the watcher is busy
            try:
                response = server.client.post("/v1/jobs", json={**body, "name": f"burst-{index}"})
                assert response.status_code == 201, response.text
                accepted[index] = response.json()["id"]
            except httpx.HTTPError:
                lost.append(index)
                if killed.wait(30):
                    break
        watcher.join()
        assert killed.is_set()
        server.proc.wait()
        # The service is back; the client resends what it does not know was taken,
        # looking it up by name first (as any careful REST client would).
        server = Server(settings)
        names = {
            job["name"]: job["id"]
            for job in server.client.get("/v1/jobs", params={"limit": 10_000}).json()
        }
        for index in range(BURST):
            if index in accepted:
                continue
            if f"burst-{index}" in names:
                accepted[index] = names[f"burst-{index}"]
                continue
            response = server.client.post("/v1/jobs", json={**body, "name": f"burst-{index}"})
            assert response.status_code == 201, response.text
            accepted[index] = response.json()["id"]
        ids = sorted(accepted.values())
        wait_all_terminal(store, ids, timeout=240)
    finally:
        server.stop()
    print(f"burst: {len(lost)} requests cut by the kill; submission in flight: {caught.is_set()}")

    # Tracked exactly once in hpcbox: one job per burst index, no strays.
    jobs = store.list_jobs(backend="slurm", limit=10_000)
    burst_jobs = [j for j in jobs if (j.spec.name or "").startswith("burst-")]
    assert sorted(j.id for j in burst_jobs) == ids
    assert len({j.spec.name for j in burst_jobs}) == BURST
    states = Counter(j.state for j in burst_jobs)
    assert states == {JobState.COMPLETED: BURST}, states
    assert all(j.attempts[-1].number == 1 for j in burst_jobs)
    # ...and none duplicated on the cluster: each hpcbox-<id> was submitted once.
    expected = {f"hpcbox-{i}" for i in ids}
    deadline = time.monotonic() + 60
    while True:  # slurmdbd records jobs a little after slurmctld
        counted = sacct_names(manager, since)
        if expected <= set(counted) or time.monotonic() > deadline:
            break
        time.sleep(1)
    mine = {name: n for name, n in counted.items() if name in expected}
    assert set(mine) == expected
    assert set(mine.values()) == {1}, {n: c for n, c in mine.items() if c != 1}


# -- slurmctld restarts while jobs run ---------------------------------------------


def test_slurmctld_restart_while_jobs_run(engine: JobEngine, manager: ClusterManager) -> None:
    from hpcbox.clusters.naming import container_name

    spec = parse_job_spec({"command": ["sleep", "12"], "resources": {"memory": "10M"}})
    ids = [engine.submit(spec, target=CLUSTER).id for _ in range(6)]
    deadline = time.monotonic() + 90
    while sum(engine.get(i).state is JobState.RUNNING for i in ids) < 2:
        assert time.monotonic() < deadline, [engine.get(i).to_json() for i in ids]
        time.sleep(0.3)
    # slurmctld runs as the controller container's main process: stopping the
    # container stops it (SIGTERM: it saves its state), starting it again starts
    # a new slurmctld that recovers the jobs from StateSaveLocation.
    runtime = manager.runtime()
    controller = container_name(CLUSTER, "controller")
    runtime.stop(controller, timeout=20)
    time.sleep(3)
    runtime.start(controller)
    wait_all_terminal(engine.store, ids, timeout=180)
    done = [engine.get(i) for i in ids]
    assert [j.state for j in done] == [JobState.COMPLETED] * len(ids), [
        j.to_json() for j in done if j.state is not JobState.COMPLETED
    ]
    assert all(j.current.exit_code == 0 for j in done)


# -- SSH connections cut ------------------------------------------------------------


def test_cut_ssh_connections_reconnect_and_fail_no_job(
    engine: JobEngine, manager: ClusterManager
) -> None:
    spec = parse_job_spec({"command": ["sleep", "8"], "resources": {"memory": "10M"}})
    ids = [engine.submit(spec, target=CLUSTER).id for _ in range(4)]
    transport = remote_jobs(engine).remote(CLUSTER).transport
    deadline = time.monotonic() + 60
    while not all(engine.get(i).state is JobState.RUNNING for i in ids[:2]):
        assert time.monotonic() < deadline, [engine.get(i).to_json() for i in ids]
        time.sleep(0.3)
    before = transport.stats().connections_made  # type: ignore[attr-defined]
    # Kill the user's sshd session processes on the login node, three times, while
    # the watcher polls: each kill drops the one pooled connection.
    for _ in range(3):
        found = manager.exec(CLUSTER, ["pgrep", "-u", USER, "-x", "sshd"])
        pids = found.stdout.decode().split()
        assert pids, "no sshd session for the target user: is hpcbox connected?"
        run(manager, CLUSTER, ["kill", "-KILL", *pids])
        time.sleep(2.5)
    wait_all_terminal(engine.store, ids, timeout=120)
    done = [engine.get(i) for i in ids]
    assert [j.state for j in done] == [JobState.COMPLETED] * len(ids), [j.to_json() for j in done]
    assert transport.stats().connections_made > before  # type: ignore[attr-defined]


# -- hostile scripts and names --------------------------------------------------------

HOSTILE = 'it\'s "quoted"; $(touch /tmp/relia-pwned) `touch /tmp/relia-pwned` \\ ✓ ünï €\ttab'


def test_hostile_scripts_names_and_arguments_run_verbatim(
    engine: JobEngine, manager: ClusterManager
) -> None:
    name = 'x\'; touch /tmp/relia-pwned; echo "$(id)" `id`\nsecond line ✓'
    # Printed by the job itself from a quoted heredoc: bash takes it literally.
    script = f"#!/bin/bash\ncat <<'HPCBOX_END'\n{HOSTILE}\nline 2 $HOME\nHPCBOX_END\n"
    jobs = {
        "script": engine.submit(parse_job_spec({"name": name, "script": script}), target=CLUSTER),
        "argv": engine.submit(
            parse_job_spec({"name": name, "command": ["printf", "%s\\n", HOSTILE, "a\nb"]}),
            target=CLUSTER,
        ),
        "env": engine.submit(
            parse_job_spec(
                {"name": HOSTILE, "script": 'printf "%s\\n" "$WEIRD"', "env": {"WEIRD": HOSTILE}}
            ),
            target=CLUSTER,
        ),
    }
    ids = [j.id for j in jobs.values()]
    wait_all_terminal(engine.store, ids, timeout=120)
    for kind, job in jobs.items():
        done = engine.get(job.id)
        assert done.state is JobState.COMPLETED, (kind, done.to_json())
    assert engine.get(jobs["script"].id).spec.name == name
    assert engine.logs(jobs["script"].id).data.decode() == f"{HOSTILE}\nline 2 $HOME\n"
    assert engine.logs(jobs["argv"].id).data.decode() == f"{HOSTILE}\na\nb\n"
    assert engine.logs(jobs["env"].id).data.decode() == f"{HOSTILE}\n"
    # The script reached the cluster byte for byte.
    remote = remote_jobs(engine).remote(CLUSTER)
    uploaded = remote.transport.read_file(
        remote.log_path(engine.get(jobs["script"].id), 1, "stdout").rsplit("/", 1)[0] + "/script"
    )
    assert uploaded == script.encode()
    # Nothing was executed on the way, on the login node or a worker.
    for node in ("controller", "worker1", "worker2"):
        probe = manager.exec(CLUSTER, ["ls", "/tmp/relia-pwned"], node=node)
        assert probe.exit_code != 0, f"a shell ran the hostile text on {node}"
    assert not os.path.exists("/tmp/relia-pwned")
