"""The judge queue: accept submissions, run them in-process or through Celery.

Embedded (the default): a few threads in this process claim submissions from the
store, highest priority first and oldest first within a priority, and judge them.

With ``HPCBOX_BROKER_URL``: each new submission is sent to Celery by task name and
``hpcbox worker`` processes (any number, on any machines sharing the database) run
them. Either way the state lives in the database; a maintenance thread purges
expired results and, with a broker, sends again the submissions whose worker died
(its lease ran out) or whose message was lost.

Start-up: :meth:`JudgeQueue.start` prepares the judge in a thread of its own
(building its runtime can take minutes on a fresh machine). Until the judge is
ready, what needs it (its languages, hence every new submission) raises
:class:`JudgeNotReadyError`, a TransientError that the shells answer at once
(503 with ``Retry-After``); reading stored submissions works all along. A start
that fails is tried again, later and later.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Engine

from hpcbox.core.errors import InvalidInputError, NotFoundError, TransientError, UnavailableError
from hpcbox.core.progress import LineReporter, Reporter
from hpcbox.core.settings import Settings
from hpcbox.judge.model import JudgeFunction, Submission, is_terminal
from hpcbox.judge.queue.callbacks import CallbackSender
from hpcbox.judge.queue.celery_app import TASK_NAME, broker_priority, make_client
from hpcbox.judge.queue.config import QueueConfig
from hpcbox.judge.queue.runner import run_claimed
from hpcbox.judge.store.repository import SubmissionRecord, SubmissionStore

__all__ = [
    "JudgeBackend",
    "JudgeNotReadyError",
    "JudgeQueue",
    "JudgeReadiness",
    "JudgeStatus",
    "LanguageInfo",
    "StartupTracker",
    "Waiter",
    "load_judge_service",
    "open_judge_queue",
]

_log = logging.getLogger(__name__)
_LANGUAGES_TTL_S = 60.0
_PURGE_EVERY_S = 60.0
#: A queued submission whose message may have been lost is sent again after this
#: many leases (duplicates are harmless: the claim lets only one run).
_RESEND_AFTER_LEASES = 4
#: How often a waiter (wait=true) reads the store: from the first delay, doubling up
#: to the last. With a broker nothing tells this process when a run ends; embedded,
#: this process's own runs tell their waiters at once, and the reads only catch a
#: run of another process sharing the database.
_WAIT_POLL_BROKER_S = (0.002, 0.05)
_WAIT_POLL_EMBEDDED_S = (0.25, 1.0)
#: How long a count of queued submissions may stand in for a new one (check_room).
_ROOM_TTL_S = 1.0
#: Retry-After while the judge starts: a client polls a start of minutes a few
#: times a minute, and hears of a quick start soon enough.
_STARTING_RETRY_S = 5.0
#: After a failed start, the wait before the next try: the first, doubling up to
#: the last (a mirror that was down, a package installed meanwhile).
_RESTART_AFTER_S = (30.0, 600.0)


class JudgeNotReadyError(TransientError):
    """The judge is still starting (or its start failed and is tried again): the
    request may succeed after ``retry_after`` seconds."""


class JudgeReadiness(enum.StrEnum):
    """Where the judge of a queue stands."""

    #: The queue was not started: the judge is started by the first call that needs it.
    ON_DEMAND = "on_demand"
    STARTING = "starting"
    READY = "ready"
    #: The last start failed; another is due (see :attr:`JudgeStatus.message`).
    FAILED = "failed"


@dataclass(frozen=True)
class JudgeStatus:
    """The judge's readiness, for health checks and error messages."""

    readiness: JudgeReadiness
    #: Seconds since the queue started preparing the judge (0 before).
    elapsed_s: float = 0.0
    #: Why the last start failed (FAILED only).
    message: str = ""
    #: Seconds until the next start is tried (FAILED only).
    retry_in_s: float = 0.0


class LanguageInfo(Protocol):
    """What the queue and the shells read of a language (``hpcbox.judge.languages``)."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def judge0_id(self) -> int | None: ...
    @property
    def source_file(self) -> str: ...
    @property
    def compile_cmd(self) -> tuple[str, ...] | None: ...
    @property
    def run_cmd(self) -> tuple[str, ...]: ...


class JudgeBackend(JudgeFunction, Protocol):
    """The judge service as the queue uses it (``hpcbox.judge.service.JudgeService``)."""

    def languages(self) -> Sequence[LanguageInfo]: ...
    def pool_occupancy(self) -> dict[str, int]: ...
    def close(self) -> None: ...


class StartupTracker:
    """A :class:`Reporter` for the judge's start-up in a server: logs each step,
    and remembers what the start-up is doing now, for the clients told to retry."""

    def __init__(self) -> None:
        self._log = LineReporter(lambda line: _log.info("judge: %s", line))
        self._lock = threading.Lock()
        #: The running steps, innermost last: [title, what it waits for].
        self._steps: list[list[str]] = []

    def __call__(self, message: str) -> None:
        self._log(message)

    @contextlib.contextmanager
    def _step(self, title: str, waiting_for: str) -> Iterator[None]:
        entry = [title, waiting_for]
        with self._lock:
            self._steps.append(entry)
        try:
            with self._log.step(title, waiting_for=waiting_for):
                yield
        finally:
            with self._lock:
                self._steps.remove(entry)

    def step(self, title: str, *, waiting_for: str = "") -> AbstractContextManager[None]:
        return self._step(title, waiting_for)

    def waiting(self, what: str) -> None:
        with self._lock:
            if self._steps:
                self._steps[-1][1] = what
        _log.debug("judge: %s", what)

    def output(self, line: str) -> None:
        _log.debug("judge: %s", line)

    def doing(self) -> str:
        """The innermost running step and what it waits for ("" between steps)."""
        with self._lock:
            if not self._steps:
                return ""
            title, what = self._steps[-1]
        return f"{title}, waiting for {what}" if what else title


def load_judge_service(
    settings: Settings,
    *,
    pool_size: int | Mapping[str, int] | None = None,
    progress: Reporter | None = None,
) -> JudgeBackend:
    """Start the judge service of this machine; UnavailableError when it cannot run.
    ``pool_size``: warm boxes per language, as ``QueueConfig.pool_size``."""
    # Imported here: the judge pulls in the sandbox stack, which `hpcbox serve`
    # without judging (and every CLI call that imports the engine) need not pay for.
    from hpcbox.judge.service import JudgeService

    # Cheap: nothing starts until the service is first used (JudgeQueue.start's
    # warm-up, or a worker's first submission); ``progress`` hears how that goes.
    service: JudgeBackend = JudgeService(settings, pool_size=pool_size, progress=progress)
    return service


def open_judge_queue(settings: Settings, database: Engine) -> JudgeQueue | None:
    """The queue ``hpcbox serve`` runs (not started), configured by ``settings.judge``;
    None, with a warning logged, when this machine cannot run the judge."""
    config = QueueConfig.from_settings(settings.judge)
    startup = StartupTracker()
    try:
        # With a broker the workers judge; the server only needs the language list.
        service = load_judge_service(
            settings, pool_size=0 if config.broker_url else config.pool_size, progress=startup
        )
    except UnavailableError as exc:
        _log.warning("judge routes disabled: %s", exc)
        return None
    return JudgeQueue(SubmissionStore(database), config, service, startup=startup)


class JudgeQueue:
    """Submissions in, results out; see the module docstring for the two modes.

    ``service`` judges (in embedded mode) and says which languages work; with a
    broker it is only asked about languages, so the server needs no warm pool.
    ``startup``: the Reporter ``service`` reports its start-up to, which tells the
    clients asked to retry what the start-up is doing.
    """

    def __init__(
        self,
        store: SubmissionStore,
        config: QueueConfig,
        service: JudgeBackend,
        *,
        clock: Callable[[], float] = time.monotonic,
        startup: StartupTracker | None = None,
    ) -> None:
        self.store = store
        self._startup = startup
        self.config = config
        self.service = service
        self._clock = clock
        self._callbacks = CallbackSender(
            secret=config.callback_secret,
            tries=config.callback_tries,
            timeout=config.callback_timeout,
            backoff=config.callback_backoff,
        )
        self._celery: Any = None
        if config.broker_url:
            self._celery = make_client(config.broker_url, visibility_timeout_s=3600)
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._languages: tuple[float, list[LanguageInfo]] | None = None
        self._resent: dict[str, float] = {}
        # This process's judging threads take turns to claim: racing each other
        # for the same head row, N threads would make O(N^2) failed claims. Other
        # processes (workers, other servers) are kept apart by the claim itself.
        self._claiming = threading.Lock()
        self.busy = 0
        #: Requests waiting (wait=true) for a submission, by token: the event loop
        #: each waits on, and the future its finished record is handed to.
        self._waiters: dict[
            str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[SubmissionRecord]]]
        ] = {}
        self._waiters_lock = threading.Lock()
        #: The last count of queued submissions: (count, when, queued here since).
        self._room: tuple[int, float, int] = (0, -_ROOM_TTL_S, 0)
        self._room_lock = threading.Lock()
        #: Set once the judge answered (start(): its languages are known).
        self._ready = threading.Event()
        #: The thread that prepares the judge (start()), and when it began.
        self._warm_up: threading.Thread | None = None
        self._warm_up_since = 0.0
        #: The last failed start: (message, when the next try is due).
        self._failure: tuple[str, float] | None = None

    @property
    def embedded(self) -> bool:
        return self._celery is None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> JudgeQueue:
        """Start preparing the judge (in a thread: see the module docstring), the
        judging threads (embedded; they claim nothing until the judge is ready)
        and the maintenance thread. Returns at once."""
        self._warm_up_since = self._clock()
        self._warm_up = threading.Thread(
            target=self._prepare_judge, name="judge-warm-up", daemon=True
        )
        self._warm_up.start()
        if self.embedded:
            for n in range(self.config.threads):
                self._spawn(self._work, f"judge-{n}")
        self._spawn(self._maintain, "judge-maintenance")
        return self

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        """Stop the threads after their current submission; close the service
        (which cancels a start-up under way). Submissions still queued stay
        queued, for the next start."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()
        self._callbacks.close()
        self.service.close()
        if self._warm_up is not None:
            # A cancelled build ends within seconds; a daemon thread either way.
            self._warm_up.join(timeout=5.0)

    # -- readiness ----------------------------------------------------------------

    def _prepare_judge(self) -> None:
        """The warm-up thread: start the judge (its languages are the proof), trying
        again after a failure until it works or the queue closes."""
        delay, longest = _RESTART_AFTER_S
        while not self._stopping.is_set():
            try:
                languages = list(self.service.languages())
            except Exception as exc:
                if self._stopping.is_set():
                    return
                message = str(exc) or type(exc).__name__
                _log.warning("the judge could not start (next try in %.0f s): %s", delay, message)
                # Clients and /health get the first line (a build's output stays in the log).
                self._failure = (message.splitlines()[0][:300], self._clock() + delay)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, longest)
                self._failure = None  # starting again: "starting" until this try ends
                continue
            self._languages = (self._clock(), languages)
            self._failure = None
            self._ready.set()
            _log.info(
                "the judge is ready after %.0f s: %d languages",
                self._clock() - self._warm_up_since,
                len(languages),
            )
            with self._wake:
                self._wake.notify_all()  # the judging threads may claim now
            return

    def status(self) -> JudgeStatus:
        """Where the judge stands (never blocks)."""
        if self._warm_up is None:
            return JudgeStatus(JudgeReadiness.ON_DEMAND)
        now = self._clock()
        elapsed = now - self._warm_up_since
        if self._ready.is_set():
            return JudgeStatus(JudgeReadiness.READY, elapsed_s=elapsed)
        failure = self._failure
        if failure is not None:
            message, due = failure
            return JudgeStatus(
                JudgeReadiness.FAILED,
                elapsed_s=elapsed,
                message=message,
                retry_in_s=max(0.0, due - now),
            )
        return JudgeStatus(JudgeReadiness.STARTING, elapsed_s=elapsed)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the judge is ready (after :meth:`start`); True if it is.
        Not started: True (the judge starts on demand)."""
        if self._warm_up is None:
            return True
        return self._ready.wait(timeout)

    def _not_ready(self) -> JudgeNotReadyError | None:
        """The error for a request that needs the judge now, or None when it may go on."""
        status = self.status()
        if status.readiness is JudgeReadiness.STARTING:
            doing = self._startup.doing() if self._startup is not None else ""
            return JudgeNotReadyError(
                f"the judge is starting (for {status.elapsed_s:.0f} s: "
                f"{doing or 'preparing its runtime and checking its languages'}); retry later",
                retry_after=_STARTING_RETRY_S,
            )
        if status.readiness is JudgeReadiness.FAILED:
            return JudgeNotReadyError(
                f"the judge could not start: {status.message} "
                f"(next try in {math.ceil(status.retry_in_s)} s)",
                retry_after=max(_STARTING_RETRY_S, status.retry_in_s),
            )
        return None

    # -- languages ----------------------------------------------------------------

    def languages(self) -> list[LanguageInfo]:
        """The installed, working languages (asked of the service once a minute).

        Raises :class:`JudgeNotReadyError` at once while the judge started by
        :meth:`start` is not ready; without start(), the first call starts the
        judge itself (which may take minutes).
        """
        error = self._not_ready()
        if error is not None:
            raise error
        now = self._clock()
        if self._languages is None or now - self._languages[0] > _LANGUAGES_TTL_S:
            self._languages = (now, list(self.service.languages()))
        return self._languages[1]

    def judge0_languages(self) -> dict[int, LanguageInfo]:
        return {lang.judge0_id: lang for lang in self.languages() if lang.judge0_id is not None}

    # -- submitting ---------------------------------------------------------------

    def submit(
        self,
        submission: Submission,
        *,
        api: str,
        priority: int = 0,
        echo: dict[str, Any] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        retain_s: int | None = None,
        count: int = 1,
        token: str | None = None,
    ) -> tuple[SubmissionRecord, bool]:
        """Queue a submission; returns it and whether it is new (False: an earlier
        one with the same idempotency key). ``token``: its token, made by the caller
        (a fresh UUID4; see :meth:`waiter`), else one is made.

        Raises :class:`InvalidInputError` for an unknown language and
        :class:`TransientError` (503) when ``count`` more would overfill the queue
        (``count=0``: the caller already checked, see :meth:`check_room`).
        """
        self._check_languages(submission)
        if retain_s is not None and not 0 <= retain_s <= self.config.max_retention_s:
            raise InvalidInputError(
                f"must be between 0 and {self.config.max_retention_s}", field="retention_s"
            )
        if count:
            self.check_room(count)
        record, created = self.store.create(
            submission,
            api=api,
            priority=priority,
            echo=echo,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            retain_s=retain_s,
            token=token,
        )
        if created:
            self._dispatch(record)
        return record, created

    def submit_many(
        self,
        items: Sequence[tuple[Submission, dict[str, Any] | None, str | None]],
        *,
        api: str,
    ) -> list[SubmissionRecord]:
        """Queue a batch ``(submission, echo, callback_url)`` in one transaction (the
        caller checked the room, see :meth:`check_room`); their records, in order.

        Raises :class:`InvalidInputError` for an unknown language, before any is stored.
        """
        for submission, _, _ in items:
            self._check_languages(submission)
        records = self.store.create_many(items, api=api)
        for record in records:
            self._dispatch(record)
        return records

    def _check_languages(self, submission: Submission) -> None:
        keys = {lang.key for lang in self.languages()}
        for language in filter(None, (submission.language, submission.checker_language)):
            if language not in keys:
                raise InvalidInputError(
                    f"unknown or unavailable language {language!r}; one of {sorted(keys)}",
                    field="language",
                )

    def check_room(self, count: int = 1) -> None:
        """TransientError (503) when ``count`` more submissions would overfill the queue.

        The queue is counted in the store when it may be near full; while a count
        taken less than a second ago, plus what this process queued since, leaves
        it at most half full, that suffices (a count per submission cost a query
        per request under load, for a limit that only guards against overload).
        """
        limit = self.config.max_queue_size
        now = self._clock()
        with self._room_lock:
            counted, at, added = self._room
            if now - at < _ROOM_TTL_S and counted + added + count <= limit // 2:
                self._room = (counted, at, added + count)
                return
        queued = self.store.count_queued()
        with self._room_lock:
            self._room = (queued, now, count)
        if queued + count > limit:
            raise TransientError("queue is full", retry_after=1.0)

    def _dispatch(self, record: SubmissionRecord) -> None:
        if self._celery is None:
            with self._wake:
                self._wake.notify()
            return
        assert self.config.broker_url is not None  # noqa: S101 - set with _celery
        try:
            self._celery.send_task(
                TASK_NAME,
                args=[record.token],
                priority=broker_priority(record.priority, self.config.broker_url),
            )
        except Exception as exc:  # kombu's errors: the broker is down
            # Stored and queued: the maintenance thread sends it again later.
            _log.warning("could not send %s to the broker: %s", record.token, exc)

    # -- waiting ------------------------------------------------------------------

    async def wait_async(self, token: str, *, timeout: float) -> SubmissionRecord:
        """The submission once done, or as it is after ``timeout`` seconds."""
        with self.waiter(token) as waiter:
            return await waiter.wait(timeout)

    @contextlib.contextmanager
    def waiter(self, token: str) -> Iterator[Waiter]:
        """A waiter for ``token``, listed from now until the ``with`` block ends:
        a run of this process that finishes ``token`` meanwhile hands it the record.
        Listed before the submission is even stored (a token made by the caller,
        see :meth:`submit`), it need not read the store to catch an early end."""
        waiter = Waiter(self, token)
        with self._waiters_lock:
            self._waiters.setdefault(token, []).append(waiter.listed)
        try:
            yield waiter
        finally:
            with self._waiters_lock:
                waiting = self._waiters.get(token, [])
                if waiter.listed in waiting:
                    waiting.remove(waiter.listed)
                if not waiting:
                    self._waiters.pop(token, None)

    def _tell_waiters(self, record: SubmissionRecord) -> None:
        """Hand a submission this process finished to the requests waiting for it."""
        with self._waiters_lock:
            waiting = self._waiters.pop(record.token, [])
        for loop, done in waiting:
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits
                loop.call_soon_threadsafe(_resolve, done, record)

    # -- threads ------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stopping.is_set():
            if not self._ready.is_set():
                # Queued submissions (a restart's) wait for the judge, rather than
                # each becoming an internal error while it starts.
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            try:
                with self._claiming:
                    record = self.store.claim_next(lease_s=self.config.lease_s)
            except Exception:  # the database is busy or away: try again shortly
                _log.warning("claiming a submission failed", exc_info=True)
                record = None
                self._stopping.wait(1.0)
            if record is None:
                with self._wake:
                    # Woken by a new submission; the timeout also picks up work
                    # another process queued or a lease that ran out.
                    self._wake.wait(timeout=1.0)
                continue
            self.busy += 1
            try:
                finished = run_claimed(
                    self.store,
                    self.service,
                    record,
                    lease_s=self.config.lease_s,
                    retention_s=self.config.retention_s,
                    callbacks=self._callbacks,
                )
                if finished is not None:
                    self._tell_waiters(finished)
            except Exception:
                _log.exception("running submission %s failed", record.token)
            finally:
                self.busy -= 1

    def _maintain(self) -> None:
        last_purge = 0.0
        period = max(0.2, min(self.config.lease_s / 2, 5.0))
        while not self._stopping.wait(period):
            try:
                if self._clock() - last_purge >= _PURGE_EVERY_S:
                    last_purge = self._clock()
                    gone = self.store.purge()
                    if gone:
                        _log.info("purged %d expired submissions", gone)
                if self._celery is not None:
                    self._resend()
            except Exception:
                _log.warning("judge queue maintenance failed", exc_info=True)

    def _resend(self) -> None:
        now = self._clock()
        wait = self.config.lease_s * _RESEND_AFTER_LEASES
        stale = set(self.store.expired())
        stale.update(self.store.queued_tokens(older_than_s=wait))
        self._resent = {t: at for t, at in self._resent.items() if t in stale}
        for token in stale:
            if now - self._resent.get(token, -wait) < wait:
                continue
            self._resent[token] = now
            try:
                record = self.store.get(token)
            except NotFoundError:
                continue
            _log.info("sending %s again (its worker died or its message was lost)", token)
            self._dispatch(record)


def _resolve(done: asyncio.Future[SubmissionRecord], record: SubmissionRecord) -> None:
    """In the waiter's event loop: hand it ``record`` unless it stopped waiting."""
    if not done.done():
        done.set_result(record)


class Waiter:
    """Waits for one submission (see :meth:`JudgeQueue.waiter`)."""

    def __init__(self, queue: JudgeQueue, token: str) -> None:
        self._queue = queue
        self.token = token
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[SubmissionRecord] = loop.create_future()
        #: What the queue lists: the loop to hand the record over in, and the future.
        self.listed = (loop, self._done)

    async def wait(self, timeout: float, *, read_first: bool = True) -> SubmissionRecord:
        """The submission once done, or as it is after ``timeout`` seconds.
        ``read_first=False``: the waiter was listed before the submission was
        stored, so a first read could not find it done."""
        queue = self._queue
        deadline = queue._clock() + timeout
        delay, longest = _WAIT_POLL_EMBEDDED_S if queue.embedded else _WAIT_POLL_BROKER_S
        read = read_first
        while True:
            if read:
                record = await asyncio.to_thread(queue.store.get, self.token)
                if is_terminal(record.state) or queue._clock() >= deadline:
                    return record
            read = True
            left = max(0.0, deadline - queue._clock())
            try:
                return await asyncio.wait_for(asyncio.shield(self._done), min(delay, left))
            except TimeoutError:
                delay = min(delay * 2, longest)
