"""Deriving outcomes from bwrap's status, and the small parsers behind it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from hpcbox.infra.isolation.procfs import is_running, parse_proc_stat, read_proc_stat
from hpcbox.jobs.backends.local.sandbox import records
from hpcbox.jobs.backends.local.sandbox.outcome import Evidence, decide_outcome, split_exit_code
from hpcbox.jobs.backends.local.sandbox.status import BwrapStatus, parse_status


def test_parse_status_full_and_truncated() -> None:
    text = (
        '{ "child-pid": 42, "ipc-namespace": 1, "pid-namespace": 2 }\n'
        '{ "exit-code": 3 }\n'
        '{ "bwrap-exit-code": 3 }\n'
    )
    assert parse_status(text) == BwrapStatus(child_pid=42, exit_code=3, bwrap_exit_code=3)
    assert parse_status('{ "child-pid": 42 }\n{ "exit-co') == BwrapStatus(child_pid=42)
    assert parse_status("") == BwrapStatus()
    assert parse_status('[1]\n{"exit-code": true}\n') == BwrapStatus()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0, (0, None)),
        (1, (1, None)),
        (128, (128, None)),
        (137, (None, 9)),
        (143, (None, 15)),
        (192, (None, 64)),
        (193, (193, None)),
        (255, (255, None)),
    ],
)
def test_split_exit_code(code: int, expected: tuple[int | None, int | None]) -> None:
    assert split_exit_code(code) == expected


def _ev(status: BwrapStatus | None, *, killed: bool = False) -> Evidence:
    return Evidence(status=status, killed=killed, started_at=10.0, ended_at=12.5, cpu_time_s=1.0)


def test_reported_exit_code_wins() -> None:
    out = decide_outcome(_ev(BwrapStatus(1, 0, 0), killed=True))
    assert (out.exit_code, out.signal, out.lost) == (0, None, False)
    assert out.wall_time_s == 2.5
    assert out.cpu_time_s == 1.0


def test_signal_from_exit_code() -> None:
    out = decide_outcome(_ev(BwrapStatus(1, 139, 139)))
    assert (out.exit_code, out.signal, out.lost) == (None, 11, False)


def test_killed_without_report_is_sigkill() -> None:
    out = decide_outcome(_ev(BwrapStatus(child_pid=1), killed=True))
    assert (out.exit_code, out.signal, out.lost) == (None, 9, False)


def test_setup_failure_reports_bwraps_exit_code() -> None:
    out = decide_outcome(_ev(BwrapStatus(child_pid=1, bwrap_exit_code=1)))
    assert (out.exit_code, out.signal, out.lost) == (1, None, False)


@pytest.mark.parametrize(
    "status", [None, BwrapStatus(), BwrapStatus(child_pid=1), BwrapStatus(1, None, 137)]
)
def test_vanished_runs_are_lost(status: BwrapStatus | None) -> None:
    out = decide_outcome(_ev(status))
    assert (out.exit_code, out.signal, out.lost) == (None, None, True)


def test_wall_time_never_negative() -> None:
    ev = Evidence(status=BwrapStatus(1, 0, 0), killed=False, started_at=5.0, ended_at=4.99)
    assert decide_outcome(ev).wall_time_s == 0.0


def test_parse_proc_stat_with_hostile_comm() -> None:
    fields = " ".join(str(i) for i in range(4, 53))
    text = f"123 (a) b (c) ) S {fields}\n"
    stat = parse_proc_stat(text)
    assert stat.state == "S"
    assert stat.start_ticks == 22


def test_own_process_is_running() -> None:
    stat = read_proc_stat(os.getpid())
    assert stat is not None
    assert is_running(os.getpid(), stat.start_ticks)
    assert not is_running(os.getpid(), stat.start_ticks + 1)
    assert read_proc_stat(2**22 + 1) is None


def test_records_atomic_write_and_read(tmp_path: Path) -> None:
    path = str(tmp_path / "status.outcome.json")
    assert records.read_json(path) is None
    records.write_json_atomic(path, {"a": 1})
    assert records.read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["status.outcome.json"]
    (tmp_path / "bad.json").write_text("{")
    assert records.read_json(str(tmp_path / "bad.json")) is None


def test_records_lock_serialises(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("")
    order: list[str] = []

    def other() -> None:
        with records.locked(str(status)):
            order.append("other")

    with records.locked(str(status)) as have:
        assert have
        t = threading.Thread(target=other)
        t.start()
        time.sleep(0.05)
        order.append("first")
    t.join()
    assert order == ["first", "other"]
    with records.locked(str(tmp_path / "absent")) as have:
        assert not have
