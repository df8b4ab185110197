"""Attacks from inside the sandbox: each is contained, gets the right verdict, and
leaves the host unharmed (checked from the host after the run)."""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pydantic
import pytest

from hpcbox.judge.model import Limits, Submission, TestCase, Verdict
from hpcbox.judge.sandbox import RunSpec, UntrustedSandbox
from hpcbox.judge.sandbox.box import WarmBox
from hpcbox.judge.sandbox.spec import RunResult
from hpcbox.judge.service import JudgeService
from hpcbox.judge.verdicts import run_verdict

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SHORT = Limits(cpu_time_s=1.0, cpu_extra_time_s=0.5, wall_time_s=3.0)


def _py(judge: JudgeService, source: str, **kw: object) -> tuple[Verdict, str, str]:
    result = judge(Submission(language="python3", source=source.encode(), **kw))  # type: ignore[arg-type]
    t = result.tests[0]
    return t.verdict, t.stdout.decode(errors="replace"), t.stderr.decode(errors="replace")


def _host_procs_with(token: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def test_fork_bomb_is_capped_and_cleaned_up(judge: JudgeService) -> None:
    token = uuid.uuid4().hex
    src = f"import os\n# {token}\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    verdict, _, _ = _py(judge, src, limits=SHORT)
    assert verdict is Verdict.TIME_LIMIT_EXCEEDED
    time.sleep(0.2)
    assert _host_procs_with(token) == []


def test_memory_bomb_is_memory_limit_exceeded(judge: JudgeService) -> None:
    verdict, _, _ = _py(judge, "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n")
    assert verdict is Verdict.MEMORY_LIMIT_EXCEEDED


def test_memory_limit_stops_the_program_at_its_limit(judge: JudgeService) -> None:
    """A program touching 8 MiB more than its 32 MiB limit is killed before it can
    finish (the box's own usage is not the program's to spend)."""
    src = (
        b"#include <stdio.h>\n#include <stdlib.h>\n"
        b"int main(void){ size_t n = 40u << 20; volatile char *p = malloc(n);\n"
        b"  if (!p) return 3;\n"
        b"  for (size_t i = 0; i < n; i += 4096) p[i] = 1; /* volatile: really touched */\n"
        b'  puts("finished"); return 0; }\n'
    )
    limits = Limits(memory_bytes=32 * 1024 * 1024)
    result = judge(Submission(language="c", source=src, limits=limits))
    test = result.tests[0]
    assert test.verdict is Verdict.MEMORY_LIMIT_EXCEEDED, test
    assert b"finished" not in test.stdout
    # What it was measured to use stays close to the limit: killed there.
    assert test.peak_memory_bytes <= limits.memory_bytes + 4 * 1024 * 1024
    fits = src.replace(b"40u << 20", b"20u << 20")
    ok = judge(Submission(language="c", source=fits, limits=limits)).tests[0]
    assert ok.verdict is Verdict.ACCEPTED and ok.stdout == b"finished\n", ok


def test_disk_fill_hits_the_file_size_cap(judge: JudgeService) -> None:
    verdict, _, _ = _py(judge, "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 65536)\n")
    assert verdict is Verdict.RUNTIME_ERROR  # SIGXFSZ at the 1 MiB file size limit
    big = Limits(file_size_bytes=1 << 30)
    verdict, _, err = _py(
        judge, "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 65536)\n", limits=big
    )
    assert verdict is Verdict.RUNTIME_ERROR and "No space left" in err  # tmpfs cap


def test_output_flood_is_cut(judge: JudgeService) -> None:
    result = judge(
        Submission(language="bash", source=b"yes flood", limits=Limits(output_bytes=100_000))
    )
    assert result.verdict is Verdict.OUTPUT_LIMIT_EXCEEDED
    assert len(result.tests[0].stdout) == 100_000


def test_busy_loop_and_sleep_hit_time_limits(judge: JudgeService) -> None:
    busy = judge(Submission(language="c", source=b"int main(void){for(;;);}", limits=SHORT))
    assert busy.verdict is Verdict.TIME_LIMIT_EXCEEDED
    # Killed past 1.5 s of CPU; on a crowded machine the 3 s wall limit may come first.
    t = busy.tests[0]
    assert t.cpu_time_s < 3.0 and (t.cpu_time_s >= 1.0 or t.wall_time_s >= 2.9)
    started = time.monotonic()
    sleep = judge(Submission(language="bash", source=b"sleep 60", limits=SHORT))
    assert sleep.verdict is Verdict.TIME_LIMIT_EXCEEDED
    assert time.monotonic() - started < 10


def test_no_network_to_host_loopback_or_outside(judge: JudgeService) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        src = (
            "import socket\n"
            f"for addr in [('127.0.0.1', {port}), ('1.1.1.1', 80), ('10.0.2.2', 22)]:\n"
            "    s = socket.socket(); s.settimeout(1)\n"
            "    try:\n        s.connect(addr); print('CONNECTED', addr)\n"
            "    except OSError as e:\n        print('blocked', e.errno)\n"
        )
        verdict, out, _ = _py(judge, src)
        assert verdict is Verdict.ACCEPTED
        assert "CONNECTED" not in out and out.count("blocked") == 3
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_host_files_are_out_of_reach(judge: JudgeService, tmp_path: Path) -> None:
    db = judge._settings.sqlite_path  # hpcbox's own database
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"SQLite format 3\0 secret")
    src = (
        "import os\n"
        f"for p in ['/etc/shadow', '/proc/1/environ', {str(db)!r}, '/root/.ssh/id_rsa']:\n"
        "    try:\n        print('READ', p, len(open(p, 'rb').read()))\n"
        "    except OSError as e:\n        print('denied', p, e.errno)\n"
        "print(os.listdir('/'))\n"
    )
    verdict, out, _ = _py(judge, src)
    assert verdict is Verdict.ACCEPTED
    # /proc/1 is the sandbox's own supervisor, whose environment is empty.
    assert "READ /etc/shadow" not in out and f"READ {db}" not in out
    assert "READ /root/.ssh" not in out
    # /proc/1 is the sandbox's own supervisor: not dumpable, so even its environment
    # (PATH and PWD only) is out of reach.
    assert "denied /proc/1/environ 13" in out


def test_writes_outside_the_work_dir_fail(judge: JudgeService) -> None:
    marker = f"/tmp/hpcbox-escape-{uuid.uuid4().hex}"
    src = (
        f"for p in ['/etc/evil', '/usr/bin/evil', '/evil', {marker!r}]:\n"
        "    try:\n        open(p, 'w').write('x'); print('WROTE', p)\n"
        "    except OSError as e:\n        print('denied', p)\n"
    )
    verdict, out, _ = _py(judge, src)
    assert verdict is Verdict.ACCEPTED
    # /tmp inside is the sandbox's private tmpfs: the host's /tmp is untouched.
    assert "WROTE /etc" not in out and "WROTE /usr" not in out and "WROTE /evil" not in out
    assert not os.path.exists(marker) and not os.path.exists("/etc/evil")


def test_planted_symlinks_do_not_trick_the_host(sandbox: UntrustedSandbox, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"host data")
    with sandbox.prepare() as box:
        src = f"import os\nos.symlink({str(victim)!r}, 'out')\nos.symlink('/etc/passwd', 'main')\n"
        result = box.run(RunSpec(argv=("python3", "-c", src)))
        assert result.exit_code == 0
        with pytest.raises(OSError):
            box.read_file("out", max_bytes=100)
        with pytest.raises(OSError):
            box.write_file("out", b"overwritten")
        # Artifact collection sees regular files only.
        assert [name for name, _ in box.list_files()] == []
    assert victim.read_bytes() == b"host data"


def test_ptrace_namespaces_devices_and_setuid_are_refused(judge: JudgeService) -> None:
    src = (
        "import ctypes, os, subprocess\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('ptrace', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n"  # PTRACE_ATTACH pid 1
        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())\n"  # CLONE_NEWUSER
        "print('unshare-net', libc.unshare(0x40000000), ctypes.get_errno())\n"
        "print('mount', libc.mount(b'none', b'/box', b'tmpfs', 0, None), ctypes.get_errno())\n"
        "r = subprocess.run(['unshare', '-r', 'true'], capture_output=True); print('unshare-cmd', r.returncode)\n"
        "for d in ['/dev/sda', '/dev/mem', '/dev/kmsg', '/dev/vda']:\n"
        "    print('dev', d, os.path.exists(d))\n"
        "try:\n    os.mknod('/box/sda', 0o600 | 0o060000, os.makedev(8, 0)); print('MKNOD ok')\n"
        "except OSError as e:\n    print('mknod', e.errno)\n"
        "print('nnp', [l for l in open('/proc/self/status') if l.startswith('NoNewPrivs')][0].split()[1])\n"
        "r = subprocess.run(['su', '-c', 'id -u', 'root'], capture_output=True, stdin=subprocess.DEVNULL)\n"
        "print('su', r.returncode, r.stdout)\n"
        "print('uid', os.getuid(), os.geteuid())\n"
    )
    verdict, out, err = _py(judge, src)
    assert verdict is Verdict.ACCEPTED, err
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert lines["ptrace"] == "-1 1"  # EPERM
    assert lines["unshare"] == "-1 1" and lines["unshare-net"] == "-1 1"
    assert lines["mount"] == "-1 1"
    assert lines["unshare-cmd"] != "0"
    assert "True" not in "".join(v for k, v in lines.items() if k == "dev")
    assert "MKNOD ok" not in out
    assert lines["nnp"] == "1"
    assert not lines["su"].startswith("0 ")
    assert lines["uid"] == "1000 1000"


def test_kill_all_reaches_nothing_outside(judge: JudgeService) -> None:
    # A host process of the very uid the sandbox runs as: kill(-1) must not reach it.
    victim = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "30"]
    )
    try:
        src = (
            "import os, signal, subprocess\n"
            "subprocess.Popen(['sleep', '30'])\n"
            "os.kill(-1, signal.SIGKILL)\n"  # reaches only the sandbox's own sleep
            "print('alive')\n"
        )
        verdict, out, _ = _py(judge, src)
        assert verdict is Verdict.ACCEPTED and out == "alive\n"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_daemon_does_not_outlive_the_run(judge: JudgeService) -> None:
    token = uuid.uuid4().hex
    src = (
        "import os, time\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execvp('sleep', ['sleep', '300', '{token}'])\n"
        "    os._exit(0)\n"
        "print('parent done')\n"
    )
    verdict, out, _ = _py(judge, src)
    assert verdict is Verdict.ACCEPTED and out == "parent done\n"
    deadline = time.monotonic() + 2
    while _host_procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_procs_with(token) == []


def test_huge_argument_list_and_huge_source(judge: JudgeService) -> None:
    args = " ".join(["x" * 1000] * 20000)  # 20 MB of arguments: over ARG_MAX (stack / 4)
    result = judge(Submission(language="bash", source=b"echo $#", command_line_arguments=args))
    assert result.verdict is Verdict.RUNTIME_ERROR
    assert "Argument list too long" in result.tests[0].message
    huge = b"#" * (9 * 1024 * 1024) + b"\nprint(1)\n"
    # Refused before it reaches a sandbox (the APIs answer 422 naming the field).
    with pytest.raises(pydantic.ValidationError, match="at most 8388608 bytes"):
        Submission(language="python3", source=huge)
    big_ok = b"x = 1\n" + b"#" * (4 * 1024 * 1024) + b"\nprint(x)\n"
    result = judge(
        Submission(language="python3", source=big_ok, tests=(TestCase(expected_output=b"1"),))
    )
    assert result.verdict is Verdict.ACCEPTED


def test_nothing_is_left_after_the_runs(judge: JudgeService) -> None:
    judge(Submission(language="bash", source=b"sleep 100 & sleep 100 & echo hi"))
    time.sleep(0.3)
    # Only the warm pool's idle supervisors may run as the sandbox uid.
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.startswith(b"sleep\x00100"):
            leftovers.append(pid)
    assert leftovers == []


# -- the box's own machinery: supervisor, result pipe, host death ------------------

_ENV = {"PATH": "/usr/bin:/bin"}

_REACH_PID1 = (
    "import ctypes, errno, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "def sys(*a):\n"
    "    r = libc.syscall(*a); return f'{r} {ctypes.get_errno() if r < 0 else 0}'\n"
    "print('pidfd_open', sys(434, 1, 0))\n"  # x86_64 numbers
    "print('pidfd_getfd', sys(438, 3, 4, 0))\n"
    "print('kcmp', sys(312, 1, 1, 0, 0, 0))\n"
    "print('process_madvise', sys(440, 3, 0, 0, 0, 0))\n"
    "for what, path, flags in [('mem', '/proc/1/mem', os.O_RDWR), ('fd', '/proc/1/fd/4', os.O_WRONLY)]:\n"
    "    try:\n        os.open(path, flags); print(what, 'OPENED')\n"
    "    except OSError as e:\n        print(what, e.errno)\n"
    "try:\n    print('fds', os.listdir('/proc/1/fd'))\n"
    "except OSError as e:\n    print('fds', e.errno)\n"
)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_program_cannot_reach_the_supervisor(sandbox: UntrustedSandbox, compiled: bool) -> None:
    assert os.uname().machine == "x86_64"  # the syscall numbers above
    fd = sandbox._compiled_supervisor() if compiled else None
    with sandbox._prepare(fd) as box:
        result = box.run(RunSpec(argv=("python3", "-c", _REACH_PID1), env=_ENV))
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert lines["pidfd_open"] == "-1 38"  # ENOSYS
    assert lines["pidfd_getfd"] == "-1 1" and lines["kcmp"] == "-1 1"  # EPERM
    assert lines["process_madvise"] == "-1 1"
    # PID 1 is not dumpable: its memory and descriptors are out of reach.
    assert lines["mem"] in ("13", "1") and lines["fd"] in ("13", "1")
    assert lines["fds"] in ("13", "1")


def _result_pipe_of(box: WarmBox) -> int:
    """A write end of ``box``'s result pipe, taken from its supervisor as the
    attack would (here by the host: the program can no longer reach it)."""
    assert box._res_r is not None and box.supervisor_pid is not None
    inode = os.fstat(box._res_r).st_ino
    for name in os.listdir(f"/proc/{box.supervisor_pid}/fd"):
        path = f"/proc/{box.supervisor_pid}/fd/{name}"
        if os.readlink(path) == f"pipe:[{inode}]":
            return os.open(path, os.O_WRONLY)
    raise AssertionError("no result pipe in the supervisor")


def _run_with_forged_report(sandbox: UntrustedSandbox, forged: bytes, after_s: float) -> RunResult:
    with sandbox.prepare() as box:
        pipe = _result_pipe_of(box)

        def forge() -> None:
            time.sleep(after_s)
            with contextlib.suppress(OSError):  # the box may be killed meanwhile
                view = memoryview(forged)
                while view:
                    view = view[os.write(pipe, view[:65536]) :]
            os.close(pipe)

        writer = threading.Thread(target=forge)
        writer.start()
        try:
            return box.run(RunSpec(argv=("sleep", "5"), env=_ENV))
        finally:
            box.destroy()  # closes the read end: a writer still blocked gets EPIPE
            writer.join()


@pytest.mark.parametrize(
    ("forged", "error"),
    [
        (b"x" * (8 << 20), "over 65536 bytes"),  # no newline, ever: must not grow the host
        (b"{not json\n", "not JSON"),
        (b"[" * 60000 + b"\n", "not JSON"),  # nesting past the recursion limit
        (b'{"exit_code": "0"}\n', "invalid exit_code"),
        (b'{"exit_code": 0, "signal": 9}\n', "exactly one"),
    ],
    ids=["unbounded", "invalid", "deep", "types", "both"],
)
def test_a_forged_result_report_is_a_runtime_error(
    sandbox: UntrustedSandbox, forged: bytes, error: str
) -> None:
    result = _run_with_forged_report(sandbox, forged, after_s=0.2)
    assert result.report_error is not None and error in result.report_error
    assert result.exit_code is None and result.signal is None
    assert run_verdict(result, Limits())[0] is Verdict.RUNTIME_ERROR  # type: ignore[index]


def test_wall_time_is_the_hosts_not_the_report(sandbox: UntrustedSandbox) -> None:
    result = _run_with_forged_report(
        sandbox, b'{"wall": 0.001, "exit_code": 0, "maxrss_kb": 1}\n', after_s=0.6
    )
    assert result.report_error is None
    # The host's clock: about the 0.6 s the forger waited (its sleep began a hair
    # before the host started timing), nothing like the 1 ms it claimed.
    assert result.wall_time_s >= 0.5


def test_artifact_count_is_capped(judge: JudgeService) -> None:
    make = 'i=0; while [ $i -lt 300 ]; do : > f$i; i=$((i+1)); done; exec "$0" "$@"'
    result = judge(
        Submission(
            language="c",
            source=b"int main(void){return 0;}",
            compiler_options=shlex.join(["-wrapper", f"sh,-c,{make}"]),
        )
    )
    assert result.verdict is Verdict.COMPILATION_ERROR
    assert "too many compile artifacts" in result.message


def test_pidfd_kills_only_its_own_supervisor(
    sandbox: UntrustedSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = sandbox.prepare()
    try:
        assert box.run(RunSpec(argv=("true",), env=_ENV)).exit_code == 0
        # The supervisor exited and was reaped (by us, or by the fork-server): its
        # pid may be reused now.
        if box._proc is not None:
            box._proc.wait(timeout=10)
        else:
            assert box._pidfd is not None
            assert select.select([box._pidfd], [], [], 10)[0], "the supervisor did not exit"
        killed: list[int] = []
        monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(pid))
        box.kill()  # through the pidfd: the dead supervisor, nobody else
        assert killed == []
        assert box._pidfd is not None
        with pytest.raises(ProcessLookupError):
            signal.pidfd_send_signal(box._pidfd, 0)
    finally:
        monkeypatch.undo()
        box.destroy()


_HOST = """
import sys
from pathlib import Path
from hpcbox.judge.sandbox import RunSpec, UntrustedSandbox
from hpcbox.judge.sandbox.spec import RunLimits

factory = UntrustedSandbox(Path(sys.argv[1]))
box = factory.prepare()
print(factory._parent, box.group, flush=True)
box.run(RunSpec(argv=("sh", "-c", "sleep 1000; : " + sys.argv[2]),
                env={"PATH": "/usr/bin:/bin"}, limits=RunLimits(wall_time_s=1)))
"""


def _judge_host(rootfs: Path, token: str) -> tuple[subprocess.Popen[str], str, str]:
    host = subprocess.Popen(
        [sys.executable, "-c", _HOST, str(rootfs), token],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    assert host.stdout is not None
    parent, group = host.stdout.readline().split()
    deadline = time.monotonic() + 10
    while not _host_procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_procs_with(token), "the run did not start"
    return host, parent, group


def _gone_within(token: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _host_procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _host_procs_with(token)


def test_runs_die_with_the_judge_and_stale_groups_are_swept(
    sandbox: UntrustedSandbox, judge_rootfs: Path
) -> None:
    # The judge process SIGKILLed mid-run: bwrap dies with it (die-with-parent).
    token = uuid.uuid4().hex
    host, parent, group = _judge_host(judge_rootfs, token)
    host.kill()
    host.wait()
    assert host.stdout is not None
    host.stdout.close()
    assert _gone_within(token, 3)
    # Its cgroups remain; the next factory to start removes them.
    driver = sandbox.driver
    assert driver.exists(parent)
    fresh = UntrustedSandbox(judge_rootfs)
    try:
        fresh.prepare().destroy()
    finally:
        fresh.close()
    assert not driver.exists(group) and not driver.exists(parent)
    assert driver.exists(sandbox._parent)  # a live factory's groups are kept


def test_a_hung_judge_does_not_keep_a_run_alive(judge_rootfs: Path) -> None:
    # The judge process stopped (hung) mid-run, so it can neither time the run out
    # nor die: the supervisor's own deadline (wall limit + grace) ends the box.
    token = uuid.uuid4().hex
    host, _parent, _group = _judge_host(judge_rootfs, token)
    try:
        os.kill(host.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 1 + 5 + 5  # wall 1 s + backstop grace + slack
        while time.monotonic() < deadline:
            if not [pid for pid in _host_procs_with(token) if pid != host.pid]:
                break
            time.sleep(0.2)
        assert [pid for pid in _host_procs_with(token) if pid != host.pid] == []
    finally:
        host.kill()
        host.wait()
        assert host.stdout is not None
        host.stdout.close()
