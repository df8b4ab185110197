"""The remote watcher's batching and idempotency, with a fake Transport (hpcbox's own
seam; the same code runs against real SLURM in tests/integration/cluster)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.transport import CommandResult
from hpcbox.jobs.backends.slurm.remote import SlurmRemote
from hpcbox.jobs.backends.slurm.watcher import BACKEND, RemoteJobs
from hpcbox.jobs.model.spec import parse_job_spec
from hpcbox.jobs.model.states import JobState
from hpcbox.jobs.model.target import parse_target
from hpcbox.jobs.store import JobStore
from hpcbox.jobs.target_store import TargetStore


class FakeSlurm:
    """Answers sbatch, squeue and sacct like a tiny SLURM; records every command."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, str] = {}  # id -> state
        self.next_id = 100
        self.sbatched = 0
        # The watcher submits from several threads at once, as over a real link.
        self.lock = threading.Lock()

    def run(self, argv: Sequence[str], **_: object) -> CommandResult:
        argv = list(argv)
        self.commands.append(argv)
        if argv[:2] == ["sh", "-c"] and argv[3] == "hpcbox-submit":
            # The batched submission: one sbatch per (chdir, script) pair.
            pairs = argv[6:]
            out = "".join(f"@@hpcbox-sbatch 0\n{self._sbatch()}\n" for _ in pairs[::2])
            return CommandResult(0, out.encode(), b"")
        tool = next(a for a in argv if a in ("mkdir", "sbatch", "squeue", "sacct", "scancel"))
        if tool == "sbatch":
            return CommandResult(0, f"{self._sbatch()}\n".encode(), b"")
        if tool == "squeue":
            lines = [
                f"{i}|{s}|N/A|N/A|worker1|/x|None"
                for i, s in self.jobs.items()
                if s in ("PENDING", "RUNNING")
            ]
            return CommandResult(0, ("\n".join(lines) + "\n").encode(), b"")
        if tool == "sacct":
            lines = [
                f"{i}|{s}|0:0|N/A|N/A|worker1|None|/x"
                for i, s in self.jobs.items()
                if s not in ("PENDING", "RUNNING")
            ]
            return CommandResult(0, ("\n".join(lines) + "\n").encode(), b"")
        return CommandResult(0, b"", b"")

    def _sbatch(self) -> str:
        with self.lock:
            self.next_id += 1
            native = str(self.next_id)
            self.jobs[native] = "PENDING"
            self.sbatched += 1
            return native

    def put_file(self, path: str, data: bytes, **_: object) -> None:
        self.files[path] = data

    def read_file(self, path: str, **_: object) -> bytes:
        return self.files.get(path, b"")

    def file_size(self, path: str) -> int | None:
        return len(self.files[path]) if path in self.files else None

    def home(self) -> str:
        return "/home/alice"

    def count(self, tool: str) -> int:
        return sum(tool in argv for argv in self.commands)


@pytest.fixture
def setup(home: Path) -> tuple[RemoteJobs, JobStore, FakeSlurm]:
    engine = open_engine(Settings(home=home))
    store, targets = JobStore(engine), TargetStore(engine)
    targets.add(parse_target({"name": "hpc", "host": "h", "user": "alice"}))
    fake = FakeSlurm()
    # A tiny interval; each test forces polls by clearing next_poll.
    remote = RemoteJobs(store, targets, min_interval=0.001, max_interval=0.001)
    remote.remote = lambda _name: SlurmRemote(fake)  # type: ignore[method-assign,assignment,return-value]
    return remote, store, fake


def test_one_squeue_per_poll_whatever_the_number_of_jobs(
    setup: tuple[RemoteJobs, JobStore, FakeSlurm],
) -> None:
    remote, store, fake = setup
    spec = parse_job_spec({"script": "echo hi"})
    ids = [store.create(spec, backend=BACKEND, target="hpc").id for _ in range(50)]
    remote.step()  # submits all 50
    assert fake.sbatched == 50
    # In batches: far fewer commands than jobs.
    assert len(fake.commands) <= 50 // 25 * 8
    assert all(store.get(i).state is JobState.PENDING for i in ids)
    before = len(fake.commands)
    for native in fake.jobs:
        fake.jobs[native] = "RUNNING"
    remote.step()
    assert len(fake.commands) - before == 1  # one squeue for 50 jobs
    assert all(store.get(i).state is JobState.RUNNING for i in ids)
    for native in fake.jobs:
        fake.jobs[native] = "COMPLETED"
    before = len(fake.commands)
    remote.step()
    assert len(fake.commands) - before == 2  # one squeue, one sacct for all that left
    assert all(store.get(i).state is JobState.COMPLETED for i in ids)
    assert store.get(ids[0]).current.exit_code == 0


def test_lost_submission_is_found_not_resubmitted(
    setup: tuple[RemoteJobs, JobStore, FakeSlurm],
) -> None:
    remote, store, fake = setup
    job = store.create(parse_job_spec({"script": "echo hi"}), backend=BACKEND, target="hpc")
    # A scheduler died after sbatch but before recording the id: the mark is there...
    store.transition(job.id, 1, JobState.NEW, handle={"submitting": True})
    fake.jobs["555"] = "PENDING"
    slurm = SlurmRemote(fake)
    slurm.find = lambda _job: "555"  # type: ignore[method-assign]
    remote.remote = lambda _name: slurm  # type: ignore[method-assign,assignment,return-value]
    remote.step()
    assert fake.count("sbatch") == 0
    assert store.get(job.id).current.native_id == "555"


def test_removed_target_orphans_its_jobs(
    setup: tuple[RemoteJobs, JobStore, FakeSlurm], home: Path
) -> None:
    remote, store, _fake = setup
    job = store.create(parse_job_spec({"script": "x"}), backend=BACKEND, target="gone")
    remote.remote = RemoteJobs.remote.__get__(remote)  # type: ignore[method-assign]
    remote.step()
    done = store.get(job.id)
    assert done.state is JobState.ERROR
    assert done.current.reason and "removed" in done.current.reason


def test_unreachable_target_keeps_states_and_says_so(
    setup: tuple[RemoteJobs, JobStore, FakeSlurm],
) -> None:
    from hpcbox.core.errors import TransientError

    remote, store, fake = setup
    job = store.create(parse_job_spec({"script": "echo hi"}), backend=BACKEND, target="hpc")
    remote.step()
    assert store.get(job.id).state is JobState.PENDING

    def down(*_a: object, **_k: object) -> CommandResult:
        raise TransientError("target unreachable: connection refused")

    fake.run = down  # type: ignore[method-assign]
    remote._state["hpc"].next_poll = 0
    remote.step()
    after = store.get(job.id)
    assert after.state is JobState.PENDING
    assert after.current.reason and after.current.reason.startswith("target unreachable")


def test_ssh_passwords_come_from_the_environment_at_connection_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpcbox.jobs.backends.slurm.watcher import _ssh_target

    spec = parse_target({"name": "my-hpc", "host": "h", "user": "alice"})
    assert _ssh_target(spec).password is None
    monkeypatch.setenv("HPCBOX_SSH_PASSWORD", "common")
    assert _ssh_target(spec).password == "common"
    monkeypatch.setenv("HPCBOX_SSH_PASSWORD_MY_HPC", "own-pw-7")
    target = _ssh_target(spec)
    assert target.password == "own-pw-7"
    assert "own-pw-7" not in repr(target)
