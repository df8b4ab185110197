"""Choosing the cgroup driver for this machine from ``/proc/self/mountinfo``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from hpcbox.core.errors import UnavailableError
from hpcbox.infra.isolation.cgroup._fs import read_text
from hpcbox.infra.isolation.cgroup.base import CgroupDriver
from hpcbox.infra.isolation.cgroup.v1 import V1_CONTROLLERS, CgroupV1Driver
from hpcbox.infra.isolation.cgroup.v2 import V2_CONTROLLERS, CgroupV2Driver

__all__ = ["MountEntry", "detect_driver", "parse_mountinfo"]

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    """The parts of one mountinfo line that matter for cgroups."""

    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse ``/proc/<pid>/mountinfo`` text (see proc(5)); malformed lines are skipped.

    Each line is ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE
    SOURCE SUPEROPTS``, with spaces and the like octal-escaped in paths.
    """
    entries: list[MountEntry] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        mount_point = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        entries.append(MountEntry(mount_point, tail[0], tuple(tail[2].split(","))))
    return entries


def detect_driver(
    root: str = "/sys/fs/cgroup", *, mountinfo_path: str = "/proc/self/mountinfo"
) -> CgroupDriver:
    """The driver for this machine: v2 if ``root`` itself is a cgroup2 mount whose
    ``cgroup.controllers`` lists cpu, memory and pids; else v1 if every
    controller of :data:`V1_CONTROLLERS` has a hierarchy; else UnavailableError
    saying what is missing. A hybrid setup's cgroup2 mount at
    ``<root>/unified`` carries no controllers and is ignored.
    """
    try:
        mounts = parse_mountinfo(read_text(mountinfo_path))
    except OSError as exc:
        raise UnavailableError(f"cannot read {mountinfo_path}: {exc}") from exc
    root = os.path.normpath(root)
    v2_missing: list[str] = []
    if any(m.fstype == "cgroup2" and m.mount_point == root for m in mounts):
        try:
            available = set(read_text(os.path.join(root, "cgroup.controllers")).split())
        except OSError:
            available = set()
        v2_missing = [c for c in V2_CONTROLLERS if c not in available]
        if not v2_missing:
            return CgroupV2Driver(root)
    # Mounts under root first, so that a hierarchy also mounted elsewhere
    # (bind mounts) resolves to its usual place.
    v1_mounts = sorted(
        (m for m in mounts if m.fstype == "cgroup"),
        key=lambda m: not m.mount_point.startswith(root + "/"),
    )
    hierarchies: dict[str, str] = {}
    for m in v1_mounts:
        for option in m.super_options:
            if option in V1_CONTROLLERS:
                hierarchies.setdefault(option, m.mount_point)
    v1_missing = [c for c in V1_CONTROLLERS if c not in hierarchies]
    if not v1_missing:
        return CgroupV1Driver(hierarchies)
    detail = f"cgroup v2 at {root} lacks {', '.join(v2_missing)}; " if v2_missing else ""
    raise UnavailableError(
        f"no usable cgroups: {detail}cgroup v1 lacks {', '.join(v1_missing)}; "
        "hpcbox needs cgroup v2 with the cpu, memory and pids controllers (or cgroup v1 "
        "memory, cpu, cpuacct, pids and freezer hierarchies) mounted at /sys/fs/cgroup"
    )
