"""cgroup v2: one unified hierarchy; controllers are enabled per subtree."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from hpcbox.core.errors import NotFoundError, PermanentError, UnavailableError
from hpcbox.infra.isolation.cgroup._dirs import make_group_dir, remove_group_dir, undo_created
from hpcbox.infra.isolation.cgroup._fs import (
    gone,
    os_error,
    read_int,
    read_keyed,
    read_pids,
    read_text,
    write_checked,
    write_if_exists,
    write_value,
)
from hpcbox.infra.isolation.cgroup._killer import KILL_TIMEOUT_S, kill_loop
from hpcbox.infra.isolation.cgroup.base import CgroupDriver, CgroupStats
from hpcbox.infra.isolation.ids import validate_group_path
from hpcbox.infra.isolation.limits import CFS_PERIOD_US, ResourceLimits, cpu_quota_us

__all__ = ["V2_CONTROLLERS", "CgroupV2Driver"]

#: The controllers a run needs; they must be listed in the root's cgroup.controllers.
V2_CONTROLLERS = ("cpu", "memory", "pids")

# How long cgroup.freeze may take to report "frozen 1" before we signal anyway.
_FREEZE_TIMEOUT_S = 1.0


class CgroupV2Driver(CgroupDriver):
    """Driver for the unified hierarchy mounted at ``root``.

    Enables :data:`V2_CONTROLLERS` in ``cgroup.subtree_control`` of the root and
    of every ancestor of a run group. Uses ``memory.peak`` (kernel 5.19+) when
    present, else the largest ``memory.current`` seen by :meth:`sample`; and
    ``cgroup.kill`` (kernel 5.14+) when present, else freeze + SIGKILL + thaw.
    ``kill`` and ``sleep`` are injectable for tests.
    """

    name = "v2"

    def __init__(
        self,
        root: str = "/sys/fs/cgroup",
        *,
        kill: Callable[[int, int], None] = os.kill,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._root = root
        self._kill = kill
        self._sleep = sleep
        self._parents_ready: set[str] = set()
        self._lock = threading.Lock()
        self._seen_peak: dict[str, int] = {}
        # Whether groups have memory.peak; learnt from the first group created.
        self._has_peak: bool | None = None

    @property
    def root(self) -> str:
        """Mount point of the unified hierarchy."""
        return self._root

    def _dir(self, group: str) -> str:
        return os.path.join(self._root, validate_group_path(group))

    def check(self, parent: str) -> None:
        try:
            available = set(read_text(os.path.join(self._root, "cgroup.controllers")).split())
        except OSError as exc:
            raise UnavailableError(f"no cgroup v2 hierarchy at {self._root}: {exc}") from exc
        missing = [c for c in V2_CONTROLLERS if c not in available]
        if missing:
            raise UnavailableError(
                f"cgroup v2 controllers unavailable at {self._root}: {', '.join(missing)}; "
                "they are bound to cgroup v1 or disabled on the kernel command line"
            )
        self._ensure_parent(parent)

    def _ensure_parent(self, parent: str) -> None:
        # Re-checked cheaply each time: someone may have removed the parent.
        if parent in self._parents_ready and os.path.isdir(self._dir(parent)):
            return
        path = self._root
        for part in validate_group_path(parent).split("/"):
            self._enable_controllers(path)
            path = os.path.join(path, part)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise os_error(exc, f"create cgroup {path}") from exc
        self._enable_controllers(path)
        self._parents_ready.add(parent)

    def _enable_controllers(self, path: str) -> None:
        control = os.path.join(path, "cgroup.subtree_control")
        try:
            enabled = set(read_text(control).split())
        except OSError as exc:
            raise os_error(exc, f"read {control}") from exc
        missing = [c for c in V2_CONTROLLERS if c not in enabled]
        if not missing:
            return
        value = " ".join(f"+{c}" for c in missing)
        try:
            write_value(control, value)
        except OSError as exc:
            # EBUSY here means the group has processes of its own ("no internal
            # processes" rule), typically a container's root cgroup.
            raise UnavailableError(
                f"cannot enable {value} in {control}: {exc.strerror}; hpcbox needs a cgroup "
                "subtree without processes of its own (run as root on the host, or delegate one)"
            ) from exc

    def create(self, group: str, limits: ResourceLimits) -> None:
        parent = os.path.dirname(validate_group_path(group))
        if parent:
            self._ensure_parent(parent)
        path = self._dir(group)
        created = make_group_dir(path)
        try:
            self._apply(path, limits)
        except BaseException:
            undo_created([path] if created else [])
            raise
        self._has_peak = os.path.exists(os.path.join(path, "memory.peak"))
        with self._lock:
            self._seen_peak.pop(group, None)

    def _apply(self, path: str, limits: ResourceLimits) -> None:
        mem = limits.memory_bytes
        write_checked(os.path.join(path, "memory.max"), "max" if mem is None else str(mem))
        swap = os.path.join(path, "memory.swap.max")
        # Absent when swap accounting is off; then there is no swap to forbid.
        if os.path.exists(swap):
            write_checked(swap, "max" if mem is None else "0")
        quota = "max" if limits.cpus is None else str(cpu_quota_us(limits.cpus))
        write_checked(os.path.join(path, "cpu.max"), f"{quota} {CFS_PERIOD_US}")
        pids = limits.pids
        write_checked(os.path.join(path, "pids.max"), "max" if pids is None else str(pids))

    def update(self, group: str, limits: ResourceLimits) -> None:
        self._apply(self._dir(group), limits)

    def procs_files(self, group: str) -> list[str]:
        return [os.path.join(self._dir(group), "cgroup.procs")]

    def pids(self, group: str) -> set[int]:
        return read_pids(os.path.join(self._dir(group), "cgroup.procs"))

    def exists(self, group: str) -> bool:
        return os.path.isdir(self._dir(group))

    def kill(self, group: str) -> None:
        path = self._dir(group)
        if not self.pids(group):
            return
        kill_file = os.path.join(path, "cgroup.kill")
        if os.path.exists(kill_file):
            # cgroup.kill kills the whole subtree atomically, forks included.
            if write_if_exists(kill_file, "1"):
                self._wait_empty(group)
            return
        freeze = os.path.join(path, "cgroup.freeze")
        kill_loop(
            describe=f"cgroup {group}",
            pids=lambda: self.pids(group),
            freeze=lambda: self._freeze(path),
            thaw=lambda: write_if_exists(freeze, "0"),
            kill=self._kill,
            sleep=self._sleep,
        )

    def _wait_empty(self, group: str) -> None:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        delay = 0.001
        while self.pids(group):
            if time.monotonic() > deadline:
                raise PermanentError(
                    f"processes of cgroup {group} survive cgroup.kill: {sorted(self.pids(group))}"
                )
            self._sleep(delay)
            delay = min(delay * 2, 0.05)

    def _freeze(self, path: str) -> None:
        # cgroup.freeze exists since kernel 5.2; without it we signal unfrozen.
        if not write_if_exists(os.path.join(path, "cgroup.freeze"), "1"):
            return
        events = os.path.join(path, "cgroup.events")
        deadline = time.monotonic() + _FREEZE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if read_keyed(events).get("frozen") == 1:
                    return
            except OSError as exc:
                if gone(exc):  # removed meanwhile: nothing left to freeze
                    return
                raise
            self._sleep(0.001)

    @property
    def needs_sampling(self) -> bool:
        return self._has_peak is False

    def sample(self, group: str) -> None:
        path = self._dir(group)
        if os.path.exists(os.path.join(path, "memory.peak")):
            return
        try:
            current = read_int(os.path.join(path, "memory.current"))
        except (OSError, ValueError):
            return
        with self._lock:
            self._seen_peak[group] = max(current, self._seen_peak.get(group, 0))

    def stats(self, group: str) -> CgroupStats:
        path = self._dir(group)
        try:
            cpu_us = read_keyed(os.path.join(path, "cpu.stat"))["usage_usec"]
            peak_file = os.path.join(path, "memory.peak")
            if os.path.exists(peak_file):
                peak = read_int(peak_file)
            else:
                current = read_int(os.path.join(path, "memory.current"))
                with self._lock:
                    peak = max(current, self._seen_peak.get(group, 0))
            oom = read_keyed(os.path.join(path, "memory.events")).get("oom_kill", 0) > 0
        except FileNotFoundError as exc:
            raise NotFoundError(f"cgroup {group} is gone") from exc
        except (OSError, ValueError, KeyError) as exc:
            raise PermanentError(f"cannot read statistics of cgroup {group}: {exc}") from exc
        return CgroupStats(cpu_time_s=cpu_us / 1e6, peak_memory_bytes=peak, oom_killed=oom)

    def memory_baseline(self, group: str) -> int:
        # memory.peak cannot be reset before kernel 6.12: a peak read after a run
        # still includes what the group held before it (a floor under small peaks).
        try:
            return read_int(os.path.join(self._dir(group), "memory.current"))
        except (OSError, ValueError):
            return super().memory_baseline(group)

    def remove(self, group: str) -> None:
        remove_group_dir(self._dir(group), sleep=self._sleep)
        with self._lock:
            self._seen_peak.pop(group, None)
