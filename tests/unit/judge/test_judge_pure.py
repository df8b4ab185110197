"""Pure parts of the judge: comparison, verdicts, the registry, rootfs metadata."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.judge.compare import outputs_match, same_exact, same_floats, same_tokens
from hpcbox.judge.languages import expand_argv, load_registry, name_with_versions
from hpcbox.judge.model import CompareMode, Limits, Verdict
from hpcbox.judge.rootfs import parse_dpkg_status, rootfs_key, upstream_version
from hpcbox.judge.sandbox.spec import RunResult
from hpcbox.judge.verdicts import run_verdict


def test_exact_strips_trailing_whitespace_like_judge0() -> None:
    assert same_exact(b"1 2\n3", b"1 2  \n3\n\n\n")
    assert same_exact(b"", b"\n \n")
    assert not same_exact(b"1 2", b"1  2")
    assert not same_exact(b"a\n\nb", b"a\nb")
    assert not same_exact(b" a", b"a")


def test_tokens_ignore_all_whitespace() -> None:
    assert same_tokens(b"1 2\n3", b"1\n2 3")
    assert not same_tokens(b"1 2", b"1 2 3")


def test_floats_within_tolerance() -> None:
    assert same_floats(b"3.14159 x", b"3.141591 x", 1e-5)
    assert not same_floats(b"3.14", b"3.15", 1e-3)
    assert same_floats(b"1000000", b"1000001", 1e-6)  # relative
    assert same_floats(b"nan", b"NaN", 1e-6)
    assert not same_floats(b"nan", b"1", 1e-6)
    assert not same_floats(b"abc", b"abd", 1)
    assert not same_floats(b"1 2", b"1", 1)


def test_outputs_match_dispatch() -> None:
    assert outputs_match(CompareMode.TOKENS, b"a b", b"a\nb", 0)
    with pytest.raises(ValueError, match="checker"):
        outputs_match(CompareMode.CHECKER, b"", b"", 0)


def _result(**kw: object) -> RunResult:
    base: dict[str, object] = {
        "exit_code": 0,
        "signal": None,
        "cpu_time_s": 0.1,
        "wall_time_s": 0.1,
        "peak_memory_bytes": 1 << 20,
        "stdout": b"",
        "stderr": b"",
    }
    base.update(kw)
    return RunResult(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "verdict"),
    [
        ({}, None),
        ({"output_exceeded": True, "signal": 9}, Verdict.OUTPUT_LIMIT_EXCEEDED),
        ({"cpu_exceeded": True, "signal": 9}, Verdict.TIME_LIMIT_EXCEEDED),
        ({"cpu_time_s": 5.5}, Verdict.TIME_LIMIT_EXCEEDED),
        ({"signal": signal.SIGXCPU}, Verdict.TIME_LIMIT_EXCEEDED),
        ({"wall_exceeded": True, "signal": 9}, Verdict.TIME_LIMIT_EXCEEDED),
        ({"oom_killed": True, "signal": 9}, Verdict.MEMORY_LIMIT_EXCEEDED),
        ({"peak_memory_bytes": 200 << 20}, Verdict.MEMORY_LIMIT_EXCEEDED),
        ({"exec_error": "FileNotFoundError"}, Verdict.RUNTIME_ERROR),
        ({"exit_code": None, "signal": signal.SIGSEGV}, Verdict.RUNTIME_ERROR),
        ({"exit_code": 3}, Verdict.RUNTIME_ERROR),
    ],
)
def test_run_verdict(kw: dict[str, object], verdict: Verdict | None) -> None:
    got = run_verdict(_result(**kw), Limits())
    assert (got[0] if got else None) == verdict


def test_runtime_error_names_the_signal() -> None:
    got = run_verdict(_result(exit_code=None, signal=signal.SIGSEGV), Limits())
    assert got is not None and "SIGSEGV" in got[1]


def test_registry_has_the_judge0_languages() -> None:
    reg = load_registry()
    ids = {k: lang.judge0_id for k, lang in reg.items()}
    assert ids == {"c": 50, "cpp": 54, "python3": 71, "java": 62, "javascript": 63, "bash": 46}
    assert reg["java"].source_file == "Main.java"
    assert reg["python3"].compile_cmd is None
    named = name_with_versions(reg["python3"], {"python3": "3.11.2"})
    assert named.name == "Python (3.11.2)"


def test_registry_is_extensible_and_validated(tmp_path: Path) -> None:
    good = tmp_path / "langs.yaml"
    good.write_text(
        "languages:\n  lua:\n    name: Lua ({version})\n    judge0_id: 64\n"
        "    package: lua5.4\n    source_file: main.lua\n    run: [lua5.4, main.lua]\n"
    )
    assert load_registry(good)["lua"].run_cmd == ("lua5.4", "main.lua")
    bad = tmp_path / "bad.yaml"
    bad.write_text("languages:\n  x:\n    name: X\n    source_file: ../evil\n    run: [x]\n")
    with pytest.raises(InvalidInputError):
        load_registry(bad)
    assert load_registry(good)["lua"].fork_server is False
    bad.write_text(
        "languages:\n  x:\n    name: X\n    source_file: x\n    run: [x]\n    fork_server: 1\n"
    )
    with pytest.raises(InvalidInputError, match="fork_server"):
        load_registry(bad)


def test_python_alone_is_forked_from_the_fork_server() -> None:
    forked = {key for key, lang in load_registry().items() if lang.fork_server}
    assert forked == {"python3"}
    # The fork-server runs exactly this command line in-process (see _zygote.py).
    assert load_registry()["python3"].run_cmd == ("python3", "-B", "main.py")


def test_expand_argv_splits_options_without_a_shell() -> None:
    argv = ("gcc", "{options}", "-o", "main", "x{memory_mb}")
    out = expand_argv(argv, options="-DX='a b' ; rm -rf / $(id)", memory_bytes=256 << 20)
    assert out == ["gcc", "-DX=a b", ";", "rm", "-rf", "/", "$(id)", "-o", "main", "x256"]
    with pytest.raises(InvalidInputError):
        expand_argv(argv, options="'unclosed")


def test_dpkg_status_and_upstream_versions() -> None:
    text = (
        "Package: gcc\nStatus: install ok installed\nVersion: 4:12.2.0-3\n\n"
        "Package: nodejs\nStatus: install ok installed\nVersion: 18.19.0+dfsg-6~deb12u2\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n"
    )
    versions = parse_dpkg_status(text)
    assert set(versions) == {"gcc", "nodejs"}
    assert upstream_version(versions["gcc"]) == "12.2.0"
    assert upstream_version(versions["nodejs"]) == "18.19.0"
    assert upstream_version("17.0.13+11-2~deb12u1") == "17.0.13"


def test_rootfs_key_is_content_addressed() -> None:
    assert rootfs_key(["gcc", "nodejs"]) == rootfs_key(["nodejs", "gcc", "gcc"])
    assert rootfs_key(["gcc"]) != rootfs_key(["gcc", "nodejs"])
