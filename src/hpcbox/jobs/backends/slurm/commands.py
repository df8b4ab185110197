"""SLURM's commands as argv lists, and their output parsed.

Nothing here runs anything: the SLURM backend runs these argv lists over a
``Transport`` (one argv element per argument, so nothing in them is ever
interpreted by a shell) and hands the output back to the parsers.

Watching costs a constant number of commands per poll, however many jobs are
active: one :func:`squeue_argv` for all of them, then one :func:`sacct_argv`
for those that left the queue (:mod:`~hpcbox.jobs.backends.slurm.poll` says
which). squeue is asked for every state (``--states=all``), so a job that
ended less than ``MinJobAge`` ago (300 s by default) is still listed, with its
final state -- which makes the watcher work on clusters without accounting.

squeue and sacct run under ``env SLURM_TIME_FORMAT=standard``: a user's
shell start-up files may set that variable, and times must come back as
``YYYY-MM-DDTHH:MM:SS`` (the cluster's local time) whatever it says.

Output lines are ``|``-separated. Every field but one is SLURM's own
vocabulary, which has no ``|``; the free-text field goes last, where a ``|``
in it does no harm: squeue's reason (a site may write its own text there)
and sacct's working directory. So squeue's working directory, and the home
directory it lies in, must not contain ``|``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.backends.slurm.states import UnknownSlurmStateError, map_state, normalise_state
from hpcbox.jobs.model.states import JobState

__all__ = [
    "SACCT_FIELDS",
    "SQUEUE_FIELDS",
    "SlurmStatus",
    "is_accounting_disabled",
    "is_job_gone",
    "parse_sacct",
    "parse_sbatch",
    "parse_squeue",
    "sacct_argv",
    "sacct_by_name_argv",
    "sbatch_argv",
    "scancel_argv",
    "squeue_argv",
    "squeue_by_name_argv",
]

# squeue --format codes: job id, state (long form), start, end, nodes,
# working directory, reason -- free text last.
SQUEUE_FIELDS = ("%i", "%T", "%S", "%e", "%N", "%Z", "%r")
# sacct --format fields, in the same order; sacct's Reason is one of SLURM's
# reason codes, and WorkDir is the free text.
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Start", "End", "NodeList", "Reason", "WorkDir")

_ENV = ("env", "SLURM_TIME_FORMAT=standard")
_JOB_ID = re.compile(r"[0-9]+")
# A line of ours starts with a job id (arrays: 12_3, heterogeneous jobs: 12+0);
# anything else is chatter, e.g. from a user's shell start-up files.
_RECORD = re.compile(r"[0-9]+(?:[_+][0-9]+)?\|")
_SBATCH = re.compile(r"([0-9]+)(?:;\S+)?")
# Values SLURM prints for "no value".
_EMPTY = frozenset({"", "N/A", "NONE", "UNKNOWN", "(NULL)", "NONE ASSIGNED"})
_SHOWN = 200


@dataclass(frozen=True)
class SlurmStatus:
    """One job as squeue or sacct reported it.

    ``native_state`` is SLURM's long-form state without decorations
    (``CANCELLED``, not ``CANCELLED by 1000``); ``state`` is its meaning for
    hpcbox, or None for a state hpcbox does not know (keep the job's state and
    poll on). ``exit_code`` and ``signal`` come from sacct only (squeue does
    not report them); ``signal`` is None when no signal ended the job. Times
    are SLURM's ``YYYY-MM-DDTHH:MM:SS`` in the cluster's local time, or None.
    ``work_dir`` is the job's SLURM working directory, which tells attempts of
    one job apart (they share the job name; see :func:`sbatch_argv`).
    """

    native_id: str
    native_state: str
    reason: str | None
    exit_code: int | None
    signal: int | None
    state: JobState | None
    start: str | None
    end: str | None
    node_list: str | None
    work_dir: str | None = None


def sbatch_argv(script_path: str, *, chdir: str | None = None) -> list[str]:
    """``sbatch --parsable [--chdir=DIR] SCRIPT``.

    Pass ``chdir=job_dir(...)``: SLURM then records the attempt's directory as
    the job's working directory, which the by-name lookups report back as
    ``work_dir`` -- the way to tell attempts of one job apart. (The job itself
    runs in the spec's ``workdir`` when it has one: the batch script enters it.)
    Both paths must be absolute.
    """
    argv = ["sbatch", "--parsable"]
    if chdir is not None:
        argv.append(f"--chdir={_absolute(chdir)}")
    return [*argv, _absolute(script_path)]


def parse_sbatch(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``).

    Only the last non-blank line counts, since shell start-up files may print
    before sbatch does. Raises :class:`PermanentError` when there is no job id
    -- in which case it is unknown whether the job was queued.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    match = _SBATCH.fullmatch(lines[-1]) if lines else None
    if match is None:
        raise PermanentError(f"sbatch printed no job id: {_shorten(stdout)!r}")
    return match.group(1)


def squeue_argv(job_ids: Sequence[str]) -> list[str]:
    """One squeue call for all of ``job_ids``, in every state (see :func:`parse_squeue`).

    With a single id that SLURM has forgotten, squeue fails
    (:func:`is_job_gone` recognises its message); with several, it just leaves
    the forgotten ones out. Raises :class:`ValueError` for an empty list (squeue
    would list every job) or an id that is not a number.
    """
    return [*_ENV, "squeue", "--noheader", "--states=all", _jobs(job_ids), _squeue_format()]


def squeue_by_name_argv(name: str) -> list[str]:
    """squeue for this user's jobs named ``name``, in every state (see :func:`parse_squeue`)."""
    return [
        *_ENV,
        "squeue",
        "--noheader",
        "--states=all",
        "--me",
        f"--name={_name(name)}",
        _squeue_format(),
    ]


def sacct_argv(job_ids: Sequence[str]) -> list[str]:
    """One sacct call for all of ``job_ids``, whole jobs only (no steps); see :func:`parse_sacct`.

    Raises :class:`ValueError` as :func:`squeue_argv` does.
    """
    return [*_ENV, "sacct", *_SACCT_OPTIONS, _jobs(job_ids), _sacct_format()]


def sacct_by_name_argv(name: str, *, since: str = "now-7days") -> list[str]:
    """sacct for this user's jobs named ``name`` that were eligible after ``since``.

    ``since`` is in any form sacct's ``--starttime`` takes; without it sacct
    would only look at today's jobs.
    """
    return [
        *_ENV,
        "sacct",
        *_SACCT_OPTIONS,
        f"--name={_name(name)}",
        f"--starttime={since}",
        _sacct_format(),
    ]


def scancel_argv(job_ids: Sequence[str]) -> list[str]:
    """``scancel ID...``; cancelling a job that already ended is harmless (:func:`is_job_gone`)."""
    return ["scancel", *_ids(job_ids)]


def parse_squeue(stdout: str) -> dict[str, SlurmStatus]:
    """Statuses by job id from :func:`squeue_argv` or :func:`squeue_by_name_argv` output.

    Lines that do not start with a job id are ignored (shell chatter); a line
    that does but has too few fields raises :class:`PermanentError`.
    """
    return _parse(stdout, len(SQUEUE_FIELDS), _squeue_status, "squeue")


def parse_sacct(stdout: str) -> dict[str, SlurmStatus]:
    """Statuses by job id from :func:`sacct_argv` or :func:`sacct_by_name_argv` output.

    ``ExitCode`` ``"a:b"`` gives exit code ``a`` and signal ``b`` (None when 0);
    ``"CANCELLED by 1000"`` gives state ``CANCELLED`` and, when SLURM gives no
    other reason, reason ``"cancelled by uid 1000"``. Errors as :func:`parse_squeue`.
    """
    return _parse(stdout, len(SACCT_FIELDS), _sacct_status, "sacct")


def is_job_gone(stderr: str) -> bool:
    """True when a squeue or scancel failure only means that the job is gone.

    squeue asked for one job that slurmctld has purged says "Invalid job id
    specified"; scancel of a job that ended says that too, or "already
    completing or completed". Anything else is a failure of the command.
    """
    return "Invalid job id specified" in stderr or "already completing or completed" in stderr


def is_accounting_disabled(stderr: str) -> bool:
    """True when sacct failed because the cluster keeps no accounting."""
    return "accounting storage is disabled" in stderr


_SACCT_OPTIONS = ("--noheader", "--parsable2", "--allocations")


def _squeue_format() -> str:
    return "--format=" + "|".join(SQUEUE_FIELDS)


def _sacct_format() -> str:
    return "--format=" + ",".join(SACCT_FIELDS)


def _squeue_status(fields: list[str]) -> SlurmStatus:
    job_id, state, start, end, nodes, work_dir, reason = fields
    return _status(job_id, state, reason, None, start, end, nodes, work_dir)


def _sacct_status(fields: list[str]) -> SlurmStatus:
    job_id, state, exit_code, start, end, nodes, reason, work_dir = fields
    return _status(job_id, state, reason, exit_code, start, end, nodes, work_dir)


def _status(
    job_id: str,
    raw_state: str,
    reason: str,
    exit_code: str | None,
    start: str,
    end: str,
    nodes: str,
    work_dir: str,
) -> SlurmStatus:
    native = normalise_state(raw_state)
    try:
        state: JobState | None = map_state(native)
    except UnknownSlurmStateError:
        state = None
    why = _value(reason)
    # sacct says who cancelled a job in its state ("CANCELLED by 1000").
    by = raw_state.split()
    if why is None and len(by) == 3 and by[1] == "by":
        why = f"cancelled by uid {by[2]}"
    code, signal = _exit_code(exit_code)
    return SlurmStatus(
        native_id=job_id,
        native_state=native,
        reason=why,
        exit_code=code,
        signal=signal,
        state=state,
        start=_value(start),
        end=_value(end),
        node_list=_value(nodes),
        work_dir=_value(work_dir),
    )


def _parse(
    stdout: str, count: int, make: Callable[[list[str]], SlurmStatus], command: str
) -> dict[str, SlurmStatus]:
    statuses: dict[str, SlurmStatus] = {}
    for line in stdout.splitlines():
        if not _RECORD.match(line):
            continue
        fields = line.split("|", count - 1)
        if len(fields) != count:
            raise PermanentError(f"unexpected {command} output line: {_shorten(line)!r}")
        status = make(fields)
        statuses[status.native_id] = status
    return statuses


def _exit_code(text: str | None) -> tuple[int | None, int | None]:
    code, _, signal = (text or "").partition(":")
    if not (code.isdigit() and signal.isdigit()):
        return None, None
    return int(code), int(signal) or None


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text.upper() in _EMPTY else text


def _ids(job_ids: Sequence[str]) -> list[str]:
    if isinstance(job_ids, str) or not job_ids:
        raise ValueError("give at least one job id, as a list")
    for job_id in job_ids:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a SLURM job id: {job_id!r}")
    return list(job_ids)


def _jobs(job_ids: Sequence[str]) -> str:
    return "--jobs=" + ",".join(_ids(job_ids))


def _name(name: str) -> str:
    # A comma would make it a list of names; SLURM names hold no spaces here either.
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise ValueError(f"not a job name hpcbox looks up: {name!r}")
    return name


def _absolute(path: str) -> str:
    # An absolute path cannot be mistaken for an option.
    if not path.startswith("/"):
        raise ValueError(f"path must be absolute, not {path!r}")
    return path


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
