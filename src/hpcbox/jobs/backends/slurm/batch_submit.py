"""Submitting many jobs at once (pure: builds the upload and the command, parses
the output).

Submitted one by one, a job costs two SFTP uploads (its script and its batch
script, several round trips each) and one exec channel. A batch of jobs costs
ONE SFTP upload -- a tar archive of all their files -- and ONE exec channel: a
fixed shell snippet unpacks the archive into the job root, removes it, then
runs ``sbatch --parsable`` once per job and prints each outcome after a marker
line. Every path travels as a separate argument (the transport quotes each
one), so nothing a user wrote is ever read by a shell; the snippet's text is a
constant of this module. SLURM sees the same RPCs as one command per job would
make: one ``sbatch`` each.

Output format, one block per job in order::

    @@hpcbox-sbatch <exit status of sbatch>
    <sbatch's stdout and stderr>

A block that never appears means the command died before that job's turn
(its outcome is unknown, which the caller resolves by name lookups).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.backends.slurm.commands import parse_sbatch

__all__ = [
    "UNPACK_FAILED",
    "BatchFile",
    "SubmitOutcome",
    "pack_files",
    "parse_submit_output",
    "submit_many_argv",
]

MARKER = "@@hpcbox-sbatch "
#: Exit status of the command when the archive could not be unpacked (no job was
#: submitted).
UNPACK_FAILED = 97

# Arguments: the archive, the directory to unpack it in, then pairs of (chdir,
# script). sbatch's own exit status and output are printed per job; a failing
# sbatch does not stop the others.
_LOOP = (
    "archive=$1; root=$2; shift 2; "
    'tar -x -m --no-same-owner -f "$archive" -C "$root"; rc=$?; rm -f "$archive"; '
    '[ "$rc" -eq 0 ] || exit 97; '
    'while [ "$#" -ge 2 ]; do '
    'out=$(sbatch --parsable --chdir="$1" "$2" 2>&1); rc=$?; '
    "printf '%s%s\\n%s\\n' '" + MARKER + '\' "$rc" "$out"; '
    "shift 2; done"
)


@dataclass(frozen=True)
class BatchFile:
    """A file to create: its absolute ``path``, bytes and permission bits."""

    path: str
    data: bytes
    mode: int = 0o700


@dataclass(frozen=True)
class SubmitOutcome:
    """What became of one job: its SLURM id, or why sbatch refused it, or neither
    (``unknown``: the command ended before reaching it)."""

    native_id: str | None = None
    error: PermanentError | None = None

    @property
    def unknown(self) -> bool:
        return self.native_id is None and self.error is None


def _absolute(path: str) -> str:
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"path must be absolute, without NUL, not {path!r}")
    return path


def pack_files(files: Sequence[BatchFile], *, root: str) -> bytes:
    """An uncompressed tar of ``files``, member names relative to ``root`` (every
    path must lie under it). tar creates the parent directories on unpacking."""
    root = _absolute(root).rstrip("/") or "/"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for item in files:
            name = posixpath.relpath(posixpath.normpath(_absolute(item.path)), root)
            if name == "." or name.startswith("../") or name == "..":
                raise ValueError(f"{item.path!r} is not under {root!r}")
            info = tarfile.TarInfo(name)
            info.size = len(item.data)
            info.mode = item.mode
            archive.addfile(info, io.BytesIO(item.data))
    return buffer.getvalue()


def submit_many_argv(archive: str, root: str, jobs: Sequence[tuple[str, str]]) -> list[str]:
    """``sh -c SNIPPET hpcbox-submit ARCHIVE ROOT CHDIR1 SCRIPT1 CHDIR2 SCRIPT2 ...``
    for ``jobs`` = (directory to submit from, batch script) pairs; absolute paths."""
    if not jobs:
        raise ValueError("no jobs to submit")
    argv = ["sh", "-c", _LOOP, "hpcbox-submit", _absolute(archive), _absolute(root)]
    for chdir, script in jobs:
        argv += [_absolute(chdir), _absolute(script)]
    return argv


def parse_submit_output(stdout: str, count: int) -> list[SubmitOutcome]:
    """One outcome per job, in order (missing blocks are ``unknown``).

    Text before the first marker (a chatty shell start-up file) is ignored.
    """
    blocks: list[tuple[int, str]] = []
    current: tuple[int, list[str]] | None = None
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            if current is not None:
                blocks.append((current[0], "\n".join(current[1])))
            raw = line[len(MARKER) :].strip()
            current = (int(raw) if raw.isdigit() else -1, [])
        elif current is not None:
            current[1].append(line)
    if current is not None:
        blocks.append((current[0], "\n".join(current[1])))
    outcomes: list[SubmitOutcome] = []
    for status, text in blocks[:count]:
        if status == 0:
            try:
                outcomes.append(SubmitOutcome(native_id=parse_sbatch(text)))
            except PermanentError as exc:
                outcomes.append(SubmitOutcome(error=exc))
        else:
            message = text.strip()[-1000:] or f"exit status {status}"
            refused = PermanentError(f"sbatch refused the job: {message}")
            outcomes.append(SubmitOutcome(error=refused))
    outcomes += [SubmitOutcome()] * (count - len(outcomes))
    return outcomes
