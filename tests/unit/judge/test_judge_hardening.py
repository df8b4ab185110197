"""Pure parts of the judge's hardening: untrusted result reports, the cache
directory's trust check, the verdict of an unusable report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.judge.model import Limits, Verdict
from hpcbox.judge.rootfs import _open_lock, check_cache_dir, ensure_rootfs
from hpcbox.judge.sandbox.report import parse_report
from hpcbox.judge.sandbox.spec import RunResult
from hpcbox.judge.verdicts import run_verdict


def test_a_valid_report_gives_how_the_program_ended() -> None:
    r = parse_report(b'{"wall": 0.5, "maxrss_kb": 10, "exit_code": 3}\n')
    assert (r.exit_code, r.signal, r.exec_error) == (3, None, None)
    r = parse_report(b'{"signal": 9, "exec_error": "OSError: x"}\n')
    assert (r.exit_code, r.signal, r.exec_error) == (None, 9, "OSError: x")


@pytest.mark.parametrize(
    "line",
    [
        b"{not json\n",
        b"\xff\xfe\n",
        b"[" * 100_000 + b"\n",  # RecursionError inside json, not a ValueError
        b"[1]\n",
        b"{}\n",
        b'{"exit_code": 0, "signal": 9}\n',
        b'{"exit_code": true}\n',
        b'{"exit_code": 256}\n',
        b'{"exit_code": 1e9}\n',
        b'{"signal": 0}\n',
        b'{"signal": 9, "exec_error": 5}\n',
    ],
)
def test_a_malformed_report_is_a_value_error(line: bytes) -> None:
    with pytest.raises(ValueError, match="result report"):
        parse_report(line)


def test_an_unusable_report_is_a_runtime_error_not_an_internal_one() -> None:
    result = RunResult(None, None, 0.1, 0.2, 0, b"", b"", report_error="not JSON")
    verdict, message = run_verdict(result, Limits()) or (None, "")
    assert verdict is Verdict.RUNTIME_ERROR and "not JSON" in message


def test_cache_dir_must_be_ours_and_not_writable_by_others(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    check_cache_dir(cache)
    os.chmod(cache, 0o777)  # noqa: S103 - the unsafe mode under test
    with pytest.raises(PermanentError, match="writable by others"):
        check_cache_dir(cache)
    os.chmod(cache, 0o755)  # noqa: S103 - back to the safe mode
    link = tmp_path / "link"
    link.symlink_to(cache)
    with pytest.raises(PermanentError, match="not a directory"):
        check_cache_dir(link)
    if os.geteuid() == 0:  # another user's directory (needs root to chown)
        os.chown(cache, 65534, 65534)
        with pytest.raises(PermanentError, match="belongs to uid 65534"):
            check_cache_dir(cache)
        # ensure_rootfs refuses before trusting a rootfs found in it.
        with pytest.raises(PermanentError):
            ensure_rootfs(cache, [])


def test_lock_is_never_opened_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".lock").symlink_to(victim)
    with pytest.raises(OSError):
        _open_lock(cache)
    assert victim.read_bytes() == b"precious"
    (cache / ".lock").unlink()
    with _open_lock(cache) as lock:
        assert lock.fileno() >= 0
