"""JudgeService: the real :class:`hpcbox.core.judge.JudgeFunction`.

Owns the language registry, the runtime root filesystem (built on first use if
missing), the untrusted sandbox factory and its warm pool. Thread-safe: many
submissions may be judged at once (each run has its own box).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from hpcbox.core.errors import HpcboxError, InvalidInputError
from hpcbox.core.judge import JudgeResult, Submission, TestCase, TestObserver, Verdict
from hpcbox.core.settings import Settings
from hpcbox.judge.languages import Language, load_registry, name_with_versions
from hpcbox.judge.pipeline import judge_submission, run_env
from hpcbox.judge.rootfs import ensure_rootfs, installed_versions
from hpcbox.sandbox.untrusted.box import UntrustedSandbox, WarmBox
from hpcbox.sandbox.untrusted.pool import WarmPool

__all__ = ["DEFAULT_POOL_SIZE", "JudgeService", "judge_cache_dir"]

log = logging.getLogger(__name__)

#: Warm boxes kept per language when no size is given.
DEFAULT_POOL_SIZE = 2


def judge_cache_dir(settings: Settings) -> Path:
    """Where runtime root filesystems are cached: ``$HPCBOX_JUDGE_CACHE`` (shared by
    every hpcbox home on a machine, e.g. in tests) or ``<home>/judge``."""
    env = os.environ.get("HPCBOX_JUDGE_CACHE")
    return Path(env) if env else settings.home / "judge"


class JudgeService:
    """Judges submissions in untrusted sandboxes taken from a warm pool.

    ``pool_size``: warm boxes per language (an int for all, a mapping per language
    key, in which ``"*"`` sizes the languages not named and others get none, or
    None for :data:`DEFAULT_POOL_SIZE`). Nothing starts in the constructor;
    the first use builds the root filesystem if needed (reported to
    ``progress``) and starts the pool.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        pool_size: int | Mapping[str, int] | None = None,
        rootfs_cache: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._registry = load_registry()
        if pool_size is None:
            pool_size = DEFAULT_POOL_SIZE
        if isinstance(pool_size, int):
            sizes = dict.fromkeys(self._registry, pool_size)
        else:
            unknown = set(pool_size) - set(self._registry) - {"*"}
            if unknown:
                raise InvalidInputError(
                    f"unknown languages {sorted(unknown)}; one of {sorted(self._registry)}",
                    field="pool_size",
                )
            rest = int(pool_size.get("*", 0))
            sizes = {k: int(pool_size.get(k, rest)) for k in self._registry}
        if any(v < 0 for v in sizes.values()):
            raise InvalidInputError("pool sizes must be >= 0", field="pool_size")
        self._sizes = sizes
        self._cache = rootfs_cache or judge_cache_dir(settings)
        self._progress = progress
        self._lock = threading.Lock()
        self._factory: UntrustedSandbox | None = None
        self._pool: WarmPool | None = None
        self._named: dict[str, Language] | None = None
        self._working: list[Language] | None = None

    # -- start-up -------------------------------------------------------------

    def _ensure_started(self) -> tuple[WarmPool, UntrustedSandbox, dict[str, Language]]:
        with self._lock:
            if self._pool is not None and self._factory is not None and self._named is not None:
                return self._pool, self._factory, self._named
            packages = [lang.package for lang in self._registry.values() if lang.package]
            rootfs = ensure_rootfs(self._cache, packages, progress=self._progress or log.info)
            forked = [k for k, lang in self._registry.items() if lang.fork_server]
            # The fork-server starts with the environment of the first language
            # forked from it; runs of another environment are exec'd as usual.
            fork_env = run_env(self._registry[forked[0]]) if forked else None
            # One program running at once per CPU, and one more: a run's slot is
            # held from its baseline measurement to its last one, and the host's
            # part of that (in Python, among many threads) is not the program's
            # CPU time. bench/judge.py, C batches on 2 CPUs: 0.72x with 2 slots,
            # 0.76x with 3 or 4.
            factory = UntrustedSandbox(
                rootfs, fork_env=fork_env, max_running=max(1, os.cpu_count() or 1) + 1
            )
            factory.check()
            versions = installed_versions(rootfs)
            named = {k: name_with_versions(lang, versions) for k, lang in self._registry.items()}
            pool = WarmPool(factory, self._sizes, forked=forked)
            self._named, self._factory, self._pool = named, factory, pool
            return pool, factory, named

    def _take(self, key: str) -> WarmBox:
        return self._ensure_started()[0].take(key)

    @property
    def rootfs(self) -> Path:
        """The runtime root filesystem (built now if missing)."""
        return self._ensure_started()[1].rootfs

    def wait_warm(self, timeout: float = 60.0) -> bool:
        """Block until every language's pool is full; True if it filled in time."""
        return self._ensure_started()[0].wait_ready(timeout)

    # -- the JudgeFunction --------------------------------------------------

    def __call__(
        self, submission: Submission, *, on_test: TestObserver | None = None
    ) -> JudgeResult:
        """Judge ``submission``; never raises for what the program does.

        InvalidInputError for an unknown language or unsplittable options (the
        caller's input); any failure of hpcbox itself is INTERNAL_ERROR.
        """
        try:
            named = self._ensure_started()[2]
            return judge_submission(submission, named, self._take, on_test=on_test)
        except InvalidInputError:
            raise
        except (HpcboxError, OSError) as exc:
            log.exception("judging failed")
            return JudgeResult(verdict=Verdict.INTERNAL_ERROR, message=str(exc))

    # -- languages and metrics -------------------------------------------------

    def languages(self) -> list[Language]:
        """Languages installed AND working: each smoke program must print "ok".

        Checked once (a few seconds: every compiler runs), then cached.
        """
        with self._lock:
            if self._working is not None:
                return list(self._working)
        working: list[Language] = []
        for lang in self._ensure_started()[2].values():
            result = self(
                Submission(
                    language=lang.key,
                    source=lang.smoke_source.encode(),
                    tests=(TestCase(expected_output=b"ok\n"),),
                )
            )
            if result.verdict is Verdict.ACCEPTED:
                working.append(lang)
            else:
                log.warning("language %s does not work: %s %s", lang.key, result.verdict, result)
        with self._lock:
            self._working = working
        return list(working)

    def pool_occupancy(self) -> dict[str, int]:
        """Ready warm sandboxes per language (zeros before the first use)."""
        with self._lock:
            pool = self._pool
        if pool is None:
            return dict.fromkeys(self._registry, 0)
        return pool.occupancy()

    def close(self) -> None:
        """Destroy every warm sandbox and wait for their cleanup. Idempotent."""
        with self._lock:
            pool, factory = self._pool, self._factory
            self._pool = self._factory = self._named = None
        if pool is not None:
            pool.close()
        if factory is not None:
            factory.close()
