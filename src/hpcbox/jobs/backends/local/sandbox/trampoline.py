"""The fixed shell trampoline that puts a run into its cgroups, then runs bwrap.

Protocol, with ``sh -c SCRIPT hpcbox-trampoline STATUS_FD PROCS... -- BWRAP_ARGV...``:

1. the shell writes its own pid into every ``cgroup.procs`` file named before
   ``--`` (exit 125 if one write fails), so bwrap and everything it starts are
   born inside the run's cgroups;
2. it writes one byte to its stdin, which the launcher made the write end of a
   pipe: the acknowledgement that the run is placed; then it points stdin at
   ``/dev/null`` for the job;
3. it runs bwrap as a child (not ``exec``: bwrap's ``--die-with-parent`` then
   refers to this shell, which lives in its own session and so survives the
   launcher) and appends ``{"bwrap-exit-code": N}`` to the status file
   before exiting with bwrap's status. It reopens the inherited descriptor
   through ``/proc/self/fd`` (the same file, whatever its path now points
   to) because dash cannot redirect to descriptors above 9.

Paths and numbers arrive as arguments; the script text never changes, so no
value is ever parsed by the shell. The command after ``"$@"`` matters: it
keeps dash from replacing itself with bwrap.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["TRAMPOLINE_EXIT_SETUP", "TRAMPOLINE_NAME", "TRAMPOLINE_SCRIPT", "trampoline_argv"]

#: Exit status of the trampoline when it could not join a cgroup or acknowledge.
TRAMPOLINE_EXIT_SETUP = 125

#: ``$0`` of the trampoline, visible in ``ps``.
TRAMPOLINE_NAME = "hpcbox-trampoline"

TRAMPOLINE_SCRIPT = """\
st=$1; shift
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done
shift
printf x >&0 || exit 125
exec </dev/null
"$@"
rc=$?
printf '{ "bwrap-exit-code": %d }\\n' "$rc" >>"/proc/self/fd/$st"
exit "$rc"
"""


def trampoline_argv(
    sh: str, *, status_fd: int, procs_files: Sequence[str], command: Sequence[str]
) -> list[str]:
    """The argv that runs ``command`` through the trampoline (see module docstring)."""
    return [
        sh,
        "-c",
        TRAMPOLINE_SCRIPT,
        TRAMPOLINE_NAME,
        str(status_fd),
        *procs_files,
        "--",
        *command,
    ]
