"""The bwrap and trampoline command lines: structure, and values kept verbatim."""

from __future__ import annotations

import pytest

from hpcbox.jobs.backends.local.sandbox.bwrap import build_bwrap_argv, env_fixup
from hpcbox.jobs.backends.local.sandbox.trampoline import (
    TRAMPOLINE_NAME,
    TRAMPOLINE_SCRIPT,
    trampoline_argv,
)

HOSTILE = [
    "a b",
    "'single'",
    '"double"',
    "; rm -rf / ;",
    "$(touch /tmp/pwned)",
    "`id`",
    "line1\nline2",
    "tab\there",
    "ünïcödé ☃ 🚀",
    "",
    "--",
    "-",
    "--bind",
    "*",
    "\\",
    "$HOME",
    "x" * 100_000,
]


_ARITY = {
    "--unshare-pid": 0,
    "--unshare-ipc": 0,
    "--new-session": 0,
    "--die-with-parent": 0,
    "--clearenv": 0,
    "--proc": 1,
    "--tmpfs": 1,
    "--chdir": 1,
    "--json-status-fd": 1,
    "--bind": 2,
    "--dev-bind": 2,
    "--setenv": 2,
}


def _parse(argv: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Walk bwrap's options the way bwrap does: (option, operands) pairs, then the command."""
    options: list[tuple[str, list[str]]] = []
    i = 1
    while argv[i] != "--":
        n = _ARITY[argv[i]]
        options.append((argv[i], argv[i + 1 : i + 1 + n]))
        i += 1 + n
    return options, argv[i + 1 :]


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Flat options (with operands) and the command."""
    options, command = _parse(argv)
    flat = [argv[0]]
    for opt, operands in options:
        flat += [opt, *operands]
    return flat, command


def test_command_and_env_values_stay_single_verbatim_elements() -> None:
    env = {f"V{i}": value for i, value in enumerate(HOSTILE)} | {"PWD": "/work"}
    argv = build_bwrap_argv(
        "/usr/bin/bwrap", argv=["/bin/echo", *HOSTILE], env=env, workdir="/work", status_fd=7
    )
    options, command = _parse(argv)
    assert command == ["/bin/echo", *HOSTILE]
    assert {operands[0]: operands[1] for opt, operands in options if opt == "--setenv"} == env


def test_isolation_options() -> None:
    argv = build_bwrap_argv("/b/bwrap", argv=["true"], env={}, workdir="/srv/w", status_fd=5)
    options, _ = _split(argv)
    assert options[0] == "/b/bwrap"
    for flag in ("--unshare-pid", "--unshare-ipc", "--new-session", "--clearenv"):
        assert flag in options
    # Bound to the trampoline (bwrap's parent), which outlives the launcher.
    assert "--die-with-parent" in options
    assert options[options.index("--bind") : options.index("--bind") + 3] == ["--bind", "/", "/"]
    text = " ".join(options)
    assert "--dev-bind /dev /dev" in text
    assert "--proc /proc" in text
    assert "--tmpfs /tmp" in text
    assert "--chdir /srv/w" in text
    assert "--json-status-fd 5" in text
    # The workdir is not under /tmp: no extra bind.
    assert options.count("--bind") == 1


def test_clearenv_precedes_setenv() -> None:
    argv = build_bwrap_argv("bwrap", argv=["x"], env={"A": "1"}, workdir="/w", status_fd=3)
    assert argv.index("--clearenv") < argv.index("--setenv")


@pytest.mark.parametrize("workdir", ["/tmp/job", "/tmp/a/../job", "/tmp"])
def test_workdir_under_tmp_is_bound_over_private_tmp(workdir: str) -> None:
    argv = build_bwrap_argv("bwrap", argv=["x"], env={}, workdir=workdir, status_fd=3)
    options, _ = _split(argv)
    tmpfs = options.index("--tmpfs")
    binds = [i for i, a in enumerate(options) if a == "--bind"]
    assert len(binds) == 2
    assert binds[1] > tmpfs
    norm = "/tmp/job" if workdir != "/tmp" else "/tmp"
    assert options[binds[1] + 1 : binds[1] + 3] == [norm, norm]


def test_tmpfoo_is_not_under_tmp() -> None:
    argv = build_bwrap_argv("bwrap", argv=["x"], env={}, workdir="/tmpfoo", status_fd=3)
    assert _split(argv)[0].count("--bind") == 1


def test_env_fixup_unsets_pwd_unless_requested() -> None:
    assert env_fixup(["cmd"], {}, "/w", "/usr/bin/env") == ["/usr/bin/env", "-u", "PWD", "--"]
    assert env_fixup(["cmd"], {"PWD": "/w"}, "/w", "/usr/bin/env") == []
    assert env_fixup(["cmd"], {"PWD": "/x\ny"}, "/w", "/e") == ["/e", "--", "PWD=/x\ny"]


@pytest.mark.parametrize("argv0", ["-", "a=b", "/opt/x=y/prog"])
def test_env_fixup_skipped_when_env_would_misparse_the_command(argv0: str) -> None:
    assert env_fixup([argv0], {}, "/w", "/usr/bin/env") == []


def test_command_follows_env_fixup() -> None:
    argv = build_bwrap_argv("bwrap", argv=["-x", "y"], env={}, workdir="/w", status_fd=3)
    _, command = _split(argv)
    assert command == ["/usr/bin/env", "-u", "PWD", "--", "-x", "y"]


def test_trampoline_argv_passes_paths_as_arguments() -> None:
    procs = ["/sys/fs/cgroup/memory/hpcbox/r $(x)/cgroup.procs", "/p;2"]
    command = ["/usr/bin/bwrap", *HOSTILE]
    argv = trampoline_argv("/bin/sh", status_fd=9, procs_files=procs, command=command)
    assert argv[:5] == ["/bin/sh", "-c", TRAMPOLINE_SCRIPT, TRAMPOLINE_NAME, "9"]
    assert argv[5:7] == procs
    assert argv[7] == "--"
    assert argv[8:] == command


def test_trampoline_script_is_fixed_and_never_execs_bwrap() -> None:
    # exec would make the launcher bwrap's parent, and --die-with-parent
    # would then kill the job with the launcher.
    assert 'exec "$@"' not in TRAMPOLINE_SCRIPT
    assert '"$@"' in TRAMPOLINE_SCRIPT
    assert "exit 125" in TRAMPOLINE_SCRIPT
