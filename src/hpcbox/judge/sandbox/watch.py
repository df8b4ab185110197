"""Watching one run: its output streamed and capped, its limits enforced by the
host, its supervisor's report awaited.

The host, not the box, decides when a run is over its wall or CPU time or its
output cap: it polls the run's cgroup CPU time, keeps the wall clock, and kills
the box (through the box's ``kill``) the moment one is exceeded.
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable

from hpcbox.judge.sandbox.report import MAX_REPORT_BYTES, Report, parse_report
from hpcbox.judge.sandbox.spec import RunLimits

__all__ = ["Watch"]

#: How often CPU time is checked against the limit while a run lasts.
_CPU_POLL_S = 0.05
#: How long output may keep flowing after the program was reported finished or killed.
_DRAIN_TIMEOUT_S = 2.0


class Watch:
    """Waits for a run's report while streaming its output and enforcing limits.

    ``result_fd``, ``stdout_fd`` and ``stderr_fd`` are the host's ends of the box's
    pipes (the caller keeps owning them); ``cpu_time`` reads the box's CPU time so
    far, ``cpu_before`` is what it was before the run; ``kill`` kills the box.
    """

    def __init__(
        self,
        *,
        result_fd: int,
        stdout_fd: int,
        stderr_fd: int,
        limits: RunLimits,
        cpu_before: float,
        start: float,
        cpu_time: Callable[[], float],
        kill: Callable[[], None],
    ) -> None:
        self._result_fd = result_fd
        self._stdout_fd = stdout_fd
        self._stderr_fd = stderr_fd
        self.limits = limits
        self._cpu_before = cpu_before
        self.start = start
        self._cpu_time = cpu_time
        self._kill = kill
        self.out = bytearray()
        self.err = bytearray()
        self.cpu_exceeded = False
        self.wall_exceeded = False
        self.output_exceeded = False
        #: Why the supervisor's result line was unusable (None: fine or absent).
        self.report_error: str | None = None
        #: When the host saw the run end (its report, or the first kill).
        self.finished_at = start

    def wait(self) -> Report | None:
        """The run's validated report; None if it was killed first or its report
        was unusable (then ``report_error`` says why)."""
        res_r = self._result_fd
        sel = selectors.DefaultSelector()
        res_buf = bytearray()
        streams = {self._stdout_fd: self.out, self._stderr_fd: self.err}
        sel.register(res_r, selectors.EVENT_READ)
        for fd in streams:
            sel.register(fd, selectors.EVENT_READ)
        deadline = self.start + self.limits.wall_time_s
        cpu_cap = self.limits.cpu_time_s + self.limits.cpu_extra_time_s
        next_cpu = self.start + _CPU_POLL_S
        drain_until: float | None = None
        killed = False
        try:
            while sel.get_map():
                now = time.monotonic()
                if drain_until is None:
                    if now >= deadline:
                        self.wall_exceeded = True
                        killed = True
                    elif now >= next_cpu:
                        next_cpu = now + _CPU_POLL_S
                        if self._cpu_time() - self._cpu_before > cpu_cap:
                            self.cpu_exceeded = True
                            killed = True
                    if killed:
                        self._kill()
                        self.finished_at = now
                        drain_until = now + _DRAIN_TIMEOUT_S
                elif now >= drain_until:
                    break
                limit = drain_until if drain_until is not None else min(deadline, next_cpu)
                for key, _ in sel.select(max(0.0, limit - now)):
                    fd = int(key.fd)
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        sel.unregister(fd)
                        continue
                    if fd == res_r:
                        res_buf += chunk
                        if len(res_buf) > MAX_REPORT_BYTES:
                            self.report_error = f"result report over {MAX_REPORT_BYTES} bytes"
                        elif not res_buf.endswith(b"\n"):
                            continue
                        self.finished_at = time.monotonic()
                        try:
                            report = None if self.report_error else parse_report(bytes(res_buf))
                        except ValueError as exc:
                            self.report_error = str(exc)
                            report = None
                        if report is None:
                            self._kill()
                        # The program has exited: what it wrote is in the pipes
                        # now. Waiting for EOF would wait for the sandbox's
                        # teardown (bwrap holds the write ends), so take what is
                        # there and stop; leftover daemons die with the box.
                        self._drain_now(streams)
                        return report
                    buf = streams[fd]
                    room = self.limits.output_bytes - len(buf)
                    buf += chunk[: max(0, room)]
                    if len(chunk) > room and not self.output_exceeded:
                        self.output_exceeded = True
                        self._kill()
                        if drain_until is None:
                            self.finished_at = time.monotonic()
                            drain_until = self.finished_at + _DRAIN_TIMEOUT_S
        finally:
            sel.close()
        if drain_until is None:
            self.finished_at = time.monotonic()
        self._kill()
        return None

    def _drain_now(self, streams: dict[int, bytearray]) -> None:
        """Take what the pipes hold now, without waiting for more (capped as above)."""
        for fd, collected in streams.items():
            os.set_blocking(fd, False)
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                room = self.limits.output_bytes - len(collected)
                collected.extend(chunk[: max(0, room)])
                if len(chunk) > room:
                    self.output_exceeded = True
                    break
