"""Backends are plugins: found through the ``hpcbox.backends`` entry point, and the
engine drives any of them the same way. The echo backend (tests/unit/engine/
echo_backend.py) is registered by a distribution installed at test time, as a
third party's PBS or Flux backend would be."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError, NotFoundError, PermanentError
from hpcbox.core.settings import Settings
from hpcbox.jobs import engine as engine_module
from hpcbox.jobs.backends.local.backend import LocalBackend
from hpcbox.jobs.backends.slurm.backend import SlurmBackend
from hpcbox.jobs.engine import JobEngine
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from hpcbox.jobs.registry import GROUP, installed
from tests.unit.engine import echo_backend
from tests.unit.engine.echo_backend import EchoBackend


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the echo backend's distribution for this test only."""
    monkeypatch.syspath_prepend(str(echo_backend.install(tmp_path / "site")))


@pytest.fixture
def engine(plugin: None, settings: Settings) -> Iterator[JobEngine]:
    eng = JobEngine(settings, scheduling="none")
    assert eng.lock.try_acquire()  # this test's engine is the scheduling process
    yield eng
    eng.close(handover=False)


def test_hpcbox_registers_its_own_backends_under_the_entry_point() -> None:
    points = installed()
    assert points["local"].load() is LocalBackend
    assert points["slurm"].load() is SlurmBackend
    assert "echo" not in points


def test_an_installed_plugin_is_found(plugin: None, settings: Settings) -> None:
    assert installed()["echo"].load() is EchoBackend
    with JobEngine(settings, scheduling="none") as engine:
        assert list(engine.backends) == ["echo", "local", "slurm"]
        assert isinstance(engine.backend("echo"), EchoBackend)


def test_a_plugin_runs_a_job_end_to_end(engine: JobEngine) -> None:
    job = engine.submit(parse_job_spec({"command": ["echo", "hello", "plugin"]}), target="echo")
    assert (job.backend, job.target, job.state) == ("echo", "echo", JobState.NEW)
    engine.scheduling_step()
    submitted = engine.get(job.id)
    assert submitted.state is JobState.PENDING
    assert submitted.current.native_id == f"echo-{job.id}-1"
    assert submitted.current.native_state == "QUEUED"
    assert engine.logs(job.id).data == b""  # nothing written yet
    engine.scheduling_step()
    running = engine.get(job.id)
    assert running.state is JobState.RUNNING and running.current.started_at is not None
    chunk = engine.logs(job.id)
    assert chunk.data == b"hello plugin\n" and not chunk.eof  # readable while it runs
    assert engine.scheduling_step() == 0  # it completes: nothing active is left
    done = engine.get(job.id)
    assert done.state is JobState.COMPLETED and done.current.exit_code == 0
    assert done.current.native_state == "DONE"
    chunk = engine.logs(job.id)
    assert chunk.data == b"hello plugin\n" and chunk.eof
    assert engine.logs(job.id, stream="stderr").data == b""
    assert [(e.from_state, e.to_state) for e in engine.events(job.id)] == [
        (None, JobState.NEW),
        (JobState.NEW, JobState.PENDING),
        (JobState.PENDING, JobState.RUNNING),
        (JobState.RUNNING, JobState.COMPLETED),
    ]


def test_rerun_and_cancel_go_through_the_plugin(engine: JobEngine) -> None:
    job = engine.submit(parse_job_spec({"command": ["echo", "first"]}), target="echo-a")
    for _ in range(3):
        engine.scheduling_step()
    again = engine.rerun(job.id, spec=parse_job_spec({"command": ["echo", "second"]}))
    assert again.state is JobState.NEW and again.current.number == 2  # the plugin's queueing
    for _ in range(3):
        engine.scheduling_step()
    assert engine.get(job.id).state is JobState.COMPLETED
    assert engine.logs(job.id).data == b"second\n"
    assert engine.logs(job.id, attempt=1).data == b"first\n"
    with pytest.raises(InvalidInputError):  # the plugin's own validation
        engine.rerun(job.id, spec=parse_job_spec({"command": ["x"], "resources": {"nodes": 2}}))
    other = engine.submit(parse_job_spec({"command": ["echo", "never"]}), target="echo")
    engine.scheduling_step()
    assert engine.cancel(other.id).state is JobState.CANCELLED
    engine.scheduling_step()
    assert engine.get(other.id).state is JobState.CANCELLED


def test_the_scheduling_thread_drives_a_plugin(plugin: None, settings: Settings) -> None:
    with JobEngine(settings, scheduling="thread") as engine:
        woken = EchoBackend.woken
        job = engine.submit(parse_job_spec({"script": "from a script\n"}), target="echo")
        done = engine.wait(job.id, timeout=20)
        assert done.state is JobState.COMPLETED, done.to_json()
        assert engine.logs(job.id).data == b"from a script\n"
        assert EchoBackend.woken > woken  # the submission woke every backend


def test_unknown_targets_and_missing_backends(plugin: None, settings: Settings) -> None:
    with JobEngine(settings, scheduling="none") as engine:
        with pytest.raises(NotFoundError, match="no target named 'nowhere'"):
            engine.submit(parse_job_spec({"command": ["true"]}), target="nowhere")
        job = engine.submit(parse_job_spec({"command": ["echo"]}), target="echo")
        assert engine.has_local_work()
    # A process without the plugin still lists the job, and says why it cannot do more;
    # nor does it keep an agent alive for a job it cannot schedule.
    with JobEngine(settings, scheduling="none", backends={"local": LocalBackend}) as bare:
        assert bare.get(job.id).backend == "echo"
        assert bare.get(job.id).state is JobState.NEW
        assert not bare.has_local_work()
        with pytest.raises(PermanentError, match="'echo' is not installed"):
            bare.logs(job.id)
        with pytest.raises(PermanentError, match=GROUP):
            bare.cancel(job.id)


def test_the_engine_never_asks_which_backend_it_talks_to() -> None:
    """No import of a backend's module, and no comparison with a job's or a backend's
    name, in JobEngine."""
    tree = ast.parse(inspect.getsource(engine_module))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not {m for m in imported if m.startswith("hpcbox.jobs.backends")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                assert not (isinstance(side, ast.Attribute) and side.attr in ("backend", "name"))
                assert not (isinstance(side, ast.Constant) and side.value in ("local", "slurm"))
