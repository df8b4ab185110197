"""The operator's logic against a REAL SLURM cluster (podman containers with slurmctld,
slurmd, sshd), with a fake only at hpcbox's own Kubernetes seam (:class:`FakeKube`):
create -> COMPLETED, edit of a finished job -> rerun, edit of an active job -> refused,
delete of an active job -> scancel before the finalizer lets go, scancel on the cluster
-> CANCELLED, output in the log Pod, and password login from a prototype-style Secret."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hpcbox.clusters.keys import load_or_create_keys
from hpcbox.clusters.manager import ClusterManager
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.target_store import TargetStore
from hpcbox.operator.controller import SlurmJobController
from hpcbox.operator.logpod import ATTEMPT_ANNOTATION, printed_output
from hpcbox.operator.mapping import Decision
from hpcbox.operator.resource import ObjectRef
from tests.integration.cluster.conftest import Up, run
from tests.unit.operator.fake_kube import FakeKube

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLUSTER = "opk8s"
USER = "opuser"
NS = "jobs"
PASSWORD = "op-test-password-9f2c"  # a throwaway user's password inside the test cluster


@pytest.fixture(scope="module")
def cluster(bring_up: Up, cluster_settings: Settings) -> dict[str, Any]:
    bring_up(
        {
            "name": CLUSTER,
            "workers": {"count": 1, "cpus": 1, "memory": "512M"},
            "users": [{"name": USER}],
        }
    )
    target = TargetStore(open_engine(cluster_settings)).get(CLUSTER)
    keys = load_or_create_keys(cluster_settings.home, CLUSTER)
    return {
        "port": target.port,
        "key": keys.admin_key_path.read_bytes(),
        "known_hosts": keys.known_hosts_path.read_bytes(),
    }


@pytest.fixture
def kube(cluster: dict[str, Any]) -> FakeKube:
    fake = FakeKube()
    fake.secrets[NS, "ssh"] = {
        "ssh-privatekey": cluster["key"],
        "known_hosts": cluster["known_hosts"],
    }
    return fake


@pytest.fixture
def controller(tmp_path: Path, kube: FakeKube) -> Iterator[SlurmJobController]:
    engine = JobEngine(Settings(home=tmp_path / "operator"), scheduling="thread")
    ctl = SlurmJobController(engine, kube, interval=0.2)
    ctl.start()
    yield ctl
    ctl.close()


def new_ref(kube: FakeKube, name: str) -> ObjectRef:
    ref = ObjectRef(NS, name, f"uid-{name}-{time.monotonic_ns()}")
    kube.objects.add(ref)
    return ref


def spec(cluster: dict[str, Any], script: str, via: str = "ssh", **extra: Any) -> dict[str, Any]:
    target = {"host": "127.0.0.1", "port": cluster["port"], "secretName": via}
    if via == "ssh":
        target["user"] = USER
    return {"target": target, "scriptCode": script, **extra}


def wait(what: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def squeue_state(manager: ClusterManager, job_id: str) -> str:
    out = run(manager, CLUSTER, ["squeue", "-h", "--states=all", "-j", job_id, "-o", "%T"])
    return out.stdout.decode().strip()


def test_create_completes_and_an_edit_reruns(
    controller: SlurmJobController, kube: FakeKube, cluster: dict[str, Any]
) -> None:
    ref = new_ref(kube, "hello")
    first = spec(
        cluster,
        '#!/bin/bash\necho "it\'s $GREETING"\necho oops >&2\n',
        env={"GREETING": "$(x) ✓"},
        resources={"time": "5:00", "memory": "100M"},
    )
    controller.ensure(ref, first, {})
    wait(lambda: kube.status(ref).get("state") == "COMPLETED" and (NS, "hello") in kube.pods)
    status = kube.status(ref)
    assert status["jobId"].isdigit() and status["nativeState"] == "COMPLETED"
    assert status["exitCode"] == 0 and status["attempts"] == 1 and status["user"] == USER
    assert status["elapsed"] and status["elapsed"].count(":") == 2
    pod = kube.pods[NS, "hello"]
    stdout, stderr = printed_output(pod["spec"]["containers"][0]["args"])
    assert stdout == "it's $(x) ✓\n" and stderr.startswith("oops\n")
    assert "Submitted" in kube.reasons(ref) and "Completed" in kube.reasons(ref)

    second = {**first, "scriptCode": "echo second; exit 4"}
    assert controller.update(ref, first, second, status) is Decision.RERUN
    wait(
        lambda: kube.status(ref).get("attempts") == 2 and kube.status(ref).get("state") == "FAILED"
    )
    wait(
        lambda: (
            kube.pods.get((NS, "hello"), {})
            .get("metadata", {})
            .get("annotations", {})
            .get(ATTEMPT_ANNOTATION)
            == "2"
        )
    )
    assert kube.status(ref)["exitCode"] == 4
    assert printed_output(kube.pods[NS, "hello"]["spec"]["containers"][0]["args"])[0] == "second\n"
    job = controller.engine.get(kube.status(ref)["hpcboxJob"])
    assert [a.state.value for a in job.attempts] == ["COMPLETED", "FAILED"]
    assert job.attempts[0].native_id == status["jobId"] != job.current.native_id


def test_active_edit_refused_delete_scancels(
    controller: SlurmJobController, kube: FakeKube, cluster: dict[str, Any], manager: ClusterManager
) -> None:
    ref = new_ref(kube, "long")
    body = spec(cluster, "sleep 300")
    controller.ensure(ref, body, {})
    wait(lambda: kube.status(ref).get("state") == "RUNNING")
    status = kube.status(ref)
    assert (
        controller.update(ref, body, {**body, "scriptCode": "true"}, status)
        is Decision.REFUSE_ACTIVE
    )
    assert kube.reasons(ref)[-1] == "EditRefused"
    assert controller.engine.get(status["hpcboxJob"]).current.number == 1
    # Deletion: scancel has happened by the time the handler returns (the finalizer's cue).
    controller.delete(ref, body, status)
    assert squeue_state(manager, status["jobId"]) in ("", "CANCELLED")
    # This cluster has no accounting: slurmctld itself still knows the finished job.
    shown = run(manager, CLUSTER, ["scontrol", "show", "job", "-o", status["jobId"]])
    assert "JobState=CANCELLED" in shown.stdout.decode()
    assert controller.engine.get(status["hpcboxJob"]).state.value == "CANCELLED"


def test_scancel_on_the_cluster_shows_cancelled(
    controller: SlurmJobController, kube: FakeKube, cluster: dict[str, Any], manager: ClusterManager
) -> None:
    ref = new_ref(kube, "theirs")
    controller.ensure(ref, spec(cluster, "sleep 300"), {})
    wait(lambda: kube.status(ref).get("state") == "RUNNING")
    run(manager, CLUSTER, ["scancel", kube.status(ref)["jobId"]], user=USER)
    wait(lambda: kube.status(ref).get("state") == "CANCELLED")
    assert kube.status(ref)["nativeState"] == "CANCELLED"


def test_password_login_from_a_prototype_secret(
    controller: SlurmJobController, kube: FakeKube, cluster: dict[str, Any], manager: ClusterManager
) -> None:
    # The cluster's sshd takes keys only; open password login for this test's user.
    run(manager, CLUSTER, ["sh", "-c", f"echo '{USER}:{PASSWORD}' | chpasswd"])
    run(
        manager,
        CLUSTER,
        [
            "sh",
            "-c",
            "printf 'PasswordAuthentication yes\\n' > /etc/ssh/sshd_config.d/00-optest.conf"
            " && kill -HUP $(cat /run/sshd.pid)",
        ],
    )
    kube.secrets[NS, "proto"] = {
        "user": USER.encode(),
        "passwd": f"{PASSWORD}\n".encode(),
        "known_hosts": cluster["known_hosts"],
    }
    ref = new_ref(kube, "proto")
    controller.ensure(ref, spec(cluster, "whoami", via="proto"), {})
    wait(lambda: kube.status(ref).get("state") in ("COMPLETED", "FAILED", "ERROR"))
    assert kube.status(ref)["state"] == "COMPLETED", kube.status(ref)
    assert printed_output(kube.pods[NS, "proto"]["spec"]["containers"][0]["args"])[0] == f"{USER}\n"
    # The password went nowhere but memory.
    for path in Path(controller.engine.settings.home).rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
