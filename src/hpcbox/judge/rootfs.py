"""The judge's runtime root filesystem: built with debootstrap, cached, content-addressed.

The key is a hash of the suite, variant and package list, so changing the
languages' packages builds a new root filesystem next to the old one and never
patches one in place. A build goes to a temporary directory and is renamed into
place when complete; a lock file serialises builders on one machine, and the one
holding it removes what builders that died left behind.

Where the cache directory is, and what makes it trusted and reachable by the
sandbox's uid, is :mod:`hpcbox.judge.runtime_dir`. debootstrap runs with umask
022, so the root filesystem is readable (never writable) by that uid whatever
root's umask is.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from hpcbox.core.errors import PermanentError, TransientError, UnavailableError
from hpcbox.judge.runtime_dir import (
    SANDBOX_UID,
    check_cache_dir,
    check_reachable,
    prepare_cache_dir,
)

__all__ = [
    "DEFAULT_MIRROR",
    "SUITE",
    "check_cache_dir",
    "ensure_rootfs",
    "installed_versions",
    "is_built",
    "parse_dpkg_status",
    "rootfs_key",
    "rootfs_path",
    "upstream_version",
]

SUITE = "bookworm"
VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Always installed: the sandbox supervisor runs on the rootfs's own Python.
BASE_PACKAGES = ("python3",)
_MARKER = ".hpcbox-rootfs"
_BUILD_PREFIX = ".build-"
#: How long a cancelled debootstrap may take to undo its mounts and exit.
_CANCEL_WAIT_S = 60.0

_log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def rootfs_key(packages: Iterable[str]) -> str:
    """Content address of the root filesystem holding ``packages`` (16 hex digits)."""
    names = sorted(set(packages) | set(BASE_PACKAGES))
    text = f"{SUITE} {VARIANT} {' '.join(names)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rootfs_path(cache_dir: Path, packages: Iterable[str]) -> Path:
    """Where the root filesystem for ``packages`` lives (built or not)."""
    return Path(cache_dir) / f"rootfs-{rootfs_key(packages)}"


def is_built(path: Path) -> bool:
    """Whether ``path`` holds a completely built root filesystem."""
    return (path / _MARKER).is_file()


def ensure_rootfs(
    cache_dir: Path,
    packages: Iterable[str],
    *,
    mirror: str = DEFAULT_MIRROR,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    reader_uid: int | None = SANDBOX_UID,
) -> Path:
    """Return the built root filesystem for ``packages``, building it first if missing.

    Building runs ``debootstrap --variant=minbase --include=...`` (a few minutes on
    a fast mirror) and reports each of its lines to ``progress``. ``cancel``, once
    set, stops a build (debootstrap is terminated and undoes its mounts).
    ``reader_uid``: the uid that must reach the root filesystem (the sandbox's;
    None: not checked), checked for the cache directory before a build and for the
    root filesystem before it is returned.

    Raise UnavailableError if debootstrap is missing or not root, PermanentError if
    the build fails (its last output lines in the message), ``cache_dir`` is not
    trusted or ``reader_uid`` cannot reach it (see :mod:`hpcbox.judge.runtime_dir`),
    TransientError if cancelled.
    """
    names = sorted(set(packages) | set(BASE_PACKAGES))
    cache_dir = Path(cache_dir).absolute()
    target = rootfs_path(cache_dir, names)
    if os.path.lexists(cache_dir):
        check_cache_dir(cache_dir)
    if is_built(target):
        _check_reader(target, reader_uid)
        return target
    say = progress or (lambda _line: None)
    if shutil.which("debootstrap") is None:
        raise UnavailableError("debootstrap not found; install it: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise UnavailableError("building the judge's root filesystem needs root (debootstrap)")
    prepare_cache_dir(cache_dir)
    if reader_uid is not None:
        check_reachable(cache_dir, reader_uid)
    with _open_lock(cache_dir) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built(target):  # another process built it while we waited
            _check_reader(target, reader_uid)
            return target
        _remove_stale_builds(cache_dir)
        build = cache_dir / f"{_BUILD_PREFIX}{target.name}-{os.getpid()}"
        say(f"building the judge runtime ({', '.join(names)}) into {target}")
        started = time.monotonic()
        argv = ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(names)}"]
        argv += [SUITE, str(build), mirror]
        try:
            status, tail = _run_streaming(argv, say, cancel)
        except BaseException:
            _remove_build(build)
            raise
        if cancel is not None and cancel.is_set():
            _remove_build(build)
            raise TransientError("the judge runtime's build was cancelled", retry_after=5.0)
        if status != 0 or not (build / "usr/bin/python3").exists():
            _remove_build(build)
            raise PermanentError(f"debootstrap failed (exit status {status}):\n" + "\n".join(tail))
        (build / "box").mkdir(mode=0o755, exist_ok=True)
        os.chmod(build, 0o755)  # noqa: S103 - read (never written) by the sandbox uid
        seconds = time.monotonic() - started
        (build / _MARKER).write_text(f"{' '.join(names)}\nbuilt in {seconds:.0f} s\n")
        shutil.rmtree(target, ignore_errors=True)
        build.rename(target)
        say(f"judge runtime ready in {seconds:.0f} s")
    _check_reader(target, reader_uid)
    return target


def _check_reader(rootfs: Path, reader_uid: int | None) -> None:
    if reader_uid is not None:
        check_reachable(rootfs / "usr/bin/python3", reader_uid)


def _open_lock(cache_dir: Path) -> IO[bytes]:
    """The builders' lock file, never through a symlink and never truncated."""
    fd = os.open(cache_dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "rb+")


def _mounts_beneath(path: Path) -> list[str]:
    """Mount points at or under ``path`` (debootstrap mounts /proc and /sys there)."""
    prefix = str(path).rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as info:
            lines = info.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            # Octal escapes (\040 for a space) as the kernel writes them.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == str(path) or point.startswith(prefix):
                points.append(point)
    return points


def _remove_build(build: Path) -> None:
    """Remove a build directory, unless something is still mounted in it (never
    delete through a mount: /proc or /sys of the host)."""
    if not os.path.lexists(build):
        return
    mounted = _mounts_beneath(build)
    if mounted:
        _log.warning("left %s in place: still mounted there: %s", build, ", ".join(mounted))
        return
    shutil.rmtree(build, ignore_errors=True)


def _remove_stale_builds(cache_dir: Path) -> None:
    """With the builders' lock held, every build directory is a dead builder's."""
    for entry in os.scandir(cache_dir):
        if entry.name.startswith(_BUILD_PREFIX):
            _remove_build(Path(entry.path))


def _run_streaming(
    argv: list[str], say: Progress, cancel: threading.Event | None
) -> tuple[int, list[str]]:
    """Run ``argv``, each line of its output to ``say``; its exit status and last lines."""
    tail: list[str] = []
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        umask=0o022,  # the sandbox uid reads the tree, whatever root's umask is
    ) as proc:
        stop = threading.Event()
        if cancel is not None:
            threading.Thread(
                target=_terminate_on,
                args=(proc, cancel, stop),
                name="hpcbox-rootfs-cancel",
                daemon=True,
            ).start()
        try:
            for raw in proc.stdout or ():
                line = raw.decode(errors="replace").rstrip()
                say(line)
                tail = [*tail[-19:], line]
        except BaseException:  # interrupted (Ctrl-C): debootstrap undoes its mounts
            _terminate(proc)
            raise
        finally:
            stop.set()
    return proc.returncode, tail


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, which debootstrap traps to unmount what it mounted, then wait."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_CANCEL_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _terminate_on(
    proc: subprocess.Popen[bytes], cancel: threading.Event, stop: threading.Event
) -> None:
    while not stop.is_set() and proc.poll() is None:
        if cancel.wait(0.5):
            _terminate(proc)
            return


def parse_dpkg_status(text: str) -> dict[str, str]:
    """Installed package -> version, from the text of ``/var/lib/dpkg/status``."""
    out: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith(" "):
                fields[key] = value.strip()
        if "installed" in fields.get("Status", "").split() and "Package" in fields:
            out[fields["Package"]] = fields.get("Version", "")
    return out


_UPSTREAM = re.compile(r"^(?:\d+:)?([^+~-]+)")


def upstream_version(debian_version: str) -> str:
    """The upstream part of a Debian version: ``4:12.2.0-3`` -> ``12.2.0``,
    ``18.19.0+dfsg-6~deb12u2`` -> ``18.19.0``, ``17.0.13+11-2~deb12u1`` -> ``17.0.13``."""
    match = _UPSTREAM.match(debian_version.strip())
    return match.group(1) if match else debian_version


def installed_versions(rootfs: Path) -> dict[str, str]:
    """Package -> upstream version, for every package installed in ``rootfs``."""
    status = (Path(rootfs) / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    return {k: upstream_version(v) for k, v in parse_dpkg_status(status).items()}
