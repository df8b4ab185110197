"""The judge's cgroups: where a sandbox factory keeps its boxes' groups, and the
sweep of the groups that judges killed on their way left behind.

Each factory keeps its groups under a parent ``hpcbox-judge/<pid>-<8 hex>``
named after its process, so that a later factory can tell a dead judge's parent
(its pid is gone) from a live one's and remove it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import secrets

from hpcbox.infra.isolation.cgroup import CgroupDriver
from hpcbox.infra.isolation.ids import validate_group_path

__all__ = ["JUDGE_ROOT", "GroupNames", "in_group", "sweep_stale_groups"]

log = logging.getLogger(__name__)

#: Sibling factories' parent groups: ``hpcbox-judge/<pid>-<8 hex>``.
JUDGE_ROOT = "hpcbox-judge"
_STALE_PARENT = re.compile(r"^(\d+)-[0-9a-f]{8}$")


class GroupNames:
    """The groups of one factory: its ``parent`` (by default a fresh
    ``hpcbox-judge/<this pid>-<8 hex>``) and the numbered groups in it."""

    def __init__(self, parent: str | None = None) -> None:
        self.parent = validate_group_path(
            parent or f"{JUDGE_ROOT}/{os.getpid()}-{secrets.token_hex(4)}", field="parent_group"
        )
        self._counter = itertools.count(1)

    def new(self, kind: str) -> str:
        """A group name not given before: ``<parent>/<kind>-<n>``."""
        return f"{self.parent}/{kind}-{next(self._counter)}"


def in_group(pid: int, group: str) -> bool:
    """Whether process ``pid`` is in cgroup ``group`` (in some hierarchy)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            return any(line.rstrip("\n").endswith(f"/{group}") for line in f)
    except OSError:
        return False


def sweep_stale_groups(driver: CgroupDriver) -> list[str]:
    """Kill and remove every ``hpcbox-judge/<pid>-<hex>`` group whose factory
    process is dead (a judge that was killed leaves them); return their names.

    A group of a live process (this one, or another judge's) is left alone.
    """
    names: set[str] = set()
    for procs in driver.procs_files(JUDGE_ROOT):
        with contextlib.suppress(OSError):
            names |= {n for n in os.listdir(os.path.dirname(procs)) if _STALE_PARENT.match(n)}
    swept = []
    for name in sorted(names):
        match = _STALE_PARENT.match(name)
        if match is None or _alive(int(match.group(1))):
            continue
        parent = f"{JUDGE_ROOT}/{name}"
        try:
            children: set[str] = set()
            for procs in driver.procs_files(parent):
                with contextlib.suppress(OSError):
                    children |= {
                        e.name
                        for e in os.scandir(os.path.dirname(procs))
                        if e.is_dir(follow_symlinks=False)
                    }
            for child in sorted(children):
                driver.kill(f"{parent}/{child}")
                driver.remove(f"{parent}/{child}")
            driver.kill(parent)
            driver.remove(parent)
            swept.append(parent)
            log.warning("removed the stale sandbox group %s of a dead judge", parent)
        except Exception as exc:  # one stuck group must not stop new boxes
            log.warning("stale sandbox group %s not removed: %s", parent, exc)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
