"""Repository of judge submissions: the only code that reads or writes their tables.

A submission moves ``queued -> processing -> done`` (the transition table of
:mod:`hpcbox.judge.model`: every statement below that moves a row names its move,
and the table must allow it, which is checked as this module loads). Running it
starts with a *claim*: a compare-and-set that moves one row to ``processing`` under a fresh claim
id and a lease. Only the holder of the current claim can record test results or
finish it, so a submission is run once per claim; a worker that dies stops renewing
its lease, and once the lease has run out the row can be claimed again (and is run
again from the start). Works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Engine, Row, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import ConflictError, NotFoundError
from hpcbox.infra.db.submission_tables import submission_tests, submissions
from hpcbox.judge.model import (
    INITIAL_STATE,
    JudgeResult,
    Submission,
    SubmissionState,
    TestResult,
    check_transition,
)
from hpcbox.judge.store.codec import dumps, load_model

__all__ = ["SubmissionRecord", "SubmissionStatus", "SubmissionStore"]


def _moving(current: SubmissionState, new: SubmissionState) -> str:
    """``current`` as stored, for a statement that moves rows from it to ``new``;
    ConflictError (as this module loads) when the transition table forbids that."""
    check_transition(current, new)
    return current.value


# The statements of the per-submission paths (create, claim, finish, status polls),
# built once with bound parameters: building a statement and its cache key cost
# SQLAlchemy more CPU than SQLite spent running it (py-spy, under load), and a
# statement built once keeps its cache key.
_c = submissions.c
_INSERT = insert(submissions)
#: Claimable at ``now``: queued, or processing under a lease that ran out.
_CLAIMABLE = or_(
    _c.state == _moving(SubmissionState.QUEUED, SubmissionState.PROCESSING),
    and_(
        _c.state == _moving(SubmissionState.PROCESSING, SubmissionState.PROCESSING),
        _c.lease_until < bindparam("now"),
    ),
)
#: The next claimable row, highest priority first, oldest first within one. Locked
#: with SKIP LOCKED where the database can (PostgreSQL), so that concurrent claims
#: take different rows; SQLite runs one writer at a time, so the UPDATE around it
#: is atomic there.
_NEXT_ID = (
    select(_c.id)
    .where(_CLAIMABLE)
    .order_by(_c.priority.desc(), _c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
#: What a claim writes: a fresh claim id and lease, one more run.
_CLAIMED = {
    "state": SubmissionState.PROCESSING.value,
    "claim": bindparam("new_claim"),
    "lease_until": bindparam("new_lease"),
    "runs": _c.runs + 1,
    "started_at": bindparam("now"),
}
#: A claim is one statement, a compare-and-set (the WHERE checks that the row is
#: claimable, again after any lock wait), answering the row as updated: the next
#: row, or the row of one token.
_CLAIM_NEXT = (
    update(submissions)
    .where(_c.id == _NEXT_ID, _CLAIMABLE)
    .values(_CLAIMED)
    .returning(*submissions.c)
)
_CLAIM_TOKEN = (
    update(submissions)
    .where(_c.token == bindparam("the_token"), _CLAIMABLE)
    .values(_CLAIMED)
    .returning(*submissions.c)
)
_DELETE_TESTS = delete(submission_tests).where(submission_tests.c.submission_id == bindparam("sid"))
_HELD = and_(
    _c.token == bindparam("the_token"),
    _c.claim == bindparam("held"),
    _c.state == _moving(SubmissionState.PROCESSING, SubmissionState.DONE),
)
#: A finish is a compare-and-set on the claim, answering the row as updated; its
#: expiry is the default one, corrected by a second statement for the rare row
#: that has a retention of its own.
_FINISH = (
    update(submissions)
    .where(_HELD)
    .values(
        state=SubmissionState.DONE.value,
        verdict=bindparam("new_verdict"),
        result=bindparam("new_result"),
        lease_until=None,
        finished_at=bindparam("now"),
        expires_at=bindparam("new_expiry"),
    )
    .returning(*submissions.c)
)
_SET_EXPIRY = (
    update(submissions).where(_c.id == bindparam("sid")).values(expires_at=bindparam("new_expiry"))
)
_INSERT_TESTS = insert(submission_tests)
_HELD_ID = select(_c.id).where(_HELD)
_DELETE_TEST = delete(submission_tests).where(
    submission_tests.c.submission_id == bindparam("sid"),
    submission_tests.c.idx == bindparam("index"),
)
_RENEW = update(submissions).where(_HELD).values(lease_until=bindparam("new_lease"))
_STATE_COLUMNS = (_c.token, _c.state, _c.result, _c.verdict)
_STATES = select(*_STATE_COLUMNS).where(_c.token.in_(bindparam("tokens", expanding=True)))
#: One token's: an expanding IN costs SQLAlchemy a compile step on every execution.
_STATE = select(*_STATE_COLUMNS).where(_c.token == bindparam("the_token"))
_COUNT_QUEUED = select(func.count()).where(_c.state == SubmissionState.QUEUED.value)
_BY_TOKEN = select(submissions).where(_c.token == bindparam("the_token"))


@dataclass(frozen=True)
class SubmissionRecord:
    """A stored submission as the queue and the shells see it.

    ``submission`` and ``result`` are decoded from their stored JSON on first use
    only: a client polling a batch asks for a status, and decoding every stored
    source and output it did not ask for was most of the server's work per poll.
    """

    token: str
    api: str
    language: str
    priority: int
    state: SubmissionState
    callback_url: str | None
    runs: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    claim: str | None = None
    #: The submission as stored (JSON), or already decoded.
    submission_stored: str | Submission = ""
    #: The result as stored (JSON), already decoded, or None while there is none.
    result_stored: str | JudgeResult | None = None
    #: The Judge0 echo as stored (JSON), already decoded, or None.
    echo_stored: str | dict[str, Any] | None = None

    @cached_property
    def echo(self) -> dict[str, Any] | None:
        """Judge0 input fields as the client sees them back (None for /v1)."""
        stored = self.echo_stored
        return stored if stored is None or isinstance(stored, dict) else dict(json.loads(stored))

    @cached_property
    def submission(self) -> Submission:
        stored = self.submission_stored
        return stored if isinstance(stored, Submission) else load_model(Submission, stored)

    @cached_property
    def result(self) -> JudgeResult | None:
        stored = self.result_stored
        if stored is None or isinstance(stored, JudgeResult):
            return stored
        return load_model(JudgeResult, stored)


@dataclass(frozen=True)
class SubmissionStatus:
    """Where a submission is, and its result once done: what a client polling for
    a status needs, read without the rest of the row."""

    token: str
    state: SubmissionState
    #: The result as stored (JSON), or None while there is none.
    result_stored: str | None = None
    #: The result's verdict (None while there is none), without parsing the result.
    verdict: str | None = None

    @cached_property
    def result(self) -> JudgeResult | None:
        stored = self.result_stored
        return None if stored is None else load_model(JudgeResult, stored)


def _queued(
    token: str,
    api: str,
    submission: Submission,
    echo: dict[str, Any] | None,
    callback_url: str | None,
    created_at: datetime,
    priority: int = 0,
) -> SubmissionRecord:
    """The record of a submission just stored as queued (naive UTC ``created_at``)."""
    return SubmissionRecord(
        token=token,
        api=api,
        language=submission.language,
        priority=priority,
        state=INITIAL_STATE,
        submission_stored=submission,
        echo_stored=None if echo is None else dict(echo),
        callback_url=callback_url,
        runs=0,
        created_at=created_at.replace(tzinfo=UTC),
        started_at=None,
        finished_at=None,
        expires_at=None,
    )


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _record(row: Row[Any]) -> SubmissionRecord:
    return SubmissionRecord(
        token=row.token,
        api=row.api,
        language=row.language,
        priority=row.priority,
        state=SubmissionState(row.state),
        submission_stored=row.submission,
        echo_stored=row.echo,
        callback_url=row.callback_url,
        result_stored=row.result,
        runs=row.runs,
        created_at=_aware(row.created_at) or row.created_at,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        expires_at=_aware(row.expires_at),
        claim=row.claim,
    )


class SubmissionStore:
    """Submissions and per-test results in one SQL database (SQLAlchemy Core)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- creation -----------------------------------------------------------------

    def create(
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
        token: str | None = None,
    ) -> tuple[SubmissionRecord, bool]:
        """Store a queued submission under ``token`` (a fresh UUID4 if None);
        return it and whether it is new.

        With an ``idempotency_key`` already used, returns the first submission made
        with it (``False``), or raises :class:`ConflictError` when ``request_hash``
        differs from the first request's.
        """
        token = token or str(uuid.uuid4())
        created_at = utcnow()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    _INSERT,
                    {
                        "token": token,
                        "idempotency_key": idempotency_key,
                        "request_hash": request_hash,
                        "api": api,
                        "language": submission.language,
                        "priority": priority,
                        "state": INITIAL_STATE.value,
                        "submission": dumps(submission),
                        "echo": None if echo is None else json.dumps(echo),
                        "callback_url": callback_url,
                        "runs": 0,
                        "retain_s": retain_s,
                        "created_at": created_at,
                    },
                )
        except IntegrityError:
            if idempotency_key is None:
                raise
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(submissions).where(submissions.c.idempotency_key == idempotency_key)
                ).first()
            if row is None:  # deleted in between: a fresh try is the honest answer
                raise ConflictError("idempotency key raced with a delete; retry") from None
            if request_hash is not None and row.request_hash != request_hash:
                raise ConflictError(
                    "this Idempotency-Key was used for a different request"
                ) from None
            return _record(row), False
        # What was just written, without reading it back (a submission is a large
        # JSON document to parse again; this path runs once per submission).
        return _queued(token, api, submission, echo, callback_url, created_at, priority), True

    def create_many(
        self, items: Sequence[tuple[Submission, dict[str, Any] | None, str | None]], *, api: str
    ) -> list[SubmissionRecord]:
        """Store queued submissions ``(submission, echo, callback_url)`` in one
        transaction (a batch: no idempotency keys, default priority and retention);
        their records, in order."""
        created_at = utcnow()
        tokens = [str(uuid.uuid4()) for _ in items]
        rows = [
            {
                "token": token,
                "idempotency_key": None,
                "request_hash": None,
                "api": api,
                "language": submission.language,
                "priority": 0,
                "state": INITIAL_STATE.value,
                "submission": dumps(submission),
                "echo": None if echo is None else json.dumps(echo),
                "callback_url": callback_url,
                "runs": 0,
                "retain_s": None,
                "created_at": created_at,
            }
            for token, (submission, echo, callback_url) in zip(tokens, items, strict=True)
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(_INSERT, rows)
        return [
            _queued(token, api, submission, echo, callback_url, created_at)
            for token, (submission, echo, callback_url) in zip(tokens, items, strict=True)
        ]

    # -- reading ------------------------------------------------------------------

    def get(self, token: str) -> SubmissionRecord:
        """The submission; :class:`NotFoundError` when there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(_BY_TOKEN, {"the_token": token}).first()
        if row is None:
            raise NotFoundError(f"no submission {token}")
        return _record(row)

    def get_many(self, tokens: Sequence[str]) -> dict[str, SubmissionRecord]:
        """The submissions among ``tokens`` that exist, by token."""
        if not tokens:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(submissions).where(submissions.c.token.in_(list(tokens))))
            return {row.token: _record(row) for row in rows}

    def states(self, tokens: Sequence[str]) -> dict[str, SubmissionStatus]:
        """The state (and result) of the submissions among ``tokens`` that exist."""
        if not tokens:
            return {}
        params: dict[str, Any]
        if len(tokens) == 1:  # a single poll
            statement, params = _STATE, {"the_token": tokens[0]}
        else:
            statement, params = _STATES, {"tokens": list(tokens)}
        with self.engine.connect() as conn:
            return {
                row.token: SubmissionStatus(
                    row.token, SubmissionState(row.state), row.result, row.verdict
                )
                for row in conn.execute(statement, params)
            }

    def page(
        self, *, offset: int, limit: int, state: SubmissionState | None = None
    ) -> tuple[list[SubmissionRecord], int]:
        """A page of submissions, newest first, and the total count."""
        query = select(submissions)
        count = select(func.count()).select_from(submissions)
        if state:
            query = query.where(submissions.c.state == state.value)
            count = count.where(submissions.c.state == state.value)
        query = query.order_by(submissions.c.id.desc()).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            total = int(conn.execute(count).scalar_one())
            return [_record(row) for row in conn.execute(query)], total

    def tests(self, token: str, *, after: int = -1) -> list[TestResult]:
        """Per-test results recorded so far by the current run, index > ``after``."""
        with self.engine.connect() as conn:
            sid = conn.execute(
                select(submissions.c.id).where(submissions.c.token == token)
            ).scalar_one_or_none()
            if sid is None:
                raise NotFoundError(f"no submission {token}")
            rows = conn.execute(
                select(submission_tests.c.result)
                .where(submission_tests.c.submission_id == sid, submission_tests.c.idx > after)
                .order_by(submission_tests.c.idx)
            )
            return [load_model(TestResult, raw) for (raw,) in rows]

    def count_by_state(self) -> dict[str, int]:
        query = select(submissions.c.state, func.count()).group_by(submissions.c.state)
        with self.engine.connect() as conn:
            return {str(state): int(n) for state, n in conn.execute(query)}

    def count_queued(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(_COUNT_QUEUED).scalar_one())

    def statistics(self) -> dict[str, Any]:
        """Counts by language and by verdict, and the total (for ``/statistics``)."""
        with self.engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(submissions)).scalar_one())
            by_language = {
                str(lang): int(n)
                for lang, n in conn.execute(
                    select(submissions.c.language, func.count()).group_by(submissions.c.language)
                )
            }
            by_verdict = {
                str(verdict): int(n)
                for verdict, n in conn.execute(
                    select(submissions.c.verdict, func.count())
                    .where(submissions.c.verdict.is_not(None))
                    .group_by(submissions.c.verdict)
                )
            }
        return {"total": total, "languages": by_language, "verdicts": by_verdict}

    def recent_latencies(self, *, since: datetime) -> list[tuple[str, float, float]]:
        """``(language, seconds queued, seconds running)`` of submissions finished
        since ``since`` (naive or aware UTC)."""
        since = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
        query = select(
            submissions.c.language,
            submissions.c.created_at,
            submissions.c.started_at,
            submissions.c.finished_at,
        ).where(
            submissions.c.state == SubmissionState.DONE.value, submissions.c.finished_at >= since
        )
        out: list[tuple[str, float, float]] = []
        with self.engine.connect() as conn:
            for language, created, started_at, finished in conn.execute(query):
                started = started_at or created
                out.append(
                    (
                        str(language),
                        (started - created).total_seconds(),
                        (finished - started).total_seconds(),
                    )
                )
        return out

    # -- running ------------------------------------------------------------------

    def claim(self, token: str, *, lease_s: float) -> SubmissionRecord | None:
        """Claim one submission (for a worker told to run it). None when it is done,
        gone, or held by a live claim."""
        return self._claim(_CLAIM_TOKEN, lease_s, the_token=token)

    def claim_next(self, *, lease_s: float) -> SubmissionRecord | None:
        """Claim the next claimable submission: highest priority first, oldest first
        within a priority. None when there is nothing to run."""
        return self._claim(_CLAIM_NEXT, lease_s)

    def _claim(self, statement: Any, lease_s: float, **params: Any) -> SubmissionRecord | None:
        """Run a claiming UPDATE ... RETURNING (one row at most); the claimed record."""
        now = utcnow()
        params.update(
            now=now, new_claim=str(uuid.uuid4()), new_lease=now + timedelta(seconds=lease_s)
        )
        with self.engine.begin() as conn:
            row = conn.execute(statement, params).first()
            if row is not None and row.runs > 1:
                # A run after a lost worker starts again from the first test (a
                # row never claimed before has no test rows).
                conn.execute(_DELETE_TESTS, {"sid": row.id})
        return None if row is None else _record(row)

    def renew(self, token: str, claim: str, *, lease_s: float) -> bool:
        """Extend a live claim's lease; False when the claim was lost."""
        params = {
            "the_token": token,
            "held": claim,
            "new_lease": utcnow() + timedelta(seconds=lease_s),
        }
        with self.engine.begin() as conn:
            return conn.execute(_RENEW, params).rowcount == 1

    def add_test(self, token: str, claim: str, test: TestResult) -> bool:
        """Record one finished test under ``claim``; False when the claim was lost."""
        with self.engine.begin() as conn:
            sid = conn.execute(_HELD_ID, {"the_token": token, "held": claim}).scalar_one_or_none()
            if sid is None:
                return False
            conn.execute(_DELETE_TEST, {"sid": sid, "index": test.index})
            conn.execute(
                _INSERT_TESTS, {"submission_id": sid, "idx": test.index, "result": dumps(test)}
            )
        return True

    def finish(
        self,
        token: str,
        claim: str,
        result: JudgeResult,
        *,
        default_retain_s: int,
        tests_streamed: bool = True,
    ) -> SubmissionRecord | None:
        """Store the result under ``claim`` (compare-and-set); the finished record,
        or None when the claim had been lost (another run owns the submission).

        ``tests_streamed=False`` says that :meth:`add_test` was not called under
        this claim (a claim starts with no test rows), so there are none to replace.
        """
        now = utcnow()
        params = {
            "the_token": token,
            "held": claim,
            "new_verdict": result.verdict.value,
            "new_result": dumps(result),
            "now": now,
            "new_expiry": now + timedelta(seconds=default_retain_s),
        }
        with self.engine.begin() as conn:
            row = conn.execute(_FINISH, params).first()
            if row is None:
                return None
            expires = now + timedelta(seconds=default_retain_s)
            if row.retain_s is not None:
                expires = now + timedelta(seconds=row.retain_s)
                conn.execute(_SET_EXPIRY, {"sid": row.id, "new_expiry": expires})
            # Keep the per-test rows consistent with the final result.
            if tests_streamed:
                conn.execute(_DELETE_TESTS, {"sid": row.id})
            if result.tests:
                conn.execute(
                    _INSERT_TESTS,
                    [
                        {"submission_id": row.id, "idx": t.index, "result": dumps(t)}
                        for t in result.tests
                    ],
                )
        # The row as updated, with the result as given rather than parsed again.
        return replace(_record(row), result_stored=result, expires_at=expires.replace(tzinfo=UTC))

    def expired(self) -> list[str]:
        """Tokens of processing submissions whose lease ran out (their worker died)."""
        query = select(submissions.c.token).where(
            submissions.c.state == SubmissionState.PROCESSING.value,
            submissions.c.lease_until < utcnow(),
        )
        with self.engine.connect() as conn:
            return [str(t) for (t,) in conn.execute(query)]

    def queued_tokens(self, *, older_than_s: float) -> list[str]:
        """Tokens still queued after ``older_than_s`` seconds (their message may be lost)."""
        limit = utcnow() - timedelta(seconds=older_than_s)
        query = select(submissions.c.token).where(
            submissions.c.state == SubmissionState.QUEUED.value, submissions.c.created_at < limit
        )
        with self.engine.connect() as conn:
            return [str(t) for (t,) in conn.execute(query)]

    # -- removing -----------------------------------------------------------------

    def delete(self, token: str) -> SubmissionRecord:
        """Delete one submission (any state); returns it as it was."""
        record = self.get(token)
        with self.engine.begin() as conn:
            sid = conn.execute(
                select(submissions.c.id).where(submissions.c.token == token)
            ).scalar_one_or_none()
            if sid is None:
                raise NotFoundError(f"no submission {token}")
            conn.execute(delete(submission_tests).where(submission_tests.c.submission_id == sid))
            conn.execute(delete(submissions).where(submissions.c.id == sid))
        return record

    def purge(self, *, now: datetime | None = None) -> int:
        """Delete finished submissions whose retention ran out; how many went."""
        moment = now.astimezone(UTC).replace(tzinfo=None) if now and now.tzinfo else now
        moment = moment or utcnow()
        expired = (
            select(submissions.c.id)
            .where(
                submissions.c.state == SubmissionState.DONE.value, submissions.c.expires_at < moment
            )
            .scalar_subquery()
        )
        with self.engine.begin() as conn:
            conn.execute(
                delete(submission_tests).where(submission_tests.c.submission_id.in_(expired))
            )
            return int(
                conn.execute(
                    delete(submissions).where(
                        submissions.c.state == SubmissionState.DONE.value,
                        submissions.c.expires_at < moment,
                    )
                ).rowcount
            )
