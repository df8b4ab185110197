"""cgroup drivers: resource limits, accounting and whole-tree kill for runs."""

from hpcbox.infra.isolation.cgroup.base import CgroupDriver, CgroupStats
from hpcbox.infra.isolation.cgroup.detect import MountEntry, detect_driver, parse_mountinfo
from hpcbox.infra.isolation.cgroup.v1 import V1_CONTROLLERS, CgroupV1Driver
from hpcbox.infra.isolation.cgroup.v2 import V2_CONTROLLERS, CgroupV2Driver

__all__ = [
    "V1_CONTROLLERS",
    "V2_CONTROLLERS",
    "CgroupDriver",
    "CgroupStats",
    "CgroupV1Driver",
    "CgroupV2Driver",
    "MountEntry",
    "detect_driver",
    "parse_mountinfo",
]
