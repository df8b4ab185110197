"""Sandboxes for running commands; profile "job" (trusted batch jobs).

A run is launched detached (:meth:`Sandbox.launch`), limited and accounted by
cgroups (v1 or v2), isolated by bubblewrap, and can be polled, killed and
collected from any process through its :class:`RunHandle`.
"""

from hpcbox.infra.isolation.cgroup import (
    CgroupDriver,
    CgroupStats,
    CgroupV1Driver,
    CgroupV2Driver,
    detect_driver,
)
from hpcbox.infra.isolation.limits import ResourceLimits
from hpcbox.jobs.backends.local.sandbox.handle import RunHandle
from hpcbox.jobs.backends.local.sandbox.outcome import RunOutcome
from hpcbox.jobs.backends.local.sandbox.request import LaunchRequest
from hpcbox.jobs.backends.local.sandbox.sandbox import DEFAULT_PIDS, Sandbox

__all__ = [
    "DEFAULT_PIDS",
    "CgroupDriver",
    "CgroupStats",
    "CgroupV1Driver",
    "CgroupV2Driver",
    "LaunchRequest",
    "ResourceLimits",
    "RunHandle",
    "RunOutcome",
    "Sandbox",
    "detect_driver",
]
