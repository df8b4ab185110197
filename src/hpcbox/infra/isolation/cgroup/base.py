"""The interface every cgroup implementation offers the sandbox."""

from __future__ import annotations

import abc
from dataclasses import dataclass

from hpcbox.infra.isolation.cgroup._fs import write_value
from hpcbox.infra.isolation.limits import ResourceLimits

__all__ = ["CgroupDriver", "CgroupStats"]


@dataclass(frozen=True)
class CgroupStats:
    """Accounting of one group, covering every process that ever ran in it."""

    cpu_time_s: float
    peak_memory_bytes: int
    oom_killed: bool


class CgroupDriver(abc.ABC):
    """Creates, limits, accounts, kills and removes cgroups of one kind.

    A *group* is a relative path of safe ids (``hpcbox/run-1``), the same for
    every driver; each driver maps it onto its own directories. Implementations
    take their cgroupfs location as a constructor argument so that they can be
    exercised against fake directory trees.
    """

    #: Short name of the cgroup version, for messages ("v1", "v2").
    name: str

    @abc.abstractmethod
    def check(self, parent: str) -> None:
        """Ensure ``parent`` can hold run groups (creating it if needed).

        Raise UnavailableError naming what is missing (controllers, permission).
        """

    @abc.abstractmethod
    def create(self, group: str, limits: ResourceLimits) -> None:
        """Create ``group`` (and its parents) and apply ``limits`` to it.

        Every limit is written, "unlimited" included, so that an empty group
        left over from a crash is safely reused. Raise ConflictError if the
        group exists and has processes, InvalidInputError if the kernel refuses
        a limit, UnavailableError if cgroupfs is not writable.
        """

    @abc.abstractmethod
    def update(self, group: str, limits: ResourceLimits) -> None:
        """Apply ``limits`` to the existing ``group`` (processes may be running in it).

        Used by warm sandboxes, whose limits are known only when a run arrives.
        Same errors as :meth:`create`.
        """

    @abc.abstractmethod
    def procs_files(self, group: str) -> list[str]:
        """The ``cgroup.procs`` files a process must be written to, to join ``group``."""

    def add_process(self, group: str, pid: int) -> None:
        """Move the running process ``pid`` into ``group`` (in every hierarchy).

        For a process that could not be started in its group (a sandbox forked by
        a fork-server). Raises OSError as the kernel refuses (ESRCH: ``pid`` is gone).
        """
        for procs in self.procs_files(group):
            write_value(procs, str(pid))

    @abc.abstractmethod
    def pids(self, group: str) -> set[int]:
        """The processes now in ``group`` (empty if it does not exist)."""

    @abc.abstractmethod
    def exists(self, group: str) -> bool:
        """True if any directory of ``group`` still exists."""

    @abc.abstractmethod
    def kill(self, group: str) -> None:
        """SIGKILL every process in ``group`` and return once it is empty.

        Processes forked during the kill are caught too. Idempotent; a missing
        group is already empty. Raise PermanentError if processes survive for
        seconds (e.g. stuck in uninterruptible sleep).
        """

    @abc.abstractmethod
    def stats(self, group: str) -> CgroupStats:
        """CPU time, peak memory and OOM kills of ``group``; NotFoundError if it is gone."""

    def memory_baseline(self, group: str) -> int:
        """The memory ``group`` holds now, with its peak counter restarted from there
        where the kernel allows, so that a peak read after a run excludes what the
        group used before it (a warm sandbox's start-up).

        This default, for a driver that can do neither: the peak so far.
        """
        return self.stats(group).peak_memory_bytes

    def sample(self, group: str) -> None:  # noqa: B027 - optional hook, empty by default
        """Record current usage, for drivers that cannot report a peak themselves.

        Called while the run is alive; a no-op unless the kernel lacks a peak counter.
        """

    @property
    def needs_sampling(self) -> bool:
        """True when :meth:`sample` must be called during a run to get a peak."""
        return False

    @abc.abstractmethod
    def remove(self, group: str) -> None:
        """Remove ``group``'s directories (idempotent).

        Retries briefly while the kernel still counts exiting processes; raise
        PermanentError if the group stays busy.
        """
