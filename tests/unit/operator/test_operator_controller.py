"""The controller's decisions, on a real JobEngine (no scheduler: jobs stay NEW unless
told otherwise) with a fake at hpcbox's Kubernetes seam. The SLURM side is tested
against a real cluster in tests/integration/operator."""

from __future__ import annotations

from collections.abc import Iterator

import kopf
import pytest

from hpcbox.core.errors import NotFoundError, PermanentError, TransientError
from hpcbox.core.settings import Settings
from hpcbox.jobs.backends.slurm.backend import SlurmBackend
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.states import JobState
from hpcbox.operator import handlers
from hpcbox.operator.controller import SlurmJobController
from hpcbox.operator.mapping import Decision
from hpcbox.operator.resource import ObjectRef
from tests.unit.operator.fake_kube import FakeKube

REF = ObjectRef("jobs", "hello", "uid-1")
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nNOT-A-REAL-KEY-but-secret-material\n"
SPEC = {
    "target": {"host": "127.0.0.1", "port": 2222, "user": "alice", "secretName": "creds"},
    "scriptCode": "echo one",
}


@pytest.fixture
def kube() -> FakeKube:
    fake = FakeKube()
    fake.secrets["jobs", "creds"] = {"ssh-privatekey": KEY.encode()}
    fake.objects.add(REF)
    return fake


@pytest.fixture
def controller(settings: Settings, kube: FakeKube) -> Iterator[SlurmJobController]:
    ctl = SlurmJobController(JobEngine(settings, scheduling="none"), kube)
    yield ctl
    ctl.close()


def test_create_then_resume_never_submits_twice(
    controller: SlurmJobController, kube: FakeKube
) -> None:
    job = controller.ensure(REF, SPEC, {})
    assert job.state is JobState.NEW and job.backend == "slurm"
    assert kube.reasons(REF) == ["Submitted"]
    controller.sync()
    status = kube.status(REF)
    assert status["state"] == "NEW" and status["hpcboxJob"] == job.id and status["user"] == "alice"
    # Resume with the status, and after a crash that lost it: the same job.
    assert controller.ensure(REF, SPEC, status).id == job.id
    assert controller.ensure(REF, SPEC, {}).id == job.id
    assert len(controller.engine.list_jobs()) == 1
    # The credentials are in memory for the engine, by target name, and nowhere else.
    target = status["target"]
    slurm = controller.engine.backend("slurm")
    assert isinstance(slurm, SlurmBackend)
    assert slurm.remote.credentials is controller.credentials
    creds = controller.credentials.get(target)
    assert creds is not None and creds.key_data == KEY
    db = (controller.engine.settings.home).rglob("*")
    for path in db:
        if path.is_file():
            assert b"secret-material" not in path.read_bytes(), path
    assert "secret-material" not in repr(controller.credentials)


def test_edit_active_is_refused_finished_is_rerun(
    controller: SlurmJobController, kube: FakeKube
) -> None:
    job = controller.ensure(REF, SPEC, {})
    controller.sync()
    edited = {**SPEC, "scriptCode": "echo two", "resources": {"ntasks": 2}}
    assert controller.update(REF, SPEC, edited, kube.status(REF)) is Decision.REFUSE_ACTIVE
    assert kube.reasons(REF)[-1] == "EditRefused"
    assert controller.engine.get(job.id).current.number == 1
    controller.engine.cancel(job.id)  # NEW: no SLURM id yet, so no SSH
    controller.sync()
    assert kube.status(REF)["state"] == "CANCELLED"
    assert controller.update(REF, SPEC, edited, kube.status(REF)) is Decision.RERUN
    again = controller.engine.get(job.id)
    assert again.current.number == 2 and again.spec.script == "echo two"
    assert again.spec.resources.ntasks == 2
    assert [a.state for a in again.attempts] == [JobState.CANCELLED, JobState.NEW]
    controller.sync()
    assert kube.status(REF)["attempts"] == 2
    moved = {**edited, "target": {**SPEC["target"], "host": "10.0.0.1"}}  # type: ignore[dict-item]
    assert controller.update(REF, edited, moved, kube.status(REF)) is Decision.REFUSE_TARGET


def test_delete_cancels_and_forgets(controller: SlurmJobController, kube: FakeKube) -> None:
    job = controller.ensure(REF, SPEC, {})
    controller.sync()
    controller.delete(REF, SPEC, kube.status(REF))
    assert controller.engine.get(job.id).state is JobState.CANCELLED
    assert controller.watched() == []


def test_missing_secret_and_configmap(controller: SlurmJobController, kube: FakeKube) -> None:
    with pytest.raises(NotFoundError, match="Secret jobs/other"):
        controller.ensure(REF, {**SPEC, "target": {**SPEC["target"], "secretName": "other"}}, {})  # type: ignore[dict-item]
    from_cm = {"target": SPEC["target"], "scriptConfigMap": {"name": "cm", "key": "run.sh"}}
    with pytest.raises(NotFoundError, match="ConfigMap jobs/cm"):
        controller.ensure(REF, from_cm, {})
    kube.config_maps["jobs", "cm"] = {"run.sh": "echo from configmap"}
    assert controller.ensure(REF, from_cm, {}).spec.script == "echo from configmap"


def test_errors_map_onto_kopf(controller: SlurmJobController, kube: FakeKube) -> None:
    assert isinstance(handlers.kopf_error(TransientError("x", retry_after=3)), kopf.TemporaryError)
    assert isinstance(handlers.kopf_error(NotFoundError("no Secret")), kopf.TemporaryError)
    assert isinstance(handlers.kopf_error(PermanentError("x")), kopf.PermanentError)
    memo = kopf.Memo(controller=controller)
    meta = {"namespace": "jobs", "name": "hello", "uid": "uid-1"}
    bad = {"target": {"host": "h", "secretName": "creds"}, "scriptCode": "x"}  # no user anywhere
    with pytest.raises(kopf.PermanentError, match=r"spec\.target\.user"):
        handlers.created(spec=bad, status={}, meta=meta, memo=memo)  # type: ignore[arg-type]
    assert (
        kube.status(REF)["state"] == "ERROR" and "spec.target.user" in kube.status(REF)["message"]
    )
    assert kube.reasons(REF)[-1] == "InvalidInputError"
    # A later valid edit creates the job.
    handlers.edited(old=bad, new=SPEC, status=kube.status(REF), meta=meta, memo=memo)  # type: ignore[arg-type]
    assert len(controller.engine.list_jobs()) == 1


def test_handlers_are_registered() -> None:
    activities = [h.id for h in handlers.registry._activities.get_all_handlers()]
    # login: kopf's own connection (its defaults are on its global registry).
    assert activities == ["login", "startup", "cleanup"]
    changing = [h.id for h in handlers.registry._changing.get_all_handlers()]
    # "created" twice: on creation, and on resume after a restart.
    assert changing == ["created", "created", "edited/spec", "deleted"]
