"""The fork-server of warm untrusted sandboxes: one interpreter started once,
forked into a fresh sandbox for every run.

This file is not imported by hpcbox: its text is handed to the runtime root
filesystem's own ``python3 -B -c`` (stdlib only, no host code inside the sandbox),
started by bubblewrap as the PID 1 of a sandbox of its own (see ``argv.py``):
rootfs read-only, no network, as uid 1000 of a user namespace that maps to an
unprivileged host uid, with CAP_SYS_ADMIN and CAP_NET_ADMIN *in that namespace
only*, which it needs to build each box's namespaces and mounts. It never runs
anything it was sent: every run happens in a forked box that has dropped every
capability first. Arguments: CONTROL SECCOMP BOX_BYTES TMP_BYTES.

Why: a box started by bubblewrap costs some 4 ms of CPU, and a Python run in it
another 11 ms for the interpreter's start; a box forked from here costs a few forks
and namespaces (most of it the copy-on-write faults of forked interpreter
processes), and a Python program then runs in the interpreter already started
(``python3 -B FILE`` with the zygote's environment). bench/judge.py part (b):
sandbox CPU per Python print 15.1 ms with bwrap boxes, 6.6 ms forked.

Protocol on CONTROL (a SOCK_SEQPACKET socket): the host sends b"box" with five
descriptors: INFO (a SOCK_SEQPACKET socket), REQUEST, RESULT, STDOUT, STDERR.
The zygote forks; the child makes new mount, network, ipc, uts and pid namespaces
and forks the box's PID 1, which mounts a fresh /proc, a fresh size-capped tmpfs
on /box, /tmp and /dev/shm, brings up its own loopback, drops every capability
(bounding set included), sets no_new_privs and becomes non-dumpable, then sends
b"ready" on INFO (the kernel attaches its pid as the host sees it, SCM_CREDENTIALS;
the host moves it into the box's cgroup before sending the request) or b"error:
WHY". From there on it is the compiled supervisor's protocol (``supervisor.c``):
one request read from REQUEST to EOF, a fork, the program started with its
rlimits and descriptors under the seccomp filter, one JSON line of result on
RESULT, exit (which, as PID 1, kills whatever the program left behind).

The program is exec'd, except ``python3 -B FILE ARGS`` run with the zygote's own
environment: the forked interpreter then runs FILE itself, as ``python3`` would
(``__main__``, ``sys.argv``, ``sys.path[0]``, exit status, tracebacks), with
the modules this file imported removed from ``sys.modules`` first. Differences
from a fresh interpreter: the string-hash seed is the zygote's (the same for every
run of this zygote), and the interpreter's pages shared with the zygote are not
charged to the run's memory.
"""

import sys

# Taken first: what a plain `python3 -B main.py` has imported when main.py starts.
_BASELINE = frozenset(sys.modules)

import contextlib  # noqa: E402
import ctypes  # noqa: E402
import fcntl  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 4, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_RLIMITS = {
    "CPU": 0,
    "FSIZE": 1,
    "DATA": 2,
    "STACK": 3,
    "CORE": 4,
    "NPROC": 6,
    "NOFILE": 7,
    "AS": 9,
}


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            flags,
            None if data is None else data.encode(),
        ),
        f"mount {target}",
    )


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _close_all_but(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):  # the listing's own, closed already
                os.close(fd)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _drop_privileges() -> None:
    """No capability left (bounding and ambient sets too), no way to gain one."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == 22:
                break  # EINVAL: past the kernel's last capability
            _check(-1, f"drop capability {cap}")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = ctypes.create_string_buffer(24)  # two zeroed __user_cap_data_struct
    _check(_libc.capset(ctypes.c_char_p(header), data), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")


class _Request:
    """The compiled supervisor's request format (see ``compiled.encode_request``)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def string(self) -> str:
        if len(self.data) - self.pos < 4:
            raise ValueError("malformed request")
        (n,) = struct.unpack_from("<I", self.data, self.pos)
        start = self.pos + 4
        if len(self.data) - start < n:
            raise ValueError("malformed request")
        self.pos = start + n
        value = self.data[start : self.pos].decode("utf-8", "surrogateescape")
        if "\0" in value:
            raise ValueError("embedded null byte")
        return value

    def number(self, low: int, high: int) -> int:
        value = int(self.string())
        if not low <= value <= high:
            raise ValueError("malformed request")
        return value

    def parse(
        self,
    ) -> tuple[int, list[str], dict[str, str], str, bool, list[tuple[int, int, int]]]:
        deadline = self.number(1, 1 << 20)
        argv = [self.string() for _ in range(self.number(1, 1 << 20))]
        env: dict[str, str] = {}
        for _ in range(self.number(0, 1 << 20)):
            key, _, value = self.string().partition("=")
            env[key] = value
        stdin = self.string()
        merge = self.string() == "1"
        rlimits: list[tuple[int, int, int]] = []
        for _ in range(self.number(0, 16)):
            name = self.string()
            if name not in _RLIMITS:
                raise ValueError("malformed request")
            rlimits.append((_RLIMITS[name], self.number(0, 1 << 62), self.number(0, 1 << 62)))
        return deadline, argv, env, stdin, merge, rlimits


def _install_filter(program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _Fprog(len(program) // 8, ctypes.addressof(buf))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def _in_process(argv: list[str], env: dict[str, str], zygote_env: dict[str, str]) -> bool:
    """Whether ``argv`` can run in this interpreter (see the module docstring)."""
    if not (
        len(argv) >= 3
        and argv[0] in ("python3", "/usr/bin/python3")
        and argv[1] == "-B"
        and not argv[2].startswith("-")
    ):
        return False
    # Started in the C locale, python3 coerces it (PEP 538) and says so in its own
    # environment, as the zygote did: the same environment is the same start.
    expected = dict(env)
    if not {"LC_ALL", "LC_CTYPE", "LANG"} & set(env) and "LC_CTYPE" in zygote_env:
        expected["LC_CTYPE"] = zygote_env["LC_CTYPE"]
    return expected == zygote_env


def _limit_self(
    stdin: str,
    merge: bool,
    rlimits: list[tuple[int, int, int]],
    res: int,
    out: int,
    err: int,
    program: bytes,
) -> tuple[int, int]:
    """In the box's PID 1, just before it forks the program: take on everything the
    program must start with (its stdin, stdout and stderr as 0, 1 and 2, no other
    descriptor but the result's, its rlimits, the seccomp filter), so that the
    forked program has little left to do: in a forked interpreter every page it
    writes to is a copy, and a copy is the costliest thing it does. None of these
    limits can hurt PID 1, which only waits and writes one line to a pipe. Returns
    the exec-error pipe (both ends close on exec); raises OSError."""
    in_fd = os.open(stdin or "/dev/null", os.O_RDONLY | os.O_NOCTTY)
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    os.dup2(in_fd, 0)
    os.dup2(out, 1)
    os.dup2(out if merge else err, 2)
    _close_all_but({res, error_r, error_w})
    os.set_inheritable(res, False)
    for which, soft, hard in rlimits:
        resource.setrlimit(which, (soft, hard))
    _install_filter(program)
    return error_r, error_w


def _program(
    argv: list[str], env: dict[str, str], res: int, error_r: int, error_w: int, inline: bool
) -> None:
    """In the box's forked program process: never returns."""
    os.close(res)
    os.close(error_r)
    for sig in (signal.SIGCHLD, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    if inline:
        os.close(error_w)
        _run_python(argv)  # never returns
    # Exec'd programs start with the default action for what Python ignores.
    for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(argv[0], argv, env)  # noqa: S606  # argv, never a shell line
    except OSError as exc:
        kind = "FileNotFoundError" if isinstance(exc, FileNotFoundError) else "OSError"
        os.write(error_w, f"{kind}: {exc}".encode()[:3000])
    os._exit(127)


def _run_python(argv: list[str]) -> None:
    """Run ``python3 -B FILE ARGS`` in this interpreter, as ``python3`` would."""
    for name in set(sys.modules) - _BASELINE:
        del sys.modules[name]
    path = os.path.abspath(argv[2])
    sys.argv = argv[2:]
    sys.orig_argv = list(argv)
    sys.path[0] = os.path.dirname(path)
    main = type(sys)("__main__")
    main.__file__ = path
    main.__dict__["__cached__"] = None
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    try:
        with open(path, "rb") as source:
            text = source.read()
    except OSError as exc:
        sys.stderr.write(f"python3: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}\n")
        sys.stderr.flush()
        os._exit(2)
    try:
        # The program itself, in this sandboxed process: what the box is for.
        exec(compile(text, path, "exec", dont_inherit=True), main.__dict__)  # noqa: S102
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException as exc:  # as the interpreter does at top level
        tb = exc.__traceback__
        # Show the program's frames only (this function's is first; a syntax
        # error has no frame of the program at all).
        exc = exc.with_traceback(tb.tb_next if tb is not None else None)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        code = 130 if isinstance(exc, KeyboardInterrupt) else 1
    _exit(code)


def _exit_code(code: object) -> int:
    """What the interpreter exits with for ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):  # as the interpreter: nothing more to do
        sys.stderr.write(f"{code}\n")
    return 1


def _exit(code: int) -> None:
    """End the program as the interpreter's shutdown would as the program sees it
    (non-daemon threads joined, atexit handlers run, stdout and stderr flushed;
    a failed flush of stdout exits 120), without finalizing the interpreter: that
    would free, and so copy from the zygote, every page of the heap."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    atexit = sys.modules.get("atexit")
    if atexit is not None:
        atexit._run_exitfuncs()
    for stream, failed_code in ((sys.stdout, 120), (sys.stderr, None)):
        try:
            if stream is not None:
                stream.flush()
        except Exception as exc:
            if failed_code is not None:
                sys.stderr.write(f"Exception ignored in: {stream!r}\n{type(exc).__name__}: {exc}\n")
                code = code or failed_code
    os._exit(code)


def _supervise(
    fds: list[int], box_bytes: int, tmp_bytes: int, program: bytes, zygote_env: dict[str, str]
) -> None:
    """The box's PID 1 (see the module docstring); never returns."""
    info, req, res, out, err = fds
    info_sock = socket.socket(fileno=info)
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        _mount("tmpfs", "/box", "tmpfs", MS_NOSUID | MS_NODEV, f"size={box_bytes},mode=0755")
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
        _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
        _loopback_up()
        os.chdir("/box")
        _drop_privileges()
    except Exception as exc:  # told to the host, which refuses the box
        info_sock.send(f"error: {exc}".encode()[:4000])
        os._exit(125)
    info_sock.send(b"ready")
    info_sock.close()
    try:
        data = _read_all(req)
        if not data:
            os._exit(0)  # the host went away before the run
        deadline, argv, env, stdin, merge, rlimits = _Request(data).parse()
    except (OSError, ValueError):
        os._exit(125)
    os.close(req)
    inline = _in_process(argv, env, zygote_env)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    start = time.monotonic()
    try:
        error_r, error_w = _limit_self(stdin, merge, rlimits, res, out, err, program)
    except OSError as exc:  # reported as the supervisor reports a failed exec
        os.write(
            res, (json.dumps({"exit_code": 127, "exec_error": f"OSError: {exc}"}) + "\n").encode()
        )
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        _program(argv, env, res, error_r, error_w, inline)

    def on_deadline(signum: int, frame: object) -> None:
        os.kill(-1, signal.SIGKILL)  # every other process of the pid namespace
        os._exit(137)

    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(deadline)
    os.close(error_w)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):  # the program's ends of its pipes are its own
        os.dup2(null, fd)
    os.close(null)
    exec_error = _read_all(error_r)[:4096]
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:
            continue
    report: dict[str, object] = {"wall": time.monotonic() - start, "maxrss_kb": usage.ru_maxrss}
    if exec_error:
        # As ASCII JSON: the host parses this line as untrusted input.
        report["exec_error"] = exec_error.decode("ascii", "replace")
    if os.WIFSIGNALED(status):
        report["signal"] = os.WTERMSIG(status)
    else:
        report["exit_code"] = os.WEXITSTATUS(status)
    os.write(res, (json.dumps(report) + "\n").encode())
    os._exit(0)


def _box(
    fds: list[int], box_bytes: int, tmp_bytes: int, program: bytes, zygote_env: dict[str, str]
) -> None:
    """In the zygote's child: new namespaces, then the box's PID 1; never returns."""
    _close_all_but(set(fds))
    try:
        _check(
            _libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID),
            "unshare",
        )
        _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
        pid = os.fork()
    except Exception as exc:  # told to the host, which refuses the box
        socket.socket(fileno=fds[0]).send(f"error: {exc}".encode()[:4000])
        os._exit(125)
    if pid == 0:
        _supervise(fds, box_bytes, tmp_bytes, program, zygote_env)
    os._exit(0)  # PID 1 of the box lives on; the zygote reaps it


def main() -> None:
    control, seccomp_fd, box_bytes, tmp_bytes = (int(a) for a in sys.argv[1:5])
    program = _read_all(seccomp_fd)
    os.close(seccomp_fd)
    if not program or len(program) % 8:
        raise SystemExit("hpcbox zygote: no seccomp filter")
    os.environ.pop("PWD", None)  # bwrap's --chdir sets it; a run's environment has none
    zygote_env = dict(os.environ)
    # Out of the collector's sight from here on: a collection in a box would write
    # to every object of this heap, and so copy every page of it from the zygote.
    gc.collect()
    gc.freeze()
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")
    # Reap every child (the forks, and boxes' PID 1s that outlive them) by itself.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    ctl = socket.socket(fileno=control)
    ctl.send(b"ready")
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, 64, 8)
        if not msg:
            os._exit(0)  # the host went away
        if msg != b"box" or len(fds) != 5:
            for fd in fds:
                os.close(fd)
            continue
        if os.fork() == 0:
            ctl.close()
            _box(fds, box_bytes, tmp_bytes, program, zygote_env)
        for fd in fds:
            os.close(fd)


main()
