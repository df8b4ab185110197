"""The SLURM backend's I/O: submit, find, poll, cancel and read logs over a Transport.

Everything it sends is built by the pure modules beside it (argv lists, quoted
by the transport; scripts uploaded as files), and everything it reads is parsed
there. One :class:`SlurmRemote` serves one target.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpcbox.core.errors import PermanentError, TransientError
from hpcbox.jobs.backends.slurm.batch_submit import (
    UNPACK_FAILED,
    BatchFile,
    SubmitOutcome,
    pack_files,
    parse_submit_output,
    submit_many_argv,
)
from hpcbox.jobs.backends.slurm.commands import (
    SlurmStatus,
    is_job_gone,
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
from hpcbox.jobs.backends.slurm.poll import PollPlan
from hpcbox.jobs.backends.slurm.ratelimit import RateLimit
from hpcbox.jobs.backends.slurm.script import (
    is_attempt_dir,
    job_files,
    job_name,
    render_batch_script,
    user_script,
)
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.states import JobState

if TYPE_CHECKING:
    # Types only: importing the transport package loads asyncssh, which one-shot
    # CLI calls that never touch a target should not pay for.
    from hpcbox.infra.transport.base import CommandResult, Transport

__all__ = ["PollResult", "SlurmRemote"]


@dataclass(frozen=True)
class PollResult:
    """What one batched poll learnt: statuses by SLURM job id, the ids nobody knows
    any more (not in squeue, sacct nor an exit-code file), and how many remote
    commands it took."""

    statuses: Mapping[str, SlurmStatus]
    unknown: tuple[str, ...]
    commands: int


def _text(result: CommandResult) -> str:
    return result.stdout.decode("utf-8", "replace")


class SlurmRemote:
    """One SLURM target reached through ``transport``.

    Every SLURM command (sbatch, squeue, sacct, scancel) first takes a token
    from ``limit``, shared by everything that talks to the target; file
    transfers over SFTP do not reach slurmctld and take none.
    """

    def __init__(
        self, transport: Transport, *, job_root: str | None = None, limit: RateLimit | None = None
    ) -> None:
        self.transport = transport
        self.job_root = job_root
        self.limit = limit

    def _slurm(self, argv: Sequence[str]) -> CommandResult:
        """Run a SLURM command once the rate limit lets it go."""
        self._wait_for_tokens(1)
        return self.transport.run(argv)

    def _wait_for_tokens(self, count: int) -> None:
        """Take ``count`` tokens and wait until the last of them is due (a batch's
        calls then run back to back, never ahead of the rate)."""
        if self.limit is None:
            return
        now = time.monotonic()
        delay = max(self.limit.reserve(now) for _ in range(count))
        if delay > 0:
            time.sleep(delay)

    def _home(self) -> str:
        """Where ``.hpcbox/jobs`` lives: the target's job root, else the user's home
        (which must be shared by the cluster's nodes, as homes usually are)."""
        return self.job_root or self.transport.home()

    def _files(self, job: Job, home: str) -> list[BatchFile]:
        """The attempt's files: its script (verbatim; none for command jobs) and
        its batch script."""
        attempt = job.current.number
        files = job_files(job.id, attempt, home=home)
        batch = render_batch_script(job.spec, job_id=job.id, attempt=attempt, home=home)
        out = [BatchFile(files.batch, batch.encode())]
        text = user_script(job.spec)
        if text is not None:
            out.insert(0, BatchFile(files.script, text.encode()))
        return out

    def submit(self, job: Job) -> str:
        """Upload the attempt's scripts over SFTP and ``sbatch`` them; return the
        SLURM job id.

        Raises TransientError when the outcome is unknown (the connection broke),
        PermanentError when SLURM refused the job.
        """
        home = self._home()
        for item in self._files(job, home):
            # put_file creates the attempt's directory (SFTP), which saves a command.
            self.transport.put_file(item.path, item.data, mode=item.mode)
        files = job_files(job.id, job.current.number, home=home)
        result = self._slurm(sbatch_argv(files.batch, chdir=files.dir))
        if result.exit_code != 0:
            raise PermanentError(f"sbatch refused the job: {result.stderr.decode()[-1000:]}")
        return parse_sbatch(_text(result))

    def submit_many(self, jobs: Sequence[Job]) -> list[SubmitOutcome]:
        """Submit ``jobs`` with one SFTP upload (a tar of all their files) and one
        remote command (unpack, then one ``sbatch`` per job; see
        :mod:`.batch_submit`); one outcome per job, in order.

        Each job still takes one token of the rate limit (each sbatch is one RPC
        to slurmctld). Raises TransientError when the outcome of the command is
        unknown as a whole (the link broke before it answered), PermanentError
        when the files could not be unpacked (no job was submitted).
        """
        if not jobs:
            return []
        home = self._home()
        files = [item for job in jobs for item in self._files(job, home)]
        archive = f"{home.rstrip('/')}/.hpcbox/upload-{secrets.token_hex(8)}.tar"
        self.transport.put_file(archive, pack_files(files, root=home), mode=0o600)
        pairs = []
        for job in jobs:
            paths = job_files(job.id, job.current.number, home=home)
            pairs.append((paths.dir, paths.batch))
        self._wait_for_tokens(len(jobs))
        # sbatch takes ~10-50 ms each; allow for a slow controller.
        argv = submit_many_argv(archive, home, pairs)
        result = self.transport.run(argv, timeout=60 + 2 * len(jobs))
        if result.exit_code == UNPACK_FAILED:
            raise PermanentError(
                f"could not unpack the job files in {home}: {result.stderr.decode()[-1000:]}"
            )
        return parse_submit_output(_text(result), len(jobs))

    def find(self, job: Job) -> str | None:
        """The SLURM id of this attempt if it was already submitted (by name and
        working directory, in the queue or in accounting), else None."""
        attempt = job.current.number
        name = job_name(job.id)
        found = self._slurm(squeue_by_name_argv(name))
        if found.exit_code == 0:
            for native_id, status in parse_squeue(_text(found)).items():
                if is_attempt_dir(status.work_dir, job.id, attempt):
                    return native_id
        history = self._slurm(sacct_by_name_argv(name))
        if history.exit_code == 0:
            for native_id, status in parse_sacct(_text(history)).items():
                if is_attempt_dir(status.work_dir, job.id, attempt):
                    return native_id
        return None

    def poll(self, native_ids: Sequence[str], exit_files: Mapping[str, str]) -> PollResult:
        """One squeue for all ``native_ids``, one sacct for those that left it, then
        the exit-code files of any still unknown (``exit_files``: id -> path).

        Raises TransientError when the status commands themselves fail (keep the
        jobs' states; the target is unreachable), never for a missing job.
        """
        commands = 1
        queued = self._slurm(squeue_argv(native_ids))
        if queued.exit_code == 0:
            statuses = dict(parse_squeue(_text(queued)))
        elif is_job_gone(queued.stderr.decode("utf-8", "replace")):
            statuses = {}
        else:
            raise TransientError(
                f"squeue failed ({queued.exit_code}): {queued.stderr.decode()[-300:]}"
            )
        plan = PollPlan.after_squeue(native_ids, statuses)
        if plan.sacct_ids:
            commands += 1
            history = self._slurm(sacct_argv(plan.sacct_ids))
            if history.exit_code == 0:
                statuses.update(parse_sacct(_text(history)))
        unknown = []
        for native_id in plan.sacct_ids:
            status = statuses.get(native_id)
            if status is not None and status.exit_code is not None:
                continue
            code = self._exit_file(exit_files.get(native_id))
            if code is not None:
                state = JobState.COMPLETED if code == 0 else JobState.FAILED
                statuses[native_id] = SlurmStatus(
                    native_id=native_id,
                    native_state=state.value if status is None else status.native_state,
                    reason=None if status is None else status.reason,
                    exit_code=code,
                    signal=None,
                    state=state if status is None or status.state is None else status.state,
                    start=None,
                    end=None,
                    node_list=None,
                )
            elif status is None:
                unknown.append(native_id)
        return PollResult(statuses, tuple(unknown), commands)

    def _exit_file(self, path: str | None) -> int | None:
        if path is None:
            return None
        data = self.transport.read_file(path, limit=64)
        try:
            return int(data.decode().strip()) if data.strip() else None
        except ValueError:
            return None

    def cancel(self, native_ids: Sequence[str]) -> None:
        result = self._slurm(scancel_argv(native_ids))
        if result.exit_code != 0:
            raise PermanentError(f"scancel failed: {result.stderr.decode()[-500:]}")

    def exit_file(self, job: Job, attempt: int) -> str:
        return job_files(job.id, attempt, home=self._home()).exit_code

    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        files = job_files(job.id, attempt, home=self._home())
        return files.stdout if stream == "stdout" else files.stderr

    def read_log(self, job: Job, attempt: int, stream: str, offset: int, limit: int) -> bytes:
        return self.transport.read_file(
            self.log_path(job, attempt, stream), offset=offset, limit=limit
        )
