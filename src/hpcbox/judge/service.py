"""JudgeService: the real :class:`hpcbox.judge.model.JudgeFunction`.

Owns the language registry, the runtime root filesystem (built on first use if
missing; where it lives: :mod:`hpcbox.judge.runtime_dir`), the untrusted sandbox
factory and its warm pool. Thread-safe: many submissions may be judged at once
(each run has its own box), and a start-up of minutes (a build of the runtime)
holds up only the callers that need the judge, never :meth:`pool_occupancy` or
:meth:`close`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from hpcbox.core.errors import HpcboxError, InvalidInputError, UnavailableError
from hpcbox.core.progress import LineReporter, Reporter
from hpcbox.core.settings import Settings
from hpcbox.judge.languages import Language, load_registry, name_with_versions
from hpcbox.judge.model import JudgeResult, Submission, TestCase, TestObserver, Verdict
from hpcbox.judge.pipeline import judge_submission, run_env
from hpcbox.judge.rootfs import ensure_rootfs, installed_versions, is_built, rootfs_path
from hpcbox.judge.runtime_dir import SANDBOX_UID, judge_cache_dir
from hpcbox.judge.sandbox.box import WarmBox
from hpcbox.judge.sandbox.factory import UntrustedSandbox
from hpcbox.judge.sandbox.pool import WarmPool

__all__ = ["DEFAULT_POOL_SIZE", "JudgeService", "judge_cache_dir"]

log = logging.getLogger(__name__)

#: Warm boxes kept per language when no size is given.
DEFAULT_POOL_SIZE = 2


def _log_reporter() -> Reporter:
    """Start-up progress to the log, when nobody watches (``hpcbox serve``, a worker)."""
    return LineReporter(lambda line: log.info("judge: %s", line))


#: debootstrap's output lines ``I: <Verb> ...``, and what each verb means it waits for.
_DEBOOTSTRAP_PHASES = {
    "Retrieving": "debootstrap: downloading packages",
    "Validating": "debootstrap: downloading packages",
    "Checking": "debootstrap: downloading packages",
    "Resolving": "debootstrap: resolving dependencies",
    "Found": "debootstrap: resolving dependencies",
    "Extracting": "debootstrap: extracting the base system",
    "Installing": "debootstrap: installing packages",
    "Unpacking": "debootstrap: unpacking packages",
    "Configuring": "debootstrap: configuring packages",
    "Base": "debootstrap: done",
}


class _DebootstrapLines:
    """debootstrap's lines to a Reporter: every line as raw output, and what the
    step waits for whenever debootstrap moves to another phase."""

    def __init__(self, say: Reporter) -> None:
        self._say = say
        self._phase = ""

    def __call__(self, line: str) -> None:
        self._say.output(line)
        verb = line[3:].split(" ", 1)[0] if line.startswith("I: ") else ""
        phase = _DEBOOTSTRAP_PHASES.get(verb, "")
        if phase and phase != self._phase:
            self._phase = phase
            self._say.waiting(phase)


class JudgeService:
    """Judges submissions in untrusted sandboxes taken from a warm pool.

    ``pool_size``: warm boxes per language (an int for all, a mapping per language
    key, in which ``"*"`` sizes the languages not named and others get none, or
    None for :data:`DEFAULT_POOL_SIZE`). ``rootfs_cache``: where the runtime is
    cached (default: :func:`judge_cache_dir`). Nothing starts in the constructor;
    the first use builds the root filesystem if needed and starts the pool, each
    step reported to ``progress`` (default: the log).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        pool_size: int | Mapping[str, int] | None = None,
        rootfs_cache: Path | None = None,
        progress: Reporter | None = None,
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
        self._progress = progress or _log_reporter()
        #: Guards the state below; held only briefly.
        self._lock = threading.Lock()
        #: Held through a start-up (minutes when the runtime is built): one at a time.
        self._starting = threading.Lock()
        #: Set by close(): stops a build under way, and any later start.
        self._closed = threading.Event()
        self._factory: UntrustedSandbox | None = None
        self._pool: WarmPool | None = None
        self._named: dict[str, Language] | None = None
        self._working: list[Language] | None = None

    # -- start-up -------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        """Where the runtime root filesystems are cached."""
        return self._cache

    def _started(self) -> tuple[WarmPool, UntrustedSandbox, dict[str, Language]] | None:
        with self._lock:
            if self._pool is not None and self._factory is not None and self._named is not None:
                return self._pool, self._factory, self._named
            return None

    def _ensure_started(self) -> tuple[WarmPool, UntrustedSandbox, dict[str, Language]]:
        started = self._started()
        if started is not None:
            return started
        with self._starting:
            started = self._started()
            if started is not None:
                return started
            if self._closed.is_set():
                raise UnavailableError("the judge service is closed")
            return self._start()

    def _start(self) -> tuple[WarmPool, UntrustedSandbox, dict[str, Language]]:
        say = self._progress
        packages = [lang.package for lang in self._registry.values() if lang.package]

        def build() -> Path:
            return ensure_rootfs(
                self._cache,
                packages,
                progress=_DebootstrapLines(say),
                cancel=self._closed,
                reader_uid=SANDBOX_UID,
            )

        if is_built(rootfs_path(self._cache, packages)):
            rootfs = build()
        else:  # minutes: a step of its own
            with say.step(
                f"building the judge runtime in {self._cache}",
                waiting_for="debootstrap (a few minutes)",
            ):
                rootfs = build()
        say.output(f"judge runtime: {rootfs}")
        return self._start_sandbox(rootfs)  # well under a second: no step

    def _start_sandbox(
        self, rootfs: Path
    ) -> tuple[WarmPool, UntrustedSandbox, dict[str, Language]]:
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
            rootfs,
            host_uid=SANDBOX_UID,
            fork_env=fork_env,
            max_running=max(1, os.cpu_count() or 1) + 1,
        )
        try:
            factory.check()
            versions = installed_versions(rootfs)
            named = {k: name_with_versions(lang, versions) for k, lang in self._registry.items()}
            pool = WarmPool(factory, self._sizes, forked=forked)
        except BaseException:
            factory.close()
            raise
        with self._lock:
            # close() meanwhile: it found nothing to close, so this start does.
            closed = self._closed.is_set()
            if not closed:
                self._named, self._factory, self._pool = named, factory, pool
        if closed:
            pool.close()
            factory.close()
            raise UnavailableError("the judge service is closed")
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

    def language_keys(self) -> list[str]:
        """Every language the registry knows, working or not (starts nothing)."""
        return list(self._registry)

    def languages(self) -> list[Language]:
        """Languages installed AND working: each smoke program must print "ok".

        Checked once (a few seconds: every compiler runs), then cached. The first
        call starts the service (see :meth:`_ensure_started`: minutes when the
        runtime must be built); raises what that start raises.
        """
        with self._lock:
            if self._working is not None:
                return list(self._working)
        named = self._ensure_started()[2]
        say = self._progress
        working: list[Language] = []
        with say.step("checking the judge's languages", waiting_for="a smoke program in each"):
            for lang in named.values():
                say.waiting(f"{lang.key}: compiling and running its smoke program")
                result = self(
                    Submission(
                        language=lang.key,
                        source=lang.smoke_source.encode(),
                        tests=(TestCase(expected_output=b"ok\n"),),
                    )
                )
                if result.verdict is Verdict.ACCEPTED:
                    working.append(lang)
                    say.output(f"{lang.key}: ok")
                else:
                    log.warning(
                        "language %s does not work: %s %s", lang.key, result.verdict, result
                    )
                    say(f"{lang.key} does not work: {result.verdict.value} {result.message}")
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
        """Destroy every warm sandbox and wait for their cleanup; stop a start-up
        under way (a build of the runtime is cancelled) without waiting for it.
        Idempotent; a closed service does not start again."""
        self._closed.set()
        with self._lock:
            pool, factory = self._pool, self._factory
            self._pool = self._factory = self._named = None
        if pool is not None:
            pool.close()
        if factory is not None:
            factory.close()
