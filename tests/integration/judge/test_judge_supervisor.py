"""Both supervisors on the real runtime rootfs: the compiled one (the default, built
by the rootfs's gcc) and the Python one (the fallback) give the same results."""

from __future__ import annotations

import pytest

from hpcbox.judge.sandbox import RunSpec, UntrustedSandbox
from hpcbox.judge.sandbox.spec import RunLimits

_ENV = {"PATH": "/usr/bin:/bin"}
_PROBE = (
    "cat; echo to-err >&2; ulimit -t -f -n -c -s; ls /proc/self/fd | wc -l;"
    " tr '\\0' '\\n' < /proc/1/environ; exit 3"
)


def _run(sandbox: UntrustedSandbox, compiled: bool, spec: RunSpec) -> tuple[object, ...]:
    fd = sandbox._compiled_supervisor() if compiled else None
    with sandbox._prepare(fd) as box:
        assert box.compiled is compiled
        box.write_file("in.txt", b"from stdin\n")
        r = box.run(spec)
    return (r.exit_code, r.signal, r.stdout, r.stderr, r.exec_error, r.output_exceeded)


def test_boxes_use_the_compiled_supervisor(sandbox: UntrustedSandbox) -> None:
    with sandbox.prepare() as box:
        assert box.compiled
        assert box.run(RunSpec(argv=("true",), env=_ENV)).exit_code == 0


@pytest.mark.parametrize(
    "spec",
    [
        RunSpec(argv=("sh", "-c", _PROBE), env=_ENV, stdin_file="in.txt"),
        RunSpec(argv=("sh", "-c", "echo out; echo err >&2"), env=_ENV, merge_stderr=True),
        RunSpec(argv=("sh", "-c", "kill -SEGV $$"), env=_ENV),
        RunSpec(argv=("sh", "-c", "yes"), env=_ENV, limits=RunLimits(output_bytes=1000)),
    ],
    ids=["stdin-rlimits-fds-env", "merged", "signal", "output-cap"],
)
def test_same_results_from_both_supervisors(sandbox: UntrustedSandbox, spec: RunSpec) -> None:
    assert _run(sandbox, True, spec) == _run(sandbox, False, spec)


def test_exec_errors_from_both_supervisors(sandbox: UntrustedSandbox) -> None:
    spec = RunSpec(argv=("no-such-program",), env=_ENV)
    for compiled in (True, False):
        exit_code, _, _, _, error, _ = _run(sandbox, compiled, spec)
        assert exit_code == 127
        assert isinstance(error, str) and error.startswith("FileNotFoundError: [Errno 2]")
        # A NUL cannot reach execve: refused, never truncated.
        exit_code, _, _, _, error, _ = _run(sandbox, compiled, RunSpec(argv=("a\0b",)))
        assert exit_code == 127
        assert isinstance(error, str) and error.startswith("ValueError: ")
