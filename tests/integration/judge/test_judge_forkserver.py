"""The sandbox fork-server: what it adds to the boxes' isolation, and how faithfully
it runs ``python3 -B FILE`` in its own interpreter.

The security suite (test_judge_security.py) runs every attack against boxes of
both kinds; these tests cover what only the fork-server could get wrong: boxes
that share a parent must share nothing else.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcbox.judge.languages import load_registry
from hpcbox.judge.pipeline import run_env
from hpcbox.judge.sandbox import RunSpec, UntrustedSandbox
from hpcbox.judge.sandbox.spec import RunResult

_ENV = run_env(load_registry()["python3"])


@pytest.fixture(scope="module")
def forked(judge_rootfs: Path) -> Iterator[UntrustedSandbox]:
    factory = UntrustedSandbox(judge_rootfs, fork_server=True, fork_env=_ENV)
    factory.check()
    yield factory
    factory.close()


def _run(factory: UntrustedSandbox, argv: tuple[str, ...], files: dict[str, bytes]) -> RunResult:
    with factory.prepare() as box:
        for name, data in files.items():
            box.write_file(name, data)
        return box.run(RunSpec(argv=argv, env=_ENV))


def _python(factory: UntrustedSandbox, source: str, *args: str) -> RunResult:
    return _run(factory, ("python3", "-B", "main.py", *args), {"main.py": source.encode()})


def test_a_box_has_no_capability_left(sandbox: UntrustedSandbox) -> None:
    """Boxes of both kinds: no capability at all, the bounding set included."""
    with sandbox.prepare() as box:
        done = box.run(RunSpec(argv=("grep", "^Cap", "/proc/self/status"), env=_ENV))
    caps = dict(line.split(":\t") for line in done.stdout.decode().splitlines())
    assert caps == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), "0" * 16)


def test_boxes_of_one_fork_server_share_no_files(forked: UntrustedSandbox) -> None:
    leave = "touch /box/a /tmp/b /dev/shm/c; touch /dev/d 2>/dev/null; echo $?"
    first = _run(forked, ("sh", "-c", leave), {})
    assert first.exit_code == 0
    assert first.stdout == b"1\n"  # /dev is read-only: nothing can be left there
    look = "for f in /box/a /tmp/b /dev/shm/c /dev/d; do [ -e $f ] && echo $f; done; echo end"
    assert _run(forked, ("sh", "-c", look), {}).stdout == b"end\n"


def test_a_box_sees_only_its_own_processes(forked: UntrustedSandbox) -> None:
    done = _run(forked, ("sh", "-c", "ls /proc | grep -E '^[0-9]+$' | sort -n"), {})
    # The box's PID 1, the shell, and the ls/grep/sort of the pipeline.
    assert [int(p) for p in done.stdout.split()][:2] == [1, 2]
    assert all(int(p) < 10 for p in done.stdout.split())


def test_a_daemon_of_one_box_is_gone_in_the_next(forked: UntrustedSandbox) -> None:
    # The port is free again only if the first box's namespace, daemon and all, is gone.
    daemon = "import os, socket\nif os.fork() == 0:\n    s = socket.socket(); s.bind(('127.0.0.1', 7777)); s.listen(); os.setsid(); os.pause()\n"
    assert _python(forked, daemon).exit_code == 0
    probe = "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 7777))\nprint('free')\n"
    assert _python(forked, probe).stdout == b"free\n"


def test_python_runs_as_a_fresh_interpreter_would(forked: UntrustedSandbox) -> None:
    source = (
        "import os, sys\n"
        "print(__name__, __file__, sys.argv, sys.path[0])\n"
        "print(sorted(m for m in sys.modules if m in ('ctypes', 'json', 'socket', 'struct')))\n"
        "print(sorted(os.listdir('/proc/self/fd')))\n"
        "print(os.environ == {'PATH': '/usr/local/bin:/usr/bin:/bin', 'HOME': '/box',"
        " 'LANG': 'C.UTF-8', 'TMPDIR': '/tmp'}, sys.flags.dont_write_bytecode, os.getuid())\n"
    )
    done = _python(forked, source, "x y", "--z")
    assert done.exit_code == 0, done
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "__main__ /box/main.py ['main.py', 'x y', '--z'] /box"
    assert lines[1] == "[]"  # the fork-server's own modules are not the program's
    assert lines[2] == "['0', '1', '2', '3']"  # the listing's own descriptor is 3
    assert lines[3] == "True 1 1000"


def test_python_exit_statuses_and_errors_are_the_interpreters(forked: UntrustedSandbox) -> None:
    assert _python(forked, "import sys\nsys.exit(3)\n").exit_code == 3
    said = _python(forked, "raise SystemExit('bye')\n")
    assert (said.exit_code, said.stderr) == (1, b"bye\n")
    crash = _python(forked, "def f():\n    raise ValueError('boom')\nf()\n")
    assert crash.exit_code == 1
    assert crash.stderr.decode().splitlines() == [
        "Traceback (most recent call last):",
        '  File "/box/main.py", line 3, in <module>',
        "    f()",
        '  File "/box/main.py", line 2, in f',
        "    raise ValueError('boom')",
        "ValueError: boom",
    ]
    syntax = _python(forked, "x = (\n")
    assert syntax.exit_code == 1
    assert syntax.stderr.decode().startswith('  File "/box/main.py", line 1\n')
    assert "SyntaxError" in syntax.stderr.decode()


def test_python_output_atexit_and_threads_end_as_at_exit(forked: UntrustedSandbox) -> None:
    source = (
        "import atexit, sys, threading, time\n"
        "atexit.register(lambda: print('atexit'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread'))).start()\n"
        "sys.stdout.write('x' * 300000 + '\\n')\n"
    )
    done = _python(forked, source)
    assert done.exit_code == 0
    assert done.stdout == b"x" * 300000 + b"\nthread\natexit\n"


def test_python_killed_by_a_signal_reports_it(forked: UntrustedSandbox) -> None:
    done = _python(forked, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    assert done.signal == signal.SIGSEGV


def test_another_environment_is_execd_not_forked(forked: UntrustedSandbox) -> None:
    with forked.prepare() as box:
        box.write_file("main.py", b"import sys\nprint(len(sys.modules) > 0, sys.argv)\n")
        env = {**_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
        done = box.run(RunSpec(argv=("python3", "-B", "main.py"), env=env))
    assert done.stdout == b"True ['main.py']\n"


def test_a_dead_fork_server_is_started_again(forked: UntrustedSandbox) -> None:
    assert _python(forked, "print(1)\n").stdout == b"1\n"
    zygote = forked._fork_servers.running(compiled=False)
    assert zygote is not None
    os.kill(zygote.pid, signal.SIGKILL)
    zygote._proc.wait(timeout=10)
    assert _python(forked, "print(2)\n").stdout == b"2\n"
    assert forked._fork_servers.running(compiled=False) is not zygote


def test_a_dead_compiled_fork_server_is_started_again(forked: UntrustedSandbox) -> None:
    def echo(word: str) -> bytes:
        with forked.prepare(forked=False) as box:  # a program that is exec'd
            return box.run(RunSpec(argv=("echo", word), env=_ENV)).stdout

    assert echo("one") == b"one\n"
    zygote = forked._fork_servers.running(compiled=True)
    assert zygote is not None
    os.kill(zygote.pid, signal.SIGKILL)
    zygote._proc.wait(timeout=10)
    assert echo("two") == b"two\n"
    assert forked._fork_servers.running(compiled=True) is not zygote


def test_a_destroyed_box_leaves_no_process_and_no_group(
    sandbox: UntrustedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Boxes of every kind, each leaving daemons and a crowd of children: once the
    box is destroyed and reaped, none of them lives on and its cgroup is gone. A
    forked box's group empties with its PID 1 (its pid namespace dies with it), so
    the reaper removes it without the group-wide kill loop; a bwrap box's group is
    killed process by process, as before."""
    driver = sandbox.driver
    kills: list[str] = []
    real_kill = driver.kill

    def counting_kill(group: str) -> None:
        kills.append(group)
        real_kill(group)

    monkeypatch.setattr(driver, "kill", counting_kill)
    marker = f"hpcbox-reap-{os.getpid()}-{id(sandbox)}"
    script = (
        f"(setsid sh -c 'exec -a {marker} sleep 300' &) ; "
        f"for i in 1 2 3 4 5 6 7 8; do (exec -a {marker} sleep 300 &) ; done; echo up"
    )
    box = sandbox.prepare()
    group = box.group
    forked = box._proc is None
    done = box.run(RunSpec(argv=("bash", "-c", script), env=_ENV))
    assert done.stdout == b"up\n", done
    box.destroy()
    deadline = time.monotonic() + 10
    while driver.exists(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not driver.exists(group)
    assert not _host_processes_named(marker)
    assert (kills == []) is forked, kills


def _host_processes_named(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
