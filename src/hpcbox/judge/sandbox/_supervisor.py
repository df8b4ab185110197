"""PID 1 of a warm untrusted sandbox: waits for ONE run request, runs it, reports, exits.

This file is not imported by hpcbox: its text is handed to the runtime root
filesystem's own ``python3 -I -S -c`` (stdlib only, no host code inside the
sandbox). Arguments: the descriptors REQUEST RESULT STDOUT STDERR.

First of all it makes itself non-dumpable (ctypes prctl): the program runs as
the same uid, and a dumpable PID 1 would let it take this process's descriptors
(pidfd_getfd) or rewrite its memory (/proc/1/mem) and forge the result. The
program gets dumpable back at its exec, as any process.

Protocol: the supervisor writes ``{"ready": 1}`` (a JSON line) on RESULT, reads one
request ``{"argv", "env", "stdin", "rlimits", "merge_stderr", "deadline"}`` from REQUEST (a
:mod:`marshal` dump of plain dicts, lists and strings, written by the host and
read up to EOF), forks and execs the program with those rlimits and descriptors,
waits for it and writes one JSON line ``{"exit_code"|"signal", "wall",
"maxrss_kb", "exec_error"}``. Then it exits; as PID 1 of the pid namespace its
exit makes the kernel kill every process the program left behind. EOF on REQUEST
before any request (the host went away) also ends it, and so does ``deadline``
seconds after the fork (a backstop: the host normally kills the run first).

Only built-in modules are imported on the normal path (marshal, not json; _signal,
not signal, which imports enum): a box starts about 7 ms of CPU faster, and every
submission starts one or two boxes. The host never unmarshals anything a sandbox
wrote: results are JSON, parsed as untrusted input.
"""

import _signal  # type: ignore[import-not-found]  # signal without its enum import
import marshal
import os
import resource
import sys
import time


def _read_all(fd: int) -> bytes:
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return buf
        buf += chunk


def _json_line(result: dict[str, object]) -> bytes:
    """``result`` (ints, a float, at most one str) as one JSON line; json is
    imported only for a string (an exec error), the rare path."""
    parts = []
    for key, value in result.items():
        if isinstance(value, str):
            import json  # the rare path, see the module docstring

            text = json.dumps(value)
        else:
            text = repr(value)  # int or finite float: valid JSON as repr'd
        parts.append(f'"{key}": {text}')
    return ("{" + ", ".join(parts) + "}\n").encode()


def _child(req: dict[str, object], out_fd: int, err_fd: int, err_w: int) -> None:
    try:
        for sig in (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGINT, _signal.SIGALRM):
            # Python ignores these; ignored dispositions survive exec.
            _signal.signal(sig, _signal.SIG_DFL)
        stdin = req.get("stdin")
        in_fd = os.open(str(stdin) if stdin else "/dev/null", os.O_RDONLY | os.O_NOCTTY)
        os.dup2(in_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd if req.get("merge_stderr") else err_fd, 2)
        rlimits = req.get("rlimits")
        argv = req.get("argv")
        env = req.get("env")
        if not isinstance(rlimits, dict) or not isinstance(argv, list) or not isinstance(env, dict):
            raise TypeError("malformed request")
        for name, (soft, hard) in rlimits.items():
            resource.setrlimit(getattr(resource, "RLIMIT_" + name), (soft, hard))
        os.execvpe(argv[0], argv, env)  # noqa: S606 - argv from the host, no shell
    except BaseException as exc:
        os.write(err_w, f"{type(exc).__name__}: {exc}".encode(errors="replace")[:4000])
    os._exit(127)


def _not_dumpable() -> None:
    import ctypes  # not built in (about 2 ms), but the protection is not optional

    pr_set_dumpable = 4
    if ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _on_deadline(_sig: int, _frame: object) -> None:
    os.kill(-1, _signal.SIGKILL)  # every other process of the pid namespace
    os._exit(137)


def main() -> None:
    _not_dumpable()
    req_fd, res_fd, out_fd, err_fd = (int(a) for a in sys.argv[1:5])
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    keep = {0, 1, 2, req_fd, res_fd, out_fd, err_fd}
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            try:  # noqa: SIM105 - contextlib would import functools and collections
                os.close(int(name))
            except OSError:
                pass
    for fd in keep - {0, 1, 2}:
        os.set_inheritable(fd, False)
    os.write(res_fd, b'{"ready": 1}\n')
    data = _read_all(req_fd)
    if not data:
        return
    req = marshal.loads(data)  # noqa: S302 - the host's own request, see above
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req, out_fd, err_fd, err_w)
    # PID 1 ignores a signal left at its default action: handle it.
    _signal.signal(_signal.SIGALRM, _on_deadline)
    _signal.alarm(int(req["deadline"]))
    os.close(err_w)
    os.close(out_fd)
    os.close(err_fd)
    exec_error = os.read(err_r, 4096).decode(errors="replace")
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    result: dict[str, object] = {"wall": wall, "maxrss_kb": usage.ru_maxrss}
    if exec_error:
        result["exec_error"] = exec_error
    if os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
    else:
        result["exit_code"] = os.WEXITSTATUS(status)
    os.write(res_fd, _json_line(result))


main()
