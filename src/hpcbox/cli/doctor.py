"""``hpcbox doctor``: what this machine can run, checked for real, and the fix for each "no".

Each :class:`Check` names the pillars that need what it checks (``clusters``,
``jobs``, ``judge``). ``hpcbox doctor`` exits 1 when something local jobs need
fails (:attr:`Check.required`); ``--strict`` also when something the README's
main job needs fails (:attr:`Check.main_job`: a SLURM cluster with MPI on
containers).

The container checks are :mod:`hpcbox.clusters.preflight`'s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from hpcbox.clusters.preflight import (
    ALL_PILLARS,
    ENGINE_CHECK,
    Check,
    Pillar,
    clusters_check,
    container_checks,
)
from hpcbox.core.errors import HpcboxError
from hpcbox.core.settings import Settings
from hpcbox.judge.runtime_dir import SANDBOX_UID

__all__ = [
    "cgroup_check",
    "exit_status",
    "run_checks",
    "userns_fix",
]


def exit_status(checks: Sequence[Check], *, strict: bool) -> int:
    """1 when a required check failed, or with ``strict`` one the main job needs; else 0."""
    failed = [check for check in checks if not check.ok]
    if any(check.required for check in failed):
        return 1
    if strict and any(check.main_job for check in failed):
        return 1
    return 0


# -- the other checks ---------------------------------------------------------------


def _store(settings: Settings) -> Check:
    from hpcbox.infra.db import open_engine

    url = settings.effective_database_url()
    shown = url.split("@")[-1] if "@" in url else url  # never print a password
    try:
        open_engine(settings).dispose()
    except HpcboxError as exc:
        return Check(
            "state store",
            False,
            f"{shown}: {exc}",
            "check HPCBOX_DATABASE_URL",
            pillars=ALL_PILLARS,
        )
    return Check("state store", True, shown, pillars=ALL_PILLARS)


def _bubblewrap(_settings: Settings) -> Check:
    pillars: tuple[Pillar, ...] = ("jobs", "judge")
    path = shutil.which("bwrap")
    if path is None:
        return Check(
            "bubblewrap", False, "bwrap not found", "apt-get install bubblewrap", pillars=pillars
        )
    argv = [path, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts"]
    argv += ["--new-session", "--die-with-parent", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("bubblewrap", False, f"{path} does not run: {exc}", "", pillars=pillars)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-300:]
        fix = (
            "run hpcbox on the host or in a privileged container (a seccomp profile that "
            "refuses unshare/mount stops bwrap)"
            if os.geteuid() == 0
            else userns_fix(_read_sysctls())
        )
        return Check("bubblewrap", False, f"a sandbox does not start: {said}", fix, pillars=pillars)
    return Check(
        "bubblewrap", True, f"{path}: a sandbox with its own namespaces ran", pillars=pillars
    )


def _sandbox(_settings: Settings) -> Check:
    from hpcbox.jobs.backends.local.sandbox import Sandbox

    try:
        sandbox = Sandbox()
        sandbox.check()
    except HpcboxError as exc:
        return Check(
            "sandbox (cgroups)",
            False,
            str(exc),
            "run as root, or with a delegated cgroup (systemd-run --user --scope -p Delegate=yes)",
            pillars=("jobs",),
        )
    return Check("sandbox (cgroups)", True, sandbox.describe(), pillars=("jobs",))


def _run_as(argv: list[str], uid: int | None) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` (as ``uid`` and its same-numbered group, no other groups, when given)."""
    if uid is None:
        return subprocess.run(argv, capture_output=True, timeout=30, check=False, cwd="/")
    return subprocess.run(
        argv,
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        timeout=30,
        check=False,
        cwd="/",
    )


_SYSCTLS = (
    "kernel/unprivileged_userns_clone",
    "user/max_user_namespaces",
    "kernel/apparmor_restrict_unprivileged_userns",
)


def _read_sysctls() -> dict[str, str]:
    values = {}
    for key in _SYSCTLS:
        with contextlib.suppress(OSError):
            values[key] = Path("/proc/sys", key).read_text().strip()
    return values


def userns_fix(sysctls: Mapping[str, str]) -> str:
    """The fix for an unprivileged user that cannot create a user namespace, given the
    values of the sysctls that gate it (``kernel/unprivileged_userns_clone``...)."""
    for key, wanted in (
        ("kernel/unprivileged_userns_clone", "1"),
        ("user/max_user_namespaces", "15000"),
        ("kernel/apparmor_restrict_unprivileged_userns", "0"),
    ):
        value = sysctls.get(key)
        blocked = value == "0" if wanted != "0" else value not in (None, "0")
        if blocked:
            name = key.replace("/", ".")
            return (
                f"sysctl -w {name}={wanted}, and keep it across reboots: "
                f"echo {name}={wanted} > /etc/sysctl.d/90-hpcbox.conf"
            )
    return (
        "allow unprivileged user namespaces (kernel.unprivileged_userns_clone=1, "
        "user.max_user_namespaces > 0); inside a container, run it privileged"
    )


def _user_namespaces(_settings: Settings) -> Check:
    root = os.geteuid() == 0
    # The judge's sandbox creates one as an unprivileged uid; rootless Podman and
    # a non-root sandbox for local jobs need one for the user itself.
    pillars: tuple[Pillar, ...] = ("judge",) if root else ALL_PILLARS
    who = f"uid {SANDBOX_UID}" if root else f"uid {os.geteuid()}"
    unshare = shutil.which("unshare")
    if unshare is None:
        return Check(
            "user namespaces",
            False,
            "unshare not found",
            "apt-get install util-linux",
            pillars=pillars,
        )
    try:
        done = _run_as([unshare, "--user", "true"], SANDBOX_UID if root else None)
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("user namespaces", False, f"{who}: {exc}", "", pillars=pillars)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-300:]
        return Check(
            "user namespaces",
            False,
            f"{who} cannot create a user namespace: {said}",
            userns_fix(_read_sysctls()),
            pillars=pillars,
        )
    return Check("user namespaces", True, f"{who} created a user namespace", pillars=pillars)


def _controllers(mountinfo: str, read: Callable[[str], str | None]) -> tuple[str, set[str]]:
    """The cgroup version in use at /sys/fs/cgroup and the controllers it offers."""
    from hpcbox.infra.isolation.cgroup.detect import parse_mountinfo

    root = "/sys/fs/cgroup"
    mounts = parse_mountinfo(mountinfo)
    if any(m.fstype == "cgroup2" and m.mount_point == root for m in mounts):
        return "v2", set((read(f"{root}/cgroup.controllers") or "").split())
    found = {opt for m in mounts if m.fstype == "cgroup" for opt in m.super_options}
    hybrid = any(m.fstype == "cgroup2" for m in mounts)
    return ("v1 (hybrid)" if hybrid else "v1"), found & {"cpu", "cpuacct", "memory", "pids"}


def cgroup_check(mountinfo: str, read: Callable[[str], str | None]) -> Check:
    """Whether the memory, cpu and pids controllers are there (cgroup v1 or v2).

    Clusters need memory and cpu (the workers' limits); jobs and the judge all three.
    """
    version, found = _controllers(mountinfo, read)
    wanted = ("memory", "cpu", "pids")
    missing = [c for c in wanted if c not in found]
    if not missing:
        return Check(
            "cgroup controllers",
            True,
            f"cgroup {version}: {', '.join(wanted)}",
            pillars=ALL_PILLARS,
        )
    pillars: tuple[Pillar, ...] = (
        ALL_PILLARS if {"memory", "cpu"} & set(missing) else ("jobs", "judge")
    )
    if version == "v2":
        flags = " ".join(f"cgroup_enable={c}" for c in missing)
        fix = (
            f"the kernel offers no {', '.join(missing)} controller: add {flags} to the kernel "
            "command line (GRUB_CMDLINE_LINUX in /etc/default/grub), update-grub, reboot"
        )
    else:
        fix = " && ".join(
            f"mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}"
            for c in missing
        )
    return Check(
        "cgroup controllers",
        False,
        f"cgroup {version} lacks {', '.join(missing)}",
        fix,
        pillars=pillars,
    )


def _cgroups(_settings: Settings) -> Check:
    def read(path: str) -> str | None:
        try:
            return Path(path).read_text()
        except OSError:
            return None

    return cgroup_check(read("/proc/self/mountinfo") or "", read)


def _judge_rootfs(settings: Settings) -> Check:
    from hpcbox.judge.languages import load_registry
    from hpcbox.judge.rootfs import is_built, rootfs_path
    from hpcbox.judge.runtime_dir import (
        SYSTEM_CACHE_DIR,
        check_cache_dir,
        check_reachable,
        judge_cache_dir,
    )

    pillars: tuple[Pillar, ...] = ("judge",)
    cache = judge_cache_dir(settings)
    packages = [lang.package for lang in load_registry().values() if lang.package]
    path = rootfs_path(cache, packages)
    if not is_built(path):
        return Check(
            "judge root filesystem",
            False,
            f"not built ({path})",
            "hpcbox judge setup (debootstrap as root, a few minutes)",
            pillars=pillars,
        )
    try:
        check_cache_dir(cache)
        # The sandbox runs as an unprivileged uid: it must reach the root filesystem
        # (checked as that uid when root; a no-op otherwise).
        check_reachable(path / "usr" / "bin" / "python3")
    except HpcboxError as exc:
        return Check(
            "judge root filesystem",
            False,
            str(exc),
            "leave HPCBOX_JUDGE_CACHE unset (root's runtime then lives in "
            f"{SYSTEM_CACHE_DIR}/judge) or point it at a directory owned by root, "
            "writable by no one else and searchable by every user; then hpcbox judge setup",
            pillars=pillars,
        )
    return Check("judge root filesystem", True, f"ready at {path}", pillars=pillars)


def _tool(name: str, package: str, purpose: str) -> Callable[[Settings], Check]:
    def check(_settings: Settings) -> Check:
        path = shutil.which(name)
        if path is None:
            return Check(
                name,
                False,
                f"not found ({purpose})",
                f"apt-get install {package}",
                pillars=("jobs",),
                optional=True,
            )
        return Check(name, True, f"{path} ({purpose})", pillars=("jobs",), optional=True)

    check.__name__ = f"_{name}"
    return check


_CHECKS: list[Callable[[Settings], Check]] = [
    _store,
    _bubblewrap,
    _sandbox,
    _user_namespaces,
    _cgroups,
    _judge_rootfs,
    _tool("sbatch", "slurm-client", "SLURM client, for local SLURM targets"),
    _tool("mpirun", "openmpi-bin", "MPI in local jobs"),
]


def run_checks(
    settings: Settings, *, containers: bool = True, dns_timeout: float = 10.0
) -> list[Check]:
    """Run every check (with ``containers``, the container checks too); none raises."""
    results: list[Check] = []
    for check in _CHECKS:
        started = time.monotonic()
        try:
            result = check(settings)
        except Exception as exc:  # a check must report, never crash the doctor
            result = Check(check.__name__.strip("_"), False, f"check failed: {exc}")
        results.append(replace(result, seconds=time.monotonic() - started))
    if containers:
        try:
            results.extend(container_checks(settings, dns_timeout=dns_timeout))
        except Exception as exc:  # reported as a failed check, never a crash
            results.append(
                clusters_check(ENGINE_CHECK, False, f"check failed: {exc}", "see the error")
            )
    return results
