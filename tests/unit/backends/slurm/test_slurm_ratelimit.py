"""The token bucket that paces SLURM commands, and its use by the SLURM backend,
the watcher and the settings (a fake Transport at hpcbox's own seam)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.settings import Settings
from hpcbox.infra.db import open_engine
from hpcbox.infra.transport import CommandResult
from hpcbox.jobs.backends.slurm import RateLimit
from hpcbox.jobs.backends.slurm.remote import SlurmRemote
from hpcbox.jobs.backends.slurm.watcher import RemoteJobs
from hpcbox.jobs.model.target import parse_target
from hpcbox.jobs.store import JobStore
from hpcbox.jobs.target_store import TargetStore


def test_a_full_bucket_lets_a_burst_go_then_spaces_calls() -> None:
    limit = RateLimit(2.0, burst=3)
    assert [limit.reserve(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Empty: calls queue, each half a second (1 / rate) after the one before.
    assert limit.reserve(10.0) == pytest.approx(0.5)
    assert limit.reserve(10.0) == pytest.approx(1.0)
    # At 11.0 two tokens came back, both already promised to the waiting calls.
    assert limit.reserve(11.0) == pytest.approx(0.5)


def test_an_idle_bucket_refills_up_to_its_size_only() -> None:
    limit = RateLimit(1.0, burst=2)
    limit.reserve(0.0)
    limit.reserve(0.0)
    assert limit.reserve(1000.0) == 0.0
    assert limit.reserve(1000.0) == 0.0
    assert limit.reserve(1000.0) == pytest.approx(1.0)


def test_the_average_rate_holds_over_many_calls() -> None:
    limit = RateLimit(2.0, burst=10)
    now, starts = 0.0, []
    for _ in range(110):
        now += limit.reserve(now)  # the caller sleeps, then calls
        starts.append(now)
    # 10 at once, then 100 more at 2 per second: 50 s.
    assert starts[9] == 0.0
    assert starts[-1] == pytest.approx(50.0)
    for earlier, later in itertools.pairwise(starts[10:]):
        assert later - earlier == pytest.approx(0.5)


def test_a_clock_that_goes_back_refills_nothing() -> None:
    limit = RateLimit(1.0)
    assert limit.reserve(100.0) == 0.0
    assert limit.reserve(50.0) == pytest.approx(1.0)


def test_no_limit_never_waits() -> None:
    limit = RateLimit(None, burst=1)
    assert limit.unlimited
    assert all(limit.reserve(0.0) == 0.0 for _ in range(1000))


def test_threads_share_the_bucket_first_come_first_served() -> None:
    limit = RateLimit(4.0, burst=1)
    delays: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        delay = limit.reserve(5.0)
        with lock:
            delays.append(delay)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Eight calls at the same instant: one now, then one every 0.25 s, none twice.
    assert sorted(delays) == pytest.approx([i * 0.25 for i in range(8)])


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (1.0, True)])
def test_arguments_are_checked(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimit(rate, burst=burst)


class CountingTransport:
    """Answers every command at once and records it with the time it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, list[str]]] = []
        self.files: dict[str, bytes] = {}

    def run(self, argv: Sequence[str], **_: object) -> CommandResult:
        import time

        self.sent.append((time.monotonic(), list(argv)))
        if "sbatch" in argv:
            return CommandResult(0, b"42\n", b"")
        return CommandResult(0, b"", b"")

    def put_file(self, path: str, data: bytes, **_: object) -> None:
        self.files[path] = data

    def read_file(self, path: str, **_: object) -> bytes:
        return self.files.get(path, b"")

    def home(self) -> str:
        return "/home/alice"


def test_slurm_commands_wait_for_tokens_file_transfers_do_not(tmp_path: Path) -> None:
    from hpcbox.jobs.model.spec import parse_job_spec

    store = JobStore(open_engine(Settings(home=tmp_path)))
    job = store.create(parse_job_spec({"script": "echo hi"}), backend="slurm", target="hpc")
    fake = CountingTransport()
    remote = SlurmRemote(fake, limit=RateLimit(20.0, burst=1))  # type: ignore[arg-type]
    remote.submit(job)  # one sbatch: the bucket's one token
    remote.poll(["42"], {})  # squeue, then sacct (42 left the queue): 2 more
    times = [t for t, _ in fake.sent]
    assert len(times) == 3
    assert len(fake.files) == 2  # batch.sh and the script went without waiting
    # 20 per second, no burst: commands at least 50 ms apart (allow timer slack).
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.045


@pytest.fixture
def targets(tmp_path: Path) -> TargetStore:
    store = TargetStore(open_engine(Settings(home=tmp_path)))
    store.add(parse_target({"name": "plain", "host": "h", "user": "u"}))
    store.add(parse_target({"name": "slow", "host": "h", "user": "u", "rate_limit": 0.5}))
    store.add(parse_target({"name": "free", "host": "h", "user": "u", "rate_limit": 0}))
    return store


def test_each_target_has_one_bucket_with_its_own_rate(targets: TargetStore) -> None:
    remote = RemoteJobs(JobStore(targets.engine), targets, rate_limit=2.0, rate_burst=5)
    plain = remote.limit(targets.get("plain"))
    assert (plain.calls_per_second, plain.burst) == (2.0, 5)
    assert remote.limit(targets.get("plain")) is plain  # shared, not one per call
    assert remote.limit(targets.get("slow")).calls_per_second == 0.5
    assert remote.limit(targets.get("free")).unlimited
    # The target's rate changed: a new bucket with the new rate.
    faster = parse_target({"name": "plain", "host": "h", "user": "u", "rate_limit": 1})
    targets.add(faster, replace=True)
    assert remote.limit(targets.get("plain")).calls_per_second == 1.0


def test_clusters_hpcbox_brought_up_have_no_limit_unless_given_one(
    targets: TargetStore,
) -> None:
    remote = RemoteJobs(JobStore(targets.engine), targets, rate_limit=2.0)
    ours = parse_target({"name": "ours", "host": "h", "user": "u", "cluster": "ours"})
    assert remote.limit(ours).unlimited  # its slurm.conf has no rl_enable
    paced = ours.model_copy(update={"rate_limit": 3.0})
    assert remote.limit(paced).calls_per_second == 3.0


def test_a_negative_target_rate_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        parse_target({"name": "bad", "host": "h", "user": "u", "rate_limit": -1})


def test_settings_read_the_rate_from_the_environment(tmp_path: Path) -> None:
    default = Settings.from_env({"HPCBOX_HOME": str(tmp_path)})
    assert (default.slurm_rate_limit, default.slurm_rate_burst) == (2.0, 10)
    env = {"HPCBOX_HOME": str(tmp_path), "HPCBOX_SLURM_RATE_LIMIT": "0.5"}
    env["HPCBOX_SLURM_RATE_BURST"] = "3"
    custom = Settings.from_env(env)
    assert (custom.slurm_rate_limit, custom.slurm_rate_burst) == (0.5, 3)
    # Handed to a child process (the agent) unchanged; 0 means no limit.
    assert Settings.from_env(custom.to_env()).slurm_rate_limit == 0.5
    off = Settings.from_env({**env, "HPCBOX_SLURM_RATE_LIMIT": "0"})
    assert off.slurm_rate_limit is None
    assert Settings.from_env(off.to_env()).slurm_rate_limit is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HPCBOX_SLURM_RATE_LIMIT", "-1"),
        ("HPCBOX_SLURM_RATE_LIMIT", "fast"),
        ("HPCBOX_SLURM_RATE_LIMIT", "inf"),
        ("HPCBOX_SLURM_RATE_BURST", "0"),
    ],
)
def test_bad_rate_settings_are_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(InvalidInputError, match=name):
        Settings.from_env({"HPCBOX_HOME": str(tmp_path), name: value})
