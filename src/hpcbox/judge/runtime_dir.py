"""Where the judge's runtime root filesystems live, and why that place is safe.

The judge runs untrusted programs as an unprivileged host uid (``nobody``, see
:class:`hpcbox.judge.sandbox.UntrustedSandbox`), and bubblewrap opens the runtime
root filesystem as that uid: every directory above the root filesystem must be
searchable by it. A state directory under a home is not (``/root`` is 0700, and so
is every home Debian 12 creates), so the runtime does not live there for root.

Location (:func:`judge_cache_dir`), first match wins:

1. ``HPCBOX_JUDGE_CACHE``: exactly that directory (tests and benchmarks share one);
2. running as root: ``<system cache>/judge``, where ``<system cache>`` is
   ``HPCBOX_SYSTEM_CACHE_DIR`` or :data:`SYSTEM_CACHE_DIR` (``/var/cache/hpcbox``),
   whatever ``HPCBOX_HOME`` is: one runtime per machine, shared by every state
   directory (it is content-addressed, so sharing is safe);
3. anyone else: ``<HPCBOX_HOME>/judge``. Building and using the runtime need root
   (debootstrap, cgroups, the uid drop), so a process that is not root only ever
   finds the runtime missing there and says so; it never reads root's.

Trust (:func:`check_cache_dir`, :func:`prepare_cache_dir`): root builds into the
directory and then runs sandboxes on what it holds, so another user must be unable
to supply a root filesystem, plant a symlink or swap a directory on the way there:

- the directory itself is a real directory (never a symlink), owned by root or the
  current user, and writable by neither its group nor others;
- every directory above it, as named and as resolved, is owned by root or the
  current user and writable by neither group nor others, unless sticky (``/tmp``:
  others cannot rename or remove what root made there);
- directories hpcbox creates are made 0755 whatever the umask (set through a
  descriptor opened without following links), so the sandbox uid can reach them.

Reachability (:func:`check_reachable`) is checked for real, as the sandbox's uid
with no supplementary groups, so a mode, an ACL or a mount option anywhere on the
way that keeps it out is caught before a build of minutes, with the fix named.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

from hpcbox.core.errors import PermanentError
from hpcbox.core.settings import Settings

__all__ = [
    "SANDBOX_UID",
    "SYSTEM_CACHE_DIR",
    "check_cache_dir",
    "check_reachable",
    "judge_cache_dir",
    "prepare_cache_dir",
]

#: The base of hpcbox's machine-wide caches, when ``HPCBOX_SYSTEM_CACHE_DIR`` is unset.
SYSTEM_CACHE_DIR = Path("/var/cache/hpcbox")
#: The host uid (and gid) the untrusted sandbox runs programs as: ``nobody``.
SANDBOX_UID = 65534
#: Mode of every directory hpcbox creates on the way to the runtime.
_DIR_MODE = 0o755
#: ``test`` from coreutils, run as the sandbox uid (never one found through PATH,
#: which may lead through a directory that uid cannot enter).
_TEST_PROGRAMS = ("/usr/bin/test", "/bin/test")


def judge_cache_dir(settings: Settings) -> Path:
    """The directory that holds the judge's runtime root filesystems (see the
    module docstring for the rules), from ``settings.judge``."""
    if settings.judge.cache is not None:
        return settings.judge.cache.absolute()
    if os.geteuid() == 0:
        base = settings.judge.system_cache_dir or SYSTEM_CACHE_DIR
        return base.absolute() / "judge"
    return Path(settings.home).absolute() / "judge"


def _trusted_owner(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def _check_ancestor(path: Path, st: os.stat_result, cache_dir: Path) -> None:
    if not stat.S_ISDIR(st.st_mode):
        raise PermanentError(f"{path}, above the judge cache {cache_dir}, is not a directory")
    if not _trusted_owner(st):
        raise PermanentError(
            f"{path}, above the judge cache {cache_dir}, belongs to uid {st.st_uid}: "
            "another user could swap the runtime; set HPCBOX_JUDGE_CACHE elsewhere"
        )
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise PermanentError(
            f"{path}, above the judge cache {cache_dir}, is writable by others "
            f"(mode {st.st_mode & 0o7777:o}): chmod go-w {path}, or set HPCBOX_JUDGE_CACHE "
            "elsewhere"
        )


def _existing_ancestors(cache_dir: Path) -> list[Path]:
    """The directories above ``cache_dir`` that exist, from ``/`` down, as named and
    as resolved (a symlink on the way is judged by the directories it leads through)."""
    parent = cache_dir.parent
    chains = [parent, Path(os.path.realpath(parent))]
    seen: dict[Path, None] = {}
    for chain in chains:
        for path in [*reversed(chain.parents), chain]:
            if path not in seen and os.path.lexists(path):
                seen[path] = None
    return list(seen)


def check_cache_dir(cache_dir: Path) -> None:
    """Raise PermanentError unless ``cache_dir`` and every directory above it can be
    trusted (see the module docstring); ``cache_dir`` must exist."""
    cache_dir = Path(cache_dir).absolute()
    for path in _existing_ancestors(cache_dir):
        _check_ancestor(path, os.stat(path), cache_dir)
    st = os.lstat(cache_dir)
    if not stat.S_ISDIR(st.st_mode):
        raise PermanentError(f"the judge cache {cache_dir} is not a directory (or a symlink)")
    if not _trusted_owner(st):
        raise PermanentError(
            f"the judge cache {cache_dir} belongs to uid {st.st_uid}, not {os.geteuid()}: "
            "remove it or set HPCBOX_JUDGE_CACHE elsewhere"
        )
    if st.st_mode & 0o022:
        raise PermanentError(
            f"the judge cache {cache_dir} is writable by others (mode {st.st_mode & 0o7777:o}): "
            f"chmod go-w {cache_dir}"
        )


def prepare_cache_dir(cache_dir: Path) -> Path:
    """Create ``cache_dir`` and the missing directories above it (0755, whatever the
    umask), then check that all of it can be trusted; the absolute path.

    Raise PermanentError for an untrusted directory on the way (one that exists is
    never changed) and OSError when a directory cannot be created.
    """
    cache_dir = Path(cache_dir).absolute()
    for path in _existing_ancestors(cache_dir):
        _check_ancestor(path, os.stat(path), cache_dir)
    missing = [p for p in [*reversed(cache_dir.parents), cache_dir] if not os.path.lexists(p)]
    for path in missing:
        with contextlib.suppress(FileExistsError):  # made meanwhile: checked below
            os.mkdir(path, _DIR_MODE)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fchmod(fd, _DIR_MODE)  # the umask may have taken bits away
            finally:
                os.close(fd)
    check_cache_dir(cache_dir)
    return cache_dir


def _blocking_component(path: Path, uid: int) -> str:
    """The first directory on the way to ``path`` whose mode keeps ``uid`` out, as
    advice for a message (ACLs aside)."""
    for part in [*reversed(path.parents), path]:
        try:
            st = os.stat(part)
        except OSError:
            return f"{part} cannot be read"
        allowed = stat.S_IXUSR if st.st_uid == uid else stat.S_IXOTH
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & allowed:
            return f"{part} is mode {st.st_mode & 0o7777:o}"
    return "an ACL or a mount option on the way keeps it out"


def check_reachable(path: Path, uid: int = SANDBOX_UID) -> None:
    """Raise PermanentError unless ``uid`` (with gid ``uid`` and no supplementary
    groups, as the sandbox runs) can reach ``path``: search every directory on the
    way, and execute ``path`` itself. Checked only as root (only root can switch
    to ``uid``); a no-op otherwise, and where coreutils' ``test`` is missing."""
    if os.geteuid() != 0:
        return
    program = next((p for p in _TEST_PROGRAMS if os.path.isfile(p)), None)
    if program is None:
        return
    try:
        done = subprocess.run(
            [program, "-x", str(path)],
            user=uid,
            group=uid,
            extra_groups=[],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PermanentError(f"cannot check that uid {uid} reaches {path}: {exc}") from exc
    if done.returncode != 0:
        why = _blocking_component(Path(path), uid)
        raise PermanentError(
            f"the sandbox's uid {uid} cannot reach {path} ({why}): "
            "leave HPCBOX_JUDGE_CACHE unset (root's runtime then lives in "
            f"{SYSTEM_CACHE_DIR}/judge) or point it at a directory every user can search"
        )
