"""Repository of jobs: the only code that reads or writes the job tables.

Every state change goes through :meth:`JobStore.transition`, a compare-and-set
on the attempt's state guarded by the transition table in ``hpcbox.core``: two
processes racing (say, a cancel from the CLI and the scheduler noticing an exit)
cannot both win, and a state never moves backwards.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, func, insert, select, update

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import ConflictError, NotFoundError, PermanentError
from hpcbox.infra.db.models import AttemptRow, EventRow, JobRow
from hpcbox.jobs.model.job import Attempt, Job, StateEvent
from hpcbox.jobs.model.queue import QueuedJob
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import TERMINAL_STATES, TRANSITIONS, JobState

__all__ = ["UNSET", "JobStore"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Marks "leave this column as it is" (``None`` means "set it to NULL").
UNSET: Any = _Unset()

_ATTEMPT_FIELDS = (
    "native_state",
    "reason",
    "native_id",
    "exit_code",
    "signal",
    "cpu_time",
    "peak_memory",
    "started_at",
    "finished_at",
    "run_dir",
    "handle",
)


def _aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _sources_for(target: JobState) -> list[str]:
    """States from which ``target`` may be entered (itself included)."""
    return [s.value for s, nxt in TRANSITIONS.items() if target in nxt or s == target]


_jobs: Table = JobRow.__table__  # type: ignore[assignment]
_attempts: Table = AttemptRow.__table__  # type: ignore[assignment]
_events: Table = EventRow.__table__  # type: ignore[assignment]
_ACTIVE = [JobState.NEW.value, JobState.PENDING.value, JobState.RUNNING.value]
_TERMINAL = [s.value for s in TERMINAL_STATES]
# Re-reads allowed when a transition races with another writer; each retry sees
# a later state, and states only move forward, so a handful always suffices.
_CAS_ATTEMPTS = 8


class JobStore:
    """Jobs, attempts and state events in one SQL database.

    Uses SQLAlchemy Core on short transactions rather than ORM sessions: the
    scheduler writes several times per job, and the ORM's unit-of-work costs
    more than the statements themselves at hundreds of jobs per second.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- creation -----------------------------------------------------------------

    def create(self, spec: JobSpec, *, backend: str, target: str, queued: bool = False) -> Job:
        """Store a new job with its first attempt; return it.

        The job is NEW, or with ``queued`` PENDING at once (for a backend whose
        queue accepts every valid job: one transaction instead of two, and the
        history still shows NEW then PENDING).
        """
        now = utcnow()
        state = JobState.PENDING if queued else JobState.NEW
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(_jobs).values(
                    name=spec.display_name(),
                    backend=backend,
                    target=target,
                    state=state.value,
                    attempt=1,
                    cpus=spec.resources.cpus,
                    memory_bytes=spec.resources.memory,
                    created_at=now,
                    updated_at=now,
                )
            )
            key = result.inserted_primary_key
            if key is None:
                raise PermanentError("the database returned no id for the new job")
            job_id = key[0]
            self._add_attempt(conn, int(job_id), 1, spec, now, queued=queued)
        return self.get(int(job_id))

    def _add_attempt(
        self,
        conn: Connection,
        job_id: int,
        number: int,
        spec: JobSpec,
        now: datetime,
        *,
        queued: bool,
    ) -> None:
        conn.execute(
            insert(_attempts).values(
                job_id=job_id,
                number=number,
                spec=spec.model_dump_json(),
                state=(JobState.PENDING if queued else JobState.NEW).value,
                native_state="PENDING" if queued else None,
                reason="None" if queued else None,
                submitted_at=now,
            )
        )
        base = {"job_id": job_id, "attempt": number, "at": now}
        events = [
            {**base, "from_state": None, "to_state": "NEW", "native_state": None, "reason": None}
        ]
        if queued:
            events.append(
                {
                    **base,
                    "from_state": "NEW",
                    "to_state": "PENDING",
                    "native_state": "PENDING",
                    "reason": "None",
                }
            )
        conn.execute(insert(_events), events)

    def new_attempt(self, job_id: int, spec: JobSpec, *, queued: bool = False) -> Job:
        """Start attempt n+1 with ``spec``; only allowed when the job is terminal.
        ``queued`` as for :meth:`create`.

        Raises :class:`NotFoundError` for an unknown id and :class:`ConflictError`
        when the current attempt is still active.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_jobs.c.attempt, _jobs.c.state).where(_jobs.c.id == job_id)
            ).first()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            number, state = int(row[0]), str(row[1])
            claimed = conn.execute(
                update(_jobs)
                .where(
                    _jobs.c.id == job_id,
                    _jobs.c.attempt == number,
                    _jobs.c.state.in_(_TERMINAL),
                )
                .values(
                    attempt=number + 1,
                    state=(JobState.PENDING if queued else JobState.NEW).value,
                    cpus=spec.resources.cpus,
                    memory_bytes=spec.resources.memory,
                    name=spec.display_name(),
                    updated_at=now,
                )
            ).rowcount
            if claimed != 1:
                raise ConflictError(
                    f"job {job_id} is {state}; only a finished job can be rerun (cancel it first)"
                )
            self._add_attempt(conn, job_id, number + 1, spec, now, queued=queued)
        return self.get(job_id)

    # -- reading ------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        """The job with ``job_id``; raises :class:`NotFoundError` if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(select(_jobs).where(_jobs.c.id == job_id)).first()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            return self._assemble(conn, [row])[0]

    def list_jobs(
        self,
        *,
        states: Collection[JobState] | None = None,
        backend: str | None = None,
        limit: int = 100,
        before: int | None = None,
        ascending: bool = False,
    ) -> list[Job]:
        """A page of jobs, newest first (or oldest first with ``ascending``).

        Keyset pagination: pass the last id of a page as ``before`` (descending)
        to get the next one; cost does not grow with the table's size.
        """
        query = select(_jobs)
        if states:
            query = query.where(_jobs.c.state.in_([s.value for s in states]))
        if backend:
            query = query.where(_jobs.c.backend == backend)
        if before is not None:
            query = query.where(_jobs.c.id > before if ascending else _jobs.c.id < before)
        query = query.order_by(_jobs.c.id.asc() if ascending else _jobs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            return self._assemble(conn, rows)

    def queued(self, backend: str) -> list[QueuedJob]:
        """NEW and PENDING jobs of ``backend`` in submission order, narrow rows only
        (the local queue reads this on every step, so it must stay cheap)."""
        query = (
            select(_jobs.c.id, _jobs.c.attempt, _jobs.c.cpus, _jobs.c.memory_bytes)
            .where(
                _jobs.c.backend == backend,
                _jobs.c.state.in_([JobState.NEW.value, JobState.PENDING.value]),
            )
            .order_by(_jobs.c.id)
        )
        with self.engine.connect() as conn:
            return [
                QueuedJob(job_id=i, attempt=a, cpus=c, memory_bytes=m)
                for i, a, c, m in conn.execute(query)
            ]

    def list_ids(self, *, states: Collection[JobState], backend: str) -> list[int]:
        """Ids of the backend's jobs in ``states`` (narrow: no attempts loaded)."""
        query = select(_jobs.c.id).where(
            _jobs.c.backend == backend, _jobs.c.state.in_([s.value for s in states])
        )
        with self.engine.connect() as conn:
            return [int(i) for (i,) in conn.execute(query)]

    def running_keys(self, backend: str) -> set[tuple[int, int]]:
        """``(job id, attempt)`` of the backend's RUNNING jobs (cheap, every step)."""
        query = select(_jobs.c.id, _jobs.c.attempt).where(
            _jobs.c.backend == backend, _jobs.c.state == JobState.RUNNING.value
        )
        with self.engine.connect() as conn:
            return {(int(i), int(a)) for i, a in conn.execute(query)}

    def count(self, *, states: Collection[JobState] | None = None) -> int:
        query = select(func.count()).select_from(_jobs)
        if states:
            query = query.where(_jobs.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def count_by_state(self) -> dict[str, int]:
        query = select(_jobs.c.state, func.count()).group_by(_jobs.c.state)
        with self.engine.connect() as conn:
            return {str(state): int(n) for state, n in conn.execute(query)}

    def handle(self, job_id: int, attempt: int) -> dict[str, Any] | None:
        """The backend's re-attach data for one attempt, if it stored any."""
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(_attempts.c.handle).where(
                    _attempts.c.job_id == job_id, _attempts.c.number == attempt
                )
            ).scalar_one_or_none()
        return None if raw is None else dict(json.loads(raw))

    def events(self, job_id: int) -> list[StateEvent]:
        """Every recorded transition of the job, oldest first."""
        with self.engine.connect() as conn:
            if conn.execute(select(_jobs.c.id).where(_jobs.c.id == job_id)).first() is None:
                raise NotFoundError(f"no job {job_id}")
            rows = conn.execute(
                select(_events).where(_events.c.job_id == job_id).order_by(_events.c.id)
            )
            return [
                StateEvent(
                    job_id=r.job_id,
                    attempt=r.attempt,
                    from_state=JobState(r.from_state) if r.from_state else None,
                    to_state=JobState(r.to_state),
                    native_state=r.native_state,
                    reason=r.reason,
                    at=_aware(r.at) or r.at,
                )
                for r in rows
            ]

    def _assemble(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[Job]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        attempts: dict[int, list[Attempt]] = {job_id: [] for job_id in ids}
        for a in conn.execute(
            select(_attempts)
            .where(_attempts.c.job_id.in_(ids))
            .order_by(_attempts.c.job_id, _attempts.c.number)
        ):
            attempts[a.job_id].append(_attempt(a))
        return [
            Job(
                id=row.id,
                name=row.name,
                backend=row.backend,
                target=row.target,
                created_at=_aware(row.created_at) or row.created_at,
                attempts=tuple(attempts[row.id]),
            )
            for row in rows
        ]

    # -- changing -----------------------------------------------------------------

    def transition(
        self,
        job_id: int,
        attempt: int,
        to: JobState,
        *,
        only_from: Iterable[JobState] | None = None,
        **fields: Any,
    ) -> bool:
        """Move one attempt to ``to`` and set the given attempt ``fields``.

        Applied only when the transition table allows it from the attempt's
        current state (and, with ``only_from``, when the current state is one of
        those). Returns True when applied, False when the state had moved on.
        Fields are the attempt columns (``reason``, ``exit_code``, ``handle`` as a
        mapping...); values equal to :data:`UNSET` are left alone.
        """
        unknown = set(fields) - set(_ATTEMPT_FIELDS)
        if unknown:
            raise TypeError(f"unknown attempt fields: {sorted(unknown)}")
        sources = _sources_for(to)
        if only_from is not None:
            allowed = {s.value for s in only_from}
            sources = [s for s in sources if s in allowed]
        values: dict[str, Any] = {"state": to.value}
        for key, value in fields.items():
            if value is UNSET:
                continue
            if key == "handle" and value is not None:
                values[key] = json.dumps(dict(value) if isinstance(value, Mapping) else value)
            else:
                values[key] = value
        # Compare-and-set: read the state, then update only if it is unchanged. If
        # another process moved it in between, read again and decide again (the
        # new state may still allow this transition, e.g. PENDING -> RUNNING under
        # a cancel), so a racing writer never makes an allowed transition fail.
        for _ in range(_CAS_ATTEMPTS):
            outcome = self._try_transition(job_id, attempt, to, sources, values)
            if outcome is not None:
                return outcome
        return False

    def _try_transition(
        self,
        job_id: int,
        attempt: int,
        to: JobState,
        sources: list[str],
        values: dict[str, Any],
    ) -> bool | None:
        """One compare-and-set; None when the state changed under us."""
        now = utcnow()
        with self.engine.begin() as conn:
            previous = conn.execute(
                select(_attempts.c.state).where(
                    _attempts.c.job_id == job_id, _attempts.c.number == attempt
                )
            ).scalar_one_or_none()
            if previous is None:
                raise NotFoundError(f"no attempt {attempt} of job {job_id}")
            if previous not in sources:
                return False
            changed = conn.execute(
                update(_attempts)
                .where(
                    _attempts.c.job_id == job_id,
                    _attempts.c.number == attempt,
                    _attempts.c.state == previous,
                )
                .values(**values)
            ).rowcount
            if changed != 1:
                return None
            if previous != to.value:
                conn.execute(
                    update(_jobs)
                    .where(_jobs.c.id == job_id, _jobs.c.attempt == attempt)
                    .values(state=to.value, updated_at=now)
                )
            if previous != to.value or "reason" in values or "native_state" in values:
                conn.execute(
                    insert(_events).values(
                        job_id=job_id,
                        attempt=attempt,
                        from_state=previous,
                        to_state=to.value,
                        native_state=values.get("native_state"),
                        reason=values.get("reason"),
                        at=now,
                    )
                )
        return True

    def pending_reasons(self, reasons: Mapping[tuple[int, int], str]) -> None:
        """Set the reason of several PENDING attempts at once (no event recorded:
        a queue position changing is not a state change)."""
        if not reasons:
            return
        with self.engine.begin() as conn:
            for (job_id, attempt), reason in reasons.items():
                conn.execute(
                    update(_attempts)
                    .where(
                        _attempts.c.job_id == job_id,
                        _attempts.c.number == attempt,
                        _attempts.c.state == JobState.PENDING.value,
                    )
                    .values(reason=reason, native_state="PENDING")
                )


def _attempt(row: Row[Any]) -> Attempt:
    return Attempt(
        number=row.number,
        spec=JobSpec.model_validate_json(row.spec),
        state=JobState(row.state),
        native_state=row.native_state,
        reason=row.reason,
        native_id=row.native_id,
        exit_code=row.exit_code,
        signal=row.signal,
        cpu_time=row.cpu_time,
        peak_memory=row.peak_memory,
        submitted_at=_aware(row.submitted_at) or row.submitted_at,
        started_at=_aware(row.started_at),
        finished_at=_aware(row.finished_at),
        run_dir=row.run_dir,
    )
