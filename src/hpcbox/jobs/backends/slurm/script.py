"""A ``JobSpec`` as a SLURM batch script, and where an attempt's files live on the cluster.

Each attempt has a directory ``~/.hpcbox/jobs/<id>/<attempt>/`` on the cluster
(see :class:`JobFiles`). The runner creates it and uploads two files there:

- ``batch.sh``, from :func:`render_batch_script`: hpcbox's ``#SBATCH``
  directives and a short bash wrapper, submitted with ``sbatch``;
- ``script``, from :func:`user_script`: the user's script, byte for byte (not
  for command jobs, whose argv is written into the wrapper).

The wrapper runs the job in a subshell -- its working directory and ``env``
stay there -- and then writes the job's exit status to ``exit_code``, so that a
cluster without accounting (no sacct) still tells how a job ended.

User strings reach the wrapper only through :func:`shlex.quote`, and never
reach an ``#SBATCH`` line, whose lexer is sbatch's own (see
:mod:`~hpcbox.jobs.backends.slurm.directives`): ``workdir`` is entered with ``cd``
in the wrapper instead of ``--chdir``, and ``name`` is not sent to SLURM at
all (the SLURM job name is ``hpcbox-<id>``, which the idempotent resubmit
check looks up).

The ``#SBATCH`` lines at the top of the user's own script are copied into the
batch script -- sbatch would read them if the script were submitted by hand,
and sites need them for accounts, QOS or GPUs. They come after hpcbox's
resource directives, so they refine them (sbatch keeps the last value given),
and before hpcbox's job name and output files, which must win.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from hpcbox.core.units import format_duration
from hpcbox.jobs.backends.slurm.directives import directive, filename_pattern
from hpcbox.jobs.model.spec import JobSpec

__all__ = [
    "JOBS_DIR",
    "JobFiles",
    "is_attempt_dir",
    "job_dir",
    "job_files",
    "job_name",
    "render_batch_script",
    "user_directives",
    "user_script",
]

JOBS_DIR = ".hpcbox/jobs"
"""Where attempt directories live, relative to the user's home on the cluster."""

_MIB = 1024 * 1024
_SHELL = "/bin/bash"


def job_name(job_id: int) -> str:
    """The SLURM job name of hpcbox job ``job_id``: ``hpcbox-<id>``."""
    return f"hpcbox-{_positive(job_id, 'job id')}"


def job_dir(job_id: int, attempt: int, *, home: str) -> str:
    """The attempt's directory on the cluster: ``<home>/.hpcbox/jobs/<id>/<attempt>``.

    ``home`` is the user's absolute home directory there; raises
    :class:`ValueError` when it is not absolute.
    """
    if not home.startswith("/"):
        raise ValueError(f"home must be an absolute path, not {home!r}")
    job, run = _positive(job_id, "job id"), _positive(attempt, "attempt")
    return f"{home.rstrip('/')}/{JOBS_DIR}/{job}/{run}"


@dataclass(frozen=True)
class JobFiles:
    """The paths of one attempt's files on the cluster."""

    dir: str
    batch: str
    """The batch script that is submitted (``render_batch_script``)."""
    script: str
    """The user's script (``user_script``); absent for command jobs."""
    stdout: str
    stderr: str
    exit_code: str
    """Written by the wrapper when the job ends: its exit status and a newline."""


def job_files(job_id: int, attempt: int, *, home: str) -> JobFiles:
    """Where the files of attempt ``attempt`` of job ``job_id`` live (see :func:`job_dir`)."""
    base = job_dir(job_id, attempt, home=home)
    return JobFiles(
        dir=base,
        batch=f"{base}/batch.sh",
        script=f"{base}/script",
        stdout=f"{base}/stdout",
        stderr=f"{base}/stderr",
        exit_code=f"{base}/exit_code",
    )


def is_attempt_dir(work_dir: str | None, job_id: int, attempt: int) -> bool:
    """True when SLURM's ``work_dir`` for a job is the directory of this attempt.

    Jobs are submitted from their attempt's directory (see
    :func:`~hpcbox.jobs.backends.slurm.commands.sbatch_argv`), so this tells apart
    the attempts of one job, which share a name. Only the end of the path is
    compared: slurmdbd stores a ``"`` in a path as a backquote, so sacct's
    copy of the home part may differ from the real one.
    """
    return work_dir is not None and work_dir.endswith(f"/{JOBS_DIR}/{job_id}/{attempt}")


def user_script(spec: JobSpec) -> str | None:
    """The text to upload as the attempt's ``script`` file, verbatim; None for command jobs."""
    return spec.script


def user_directives(script: str) -> list[str]:
    """The ``#SBATCH`` lines sbatch would read from ``script``, verbatim.

    sbatch reads them from the top of the script and stops at the first line
    that is neither blank nor a comment; so does this.
    """
    found = []
    # Lines end at '\n' only, for sbatch as for bash ('\r' stays in the line).
    for line in script.split("\n"):
        if line.startswith("#SBATCH"):
            found.append(line)
        elif line.strip() and not line.lstrip().startswith("#"):
            break
    return found


def render_batch_script(spec: JobSpec, *, job_id: int, attempt: int, home: str) -> str:
    """The batch script submitted for attempt ``attempt`` of job ``job_id``.

    Always a bash script (``#!/bin/bash``): the wrapper is bash, whatever the
    user's script is written in; a user's ``#!`` line applies to the uploaded
    ``script``, which the wrapper executes. Raises
    :class:`~hpcbox.core.errors.PermanentError` when ``home`` cannot be written
    into an output directive (a line break or backslash in it) and
    :class:`ValueError` when it is not absolute.
    """
    files = job_files(job_id, attempt, home=home)
    lines = ["#!/bin/bash", f"# hpcbox job {job_id}, attempt {attempt}.", *_resources(spec)]
    if spec.script is not None:
        copied = user_directives(spec.script)
        if copied:
            lines += ["# From the job's script:", *copied]
    lines += [
        directive("job-name", job_name(job_id)),
        directive("output", filename_pattern(files.stdout)),
        directive("error", filename_pattern(files.stderr)),
        "",
        *_wrapper(spec, files),
    ]
    return "\n".join(lines) + "\n"


def _resources(spec: JobSpec) -> list[str]:
    res = spec.resources
    lines = [
        directive("nodes", res.nodes),
        directive("ntasks", res.ntasks),
        directive("cpus-per-task", res.cpus_per_task),
    ]
    if res.memory is not None:
        # SLURM counts whole megabytes (MiB); round up so the job gets at least what it asked.
        lines.append(directive("mem", f"{-(-res.memory // _MIB)}M"))
    if res.time_limit is not None:
        lines.append(directive("time", format_duration(res.time_limit)))
    if res.partition is not None:
        lines.append(directive("partition", res.partition))
    lines.append(directive("export", "ALL"))
    return lines


def _wrapper(spec: JobSpec, files: JobFiles) -> list[str]:
    script = shlex.quote(files.script)
    inner = []
    if spec.command is not None:
        run = f"exec -- {shlex.join(spec.command)}"
    elif spec.script is not None and spec.script.startswith("#!"):
        # The kernel reads the user's own #! line, which needs the execute bit;
        # set before the job's env, whose PATH might not find chmod.
        inner.append(f"chmod u+x -- {script}")
        run = f"exec -- {script}"
    else:
        run = f"exec {_SHELL} -- {script}"
    if spec.workdir is not None:
        inner.append(f"cd -- {shlex.quote(spec.workdir)} || exit 1")
    inner += [f"export {key}={shlex.quote(value)}" for key, value in spec.env.items()]
    inner.append(run)
    exit_code = shlex.quote(files.exit_code)
    partial = shlex.quote(files.exit_code + ".tmp")
    return [
        "# A requeued job runs this again: drop the exit code of the run before.",
        f"rm -f -- {exit_code}",
        "# The job runs in a subshell, so that its directory and environment",
        "# do not reach the lines below, which record how it ended.",
        "(",
        *(f"  {line}" for line in inner),
        ")",
        "hpcbox_status=$?",
        "# Written whole, then renamed: a reader never sees half a number.",
        f"printf '%s\\n' \"$hpcbox_status\" > {partial} && mv -f -- {partial} {exit_code}",
        'exit "$hpcbox_status"',
    ]


def _positive(number: int, what: str) -> int:
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"{what} must be a positive integer, not {number!r}")
    return number
