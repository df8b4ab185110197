"""The SLURM backend; re-exported here, its pure parts: batch scripts, command lines,
output parsing, states.

:mod:`.backend` is what the engine sees (registered under the ``hpcbox.backends``
entry point); :mod:`.watcher` submits and watches jobs and :mod:`.remote` runs the
commands over a ``Transport``. The rest does no I/O: :mod:`.script` renders a
``JobSpec`` as a batch script and names the files of an attempt on the cluster;
:mod:`.commands` builds ``sbatch``/``squeue``/``sacct``/``scancel`` argv lists
and parses their output; :mod:`.states` maps SLURM's states onto hpcbox's;
:mod:`.poll` holds the watcher's arithmetic (which jobs need sacct, the
adaptive interval) and :mod:`.ratelimit` the token bucket that paces SLURM
commands.
"""

from hpcbox.jobs.backends.slurm.commands import (
    SlurmStatus,
    parse_sacct,
    parse_sbatch,
    parse_squeue,
    sacct_argv,
    sacct_by_name_argv,
    sbatch_argv,
    scancel_argv,
    squeue_argv,
    squeue_by_name_argv,
)
from hpcbox.jobs.backends.slurm.poll import PollPlan, next_interval
from hpcbox.jobs.backends.slurm.ratelimit import RateLimit
from hpcbox.jobs.backends.slurm.script import (
    JobFiles,
    is_attempt_dir,
    job_dir,
    job_files,
    job_name,
    render_batch_script,
    user_script,
)
from hpcbox.jobs.backends.slurm.states import TERMINAL_NATIVE, UnknownSlurmStateError, map_state

__all__ = [
    "TERMINAL_NATIVE",
    "JobFiles",
    "PollPlan",
    "RateLimit",
    "SlurmStatus",
    "UnknownSlurmStateError",
    "is_attempt_dir",
    "job_dir",
    "job_files",
    "job_name",
    "map_state",
    "next_interval",
    "parse_sacct",
    "parse_sbatch",
    "parse_squeue",
    "render_batch_script",
    "sacct_argv",
    "sacct_by_name_argv",
    "sbatch_argv",
    "scancel_argv",
    "squeue_argv",
    "squeue_by_name_argv",
    "user_script",
]
