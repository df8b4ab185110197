"""cgroup v1: one hierarchy per controller (cpu and cpuacct possibly co-mounted)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

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
from hpcbox.infra.isolation.cgroup._killer import kill_loop
from hpcbox.infra.isolation.cgroup.base import CgroupDriver, CgroupStats
from hpcbox.infra.isolation.ids import validate_group_path
from hpcbox.infra.isolation.limits import CFS_PERIOD_US, ResourceLimits, cpu_quota_us

__all__ = ["V1_CONTROLLERS", "CgroupV1Driver"]

#: The controllers a run needs, each of which names a hierarchy.
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")

#: Groups whose directories are kept joined (see ``_dir``).
_DIR_CACHE_SIZE = 1024
# How long freezer.state may stay FREEZING before we signal anyway.
_FREEZE_TIMEOUT_S = 1.0


class CgroupV1Driver(CgroupDriver):
    """Driver for cgroup v1.

    ``hierarchies`` maps each controller of :data:`V1_CONTROLLERS` to the mount
    point of its hierarchy (two controllers share one when co-mounted, as
    ``cpu,cpuacct`` usually is); a group lives at ``<mount>/<group>`` in each
    distinct hierarchy. ``kill`` and ``sleep`` are injectable for tests.
    """

    name = "v1"

    def __init__(
        self,
        hierarchies: Mapping[str, str],
        *,
        kill: Callable[[int, int], None] = os.kill,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._mounts = dict(hierarchies)
        self._kill = kill
        self._sleep = sleep
        self._parents_ready: set[str] = set()
        self._has_memsw: bool | None = None
        self._group_dirs: dict[str, dict[str, str]] = {}

    @property
    def hierarchies(self) -> dict[str, str]:
        """Controller -> mount point, as given."""
        return dict(self._mounts)

    def _dir(self, controller: str, group: str) -> str:
        # A sandbox's group is looked up a few dozen times in its short life:
        # validated and joined once (the cache is emptied by remove, and bounded).
        dirs = self._group_dirs.get(group)
        if dirs is None:
            valid = validate_group_path(group)
            if len(self._group_dirs) >= _DIR_CACHE_SIZE:
                self._group_dirs.clear()
            dirs = {c: os.path.join(m, valid) for c, m in self._mounts.items()}
            self._group_dirs[group] = dirs
        return dirs[controller]

    def _dirs(self, group: str) -> list[str]:
        # Distinct hierarchies only: co-mounted controllers share a directory.
        out: list[str] = []
        for controller in V1_CONTROLLERS:
            path = self._dir(controller, group)
            if path not in out:
                out.append(path)
        return out

    def check(self, parent: str) -> None:
        missing = [c for c in V1_CONTROLLERS if c not in self._mounts]
        if missing:
            raise UnavailableError(
                f"cgroup v1 controllers not mounted: {', '.join(missing)}; mount them under "
                "/sys/fs/cgroup or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)"
            )
        self._ensure_parent(parent)

    def _ensure_parent(self, parent: str) -> None:
        # Re-checked cheaply each time: someone may have removed the parent.
        if parent in self._parents_ready and all(map(os.path.isdir, self._dirs(parent))):
            return
        for path in self._dirs(parent):
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise os_error(exc, f"create cgroup {path}") from exc
        self._parents_ready.add(parent)

    def create(self, group: str, limits: ResourceLimits) -> None:
        parent = os.path.dirname(validate_group_path(group))
        # The parent is checked once, not before every group (four stat calls a
        # sandbox); were it removed since, the mkdir says so and it is made again.
        if parent and parent not in self._parents_ready:
            self._ensure_parent(parent)
        try:
            self._create(group, limits)
        except PermanentError as exc:
            if not parent or not isinstance(exc.__cause__, FileNotFoundError):
                raise
            self._parents_ready.discard(parent)
            self._ensure_parent(parent)
            self._create(group, limits)

    def _create(self, group: str, limits: ResourceLimits) -> None:
        created: list[str] = []
        try:
            for path in self._dirs(group):
                if make_group_dir(path):
                    created.append(path)
            self._apply(group, limits)
        except BaseException:
            undo_created(created)
            raise

    def _apply(self, group: str, limits: ResourceLimits) -> None:
        mem = self._dir("memory", group)
        memsw = os.path.join(mem, "memory.memsw.limit_in_bytes")
        # Whether swap is accounted is the kernel's (boot) setting: looked up once.
        if self._has_memsw is None:
            self._has_memsw = os.path.exists(memsw)
        has_memsw = self._has_memsw
        # memsw must stay >= the memory limit at every step: lift it first,
        # then set memory, then lower memsw to the same value (no swap).
        if has_memsw:
            write_checked(memsw, "-1")
        write_checked(os.path.join(mem, "memory.limit_in_bytes"), _or(limits.memory_bytes, "-1"))
        if has_memsw and limits.memory_bytes is not None:
            write_checked(memsw, str(limits.memory_bytes))
        cpu = self._dir("cpu", group)
        write_checked(os.path.join(cpu, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
        quota = None if limits.cpus is None else cpu_quota_us(limits.cpus)
        write_checked(os.path.join(cpu, "cpu.cfs_quota_us"), _or(quota, "-1"))
        write_checked(os.path.join(self._dir("pids", group), "pids.max"), _or(limits.pids, "max"))

    def update(self, group: str, limits: ResourceLimits) -> None:
        self._apply(group, limits)

    def procs_files(self, group: str) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self._dirs(group)]

    def pids(self, group: str) -> set[int]:
        out: set[int] = set()
        for path in self.procs_files(group):
            out |= read_pids(path)
        return out

    def exists(self, group: str) -> bool:
        return any(os.path.isdir(d) for d in self._dirs(group))

    def kill(self, group: str) -> None:
        state = os.path.join(self._dir("freezer", group), "freezer.state")
        kill_loop(
            describe=f"cgroup {group}",
            pids=lambda: self.pids(group),
            freeze=lambda: self._freeze(state),
            thaw=lambda: write_if_exists(state, "THAWED"),
            kill=self._kill,
            sleep=self._sleep,
        )

    def _freeze(self, state: str) -> None:
        if not write_if_exists(state, "FROZEN"):
            return
        deadline = time.monotonic() + _FREEZE_TIMEOUT_S
        # FREEZING means some task has not stopped yet; signalling then is
        # still correct, only less airtight, so waiting is bounded.
        while time.monotonic() < deadline:
            try:
                if read_text(state).strip() == "FROZEN":
                    return
            except OSError as exc:
                if gone(exc):  # removed meanwhile: nothing left to freeze
                    return
                raise
            self._sleep(0.001)

    def stats(self, group: str) -> CgroupStats:
        mem = self._dir("memory", group)
        try:
            cpu_ns = read_int(os.path.join(self._dir("cpuacct", group), "cpuacct.usage"))
            peak = read_int(os.path.join(mem, "memory.max_usage_in_bytes"))
            oom_control = read_keyed(os.path.join(mem, "memory.oom_control"))
            if "oom_kill" in oom_control:
                oom = oom_control["oom_kill"] > 0
            else:
                # Kernels before 4.13 do not count OOM kills; hitting the limit
                # at all is the best available sign.
                oom = read_int(os.path.join(mem, "memory.failcnt")) > 0
        except FileNotFoundError as exc:
            raise NotFoundError(f"cgroup {group} is gone") from exc
        except (OSError, ValueError) as exc:
            raise PermanentError(f"cannot read statistics of cgroup {group}: {exc}") from exc
        return CgroupStats(cpu_time_s=cpu_ns / 1e9, peak_memory_bytes=peak, oom_killed=oom)

    def memory_baseline(self, group: str) -> int:
        mem = self._dir("memory", group)
        try:
            write_value(os.path.join(mem, "memory.max_usage_in_bytes"), "0")
            return read_int(os.path.join(mem, "memory.usage_in_bytes"))
        except (OSError, ValueError):
            return super().memory_baseline(group)

    def remove(self, group: str) -> None:
        for path in self._dirs(group):
            remove_group_dir(path, sleep=self._sleep)
        self._group_dirs.pop(group, None)


def _or(value: int | None, unlimited: str) -> str:
    return unlimited if value is None else str(value)
