"""SLURM's job states, and what each one means in hpcbox's vocabulary.

SLURM reports a job's state in a long form (``PENDING``) or a compact code
(``PD``); squeue prints a state *flag* instead of the base state while one is
set (``COMPLETING``, ``REQUEUED``...). sacct decorates some states
(``CANCELLED by 1000``) and, in its fixed-width output, truncates them with a
``+`` (``CANCELL+``). :func:`map_state` accepts all of these.

Decisions where SLURM's state has no exact twin in hpcbox:

- ``CONFIGURING`` (nodes allocated, still booting) is ``PENDING``: the job's
  own code has not started.
- ``COMPLETING``, ``STAGE_OUT`` and ``SIGNALING`` are ``RUNNING``: the script
  has ended or is ending, but SLURM has not decided the final state yet.
- ``SUSPENDED``, ``STOPPED`` and ``RESIZING`` are ``RUNNING``: the job holds
  its allocation and will go on; the native state says it is paused.
- ``REQUEUED``, ``REQUEUE_FED``, ``REQUEUE_HOLD``, ``RESV_DEL_HOLD`` and
  ``POWER_UP_NODE`` are ``PENDING``: the job waits to run (again).
- ``PREEMPTED`` is ``CANCELLED``: a preempted job that SLURM requeues or
  suspends is reported as ``REQUEUED``/``PENDING`` or ``SUSPENDED`` instead,
  so ``PREEMPTED`` is only ever seen for a job that SLURM stopped for good to
  make room for another -- stopped by a decision, not by its own failure.
- ``BOOT_FAIL`` is ``NODE_FAIL``: the node could not be booted, which is a
  fault of the machine, not of the job.
- ``DEADLINE`` is ``TIMEOUT``: the job ran out of the time it was given (its
  ``--deadline``), the same kind of end as its time limit.
- ``SPECIAL_EXIT`` is ``FAILED``: a site's epilog put the job aside because of
  how it ended; it only runs again if someone releases it by hand, which would
  be a run hpcbox did not ask for.
- ``REVOKED`` is ``ERROR``: in a federation, the job started on another
  cluster, which hpcbox does not follow -- it has lost track, which is what
  ``ERROR`` means.

A state this table does not know (a newer SLURM's) raises
:class:`UnknownSlurmStateError` from :func:`map_state`; the output parsers turn
it into ``state=None``, so that the watcher keeps the job's current state,
shows the native one, and polls on instead of guessing.
"""

from __future__ import annotations

from types import MappingProxyType

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.model.states import JobState, is_terminal

__all__ = [
    "NATIVE_STATES",
    "TERMINAL_NATIVE",
    "UnknownSlurmStateError",
    "map_state",
    "normalise_state",
]

# (long form, compact code, hpcbox state); the names are SLURM's own
# (job_state_string and job_state_string_compact in slurm_protocol_defs.c).
_TABLE: tuple[tuple[str, str | None, JobState], ...] = (
    ("PENDING", "PD", JobState.PENDING),
    ("CONFIGURING", "CF", JobState.PENDING),
    # Newer SLURMs name this flag in squeue's complete form; it has no code.
    ("POWER_UP_NODE", None, JobState.PENDING),
    ("REQUEUED", "RQ", JobState.PENDING),
    ("REQUEUE_FED", "RF", JobState.PENDING),
    ("REQUEUE_HOLD", "RH", JobState.PENDING),
    ("RESV_DEL_HOLD", "RD", JobState.PENDING),
    ("RUNNING", "R", JobState.RUNNING),
    ("COMPLETING", "CG", JobState.RUNNING),
    ("STAGE_OUT", "SO", JobState.RUNNING),
    ("SIGNALING", "SI", JobState.RUNNING),
    ("SUSPENDED", "S", JobState.RUNNING),
    ("STOPPED", "ST", JobState.RUNNING),
    ("RESIZING", "RS", JobState.RUNNING),
    ("COMPLETED", "CD", JobState.COMPLETED),
    ("FAILED", "F", JobState.FAILED),
    ("SPECIAL_EXIT", "SE", JobState.FAILED),
    ("CANCELLED", "CA", JobState.CANCELLED),
    ("PREEMPTED", "PR", JobState.CANCELLED),
    ("TIMEOUT", "TO", JobState.TIMEOUT),
    ("DEADLINE", "DL", JobState.TIMEOUT),
    ("OUT_OF_MEMORY", "OOM", JobState.OUT_OF_MEMORY),
    ("NODE_FAIL", "NF", JobState.NODE_FAIL),
    ("BOOT_FAIL", "BF", JobState.NODE_FAIL),
    ("REVOKED", "RV", JobState.ERROR),
)

NATIVE_STATES: MappingProxyType[str, JobState] = MappingProxyType(
    {name: state for long, code, state in _TABLE for name in (long, code) if name}
)
"""Every native state SLURM 22.05 reports, long form and compact code, to its hpcbox state."""

_LONG_FORM = {name: long for long, code, _ in _TABLE for name in (long, code) if name}

TERMINAL_NATIVE: frozenset[str] = frozenset(
    name for name, state in NATIVE_STATES.items() if is_terminal(state)
)
"""Native states (long and compact) after which SLURM will not run the job again."""


class UnknownSlurmStateError(PermanentError):
    """A native state that this version of hpcbox does not know."""

    def __init__(self, native: str) -> None:
        super().__init__(f"unknown SLURM job state {native!r}")
        self.native = native


def normalise_state(native: str) -> str:
    """SLURM's long-form state name for ``native``, without decorations.

    ``"CANCELLED by 1000"`` and ``"CANCELL+"`` give ``"CANCELLED"``;
    ``"RUNNING,COMPLETING"`` (squeue's complete form) gives its base,
    ``"RUNNING"``; a compact code gives its long form (``"PD"`` -> ``"PENDING"``).
    Unknown names come back stripped and upper-cased, so that they can still
    be shown.
    """
    words = native.strip().upper().split()
    name = words[0].split(",")[0] if words else ""
    if name.endswith("+"):
        # sacct's fixed-width columns cut long names and mark the cut with '+'.
        prefix = name.rstrip("+")
        matches = [long for long, _, _ in _TABLE if long.startswith(prefix)]
        return matches[0] if len(matches) == 1 else name
    return _LONG_FORM.get(name, name)


def map_state(native: str) -> JobState:
    """hpcbox's state for SLURM's ``native`` state (any form :func:`normalise_state` takes).

    Raises :class:`UnknownSlurmStateError` for a state that is not in
    :data:`NATIVE_STATES`; callers that must not stop (the watcher) catch it
    and keep the job's current state.
    """
    name = normalise_state(native)
    try:
        return NATIVE_STATES[name]
    except KeyError:
        raise UnknownSlurmStateError(native.strip()) from None
