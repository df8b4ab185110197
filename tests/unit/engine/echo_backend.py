"""A job backend outside hpcbox, for the tests: registered through the ``hpcbox.backends``
entry point of a distribution the tests install (a dist-info made at test time), never
named in hpcbox's code.

Jobs sent to a target whose name starts with ``echo`` "run" here: each scheduling
step moves every active job one state on (NEW -> PENDING -> RUNNING -> COMPLETED),
and a job's output is what ``echo`` would print for its command (or its script's
text). Everything is kept in the store and under ``$HPCBOX_HOME/echo/``, so another
process (a CLI call, an agent) picks up where this one left off.
"""

from __future__ import annotations

from pathlib import Path

from hpcbox.core.clock import utcnow
from hpcbox.core.errors import InvalidInputError
from hpcbox.jobs.backend import Backend, Wakeups
from hpcbox.jobs.logs import read_chunk
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.model.states import ACTIVE_STATES, JobState

__all__ = ["EchoBackend", "install"]

#: The distribution's name and what its entry point registers.
DISTRIBUTION = "hpcbox-echo-backend"
ENTRY_POINT = f"{__name__}:EchoBackend"


def install(root: Path) -> Path:
    """Make ``root`` hold an installed distribution that registers :class:`EchoBackend`
    under ``hpcbox.backends`` (its metadata only: the code is this module); put
    ``root`` on ``sys.path`` (or ``PYTHONPATH``) to install it. Returns ``root``."""
    info = root / "hpcbox_echo_backend-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        f"[hpcbox.backends]\necho = {ENTRY_POINT}\n", encoding="utf-8"
    )
    return root


class EchoBackend(Backend):
    name = "echo"

    #: How many times the engine said something changed (a submission, cancel...).
    woken = 0

    def target_for(self, target: str | None) -> str | None:
        return target if target is not None and target.startswith("echo") else None

    def validate(self, spec: JobSpec) -> None:
        if spec.resources.nodes != 1:
            raise InvalidInputError("echo runs on one node", field="resources.nodes")

    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        return str(self._dir(job.id, attempt) / stream)

    def read_log(
        self, job: Job, attempt: int, stream: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        return read_chunk(self.log_path(job, attempt, stream), offset, limit)

    def step(self) -> int:
        store = self.context.store
        active = store.list_jobs(
            states=ACTIVE_STATES, backend=self.name, limit=10_000, ascending=True
        )
        still = 0
        for job in active:
            number = job.current.number
            if job.state is JobState.NEW:
                native = f"echo-{job.id}-{number}"
                store.transition(
                    job.id,
                    number,
                    JobState.PENDING,
                    only_from={JobState.NEW},
                    native_id=native,
                    native_state="QUEUED",
                    reason="None",
                    handle={"native_id": native},
                )
                still += 1
            elif job.state is JobState.PENDING:
                run_dir = self._dir(job.id, number)
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "stdout").write_text(_output(job.current.spec))
                (run_dir / "stderr").write_bytes(b"")
                store.transition(
                    job.id,
                    number,
                    JobState.RUNNING,
                    only_from={JobState.PENDING},
                    native_state="ECHOING",
                    started_at=utcnow(),
                    run_dir=str(run_dir),
                )
                still += 1
            elif job.state is JobState.RUNNING:
                store.transition(
                    job.id,
                    number,
                    JobState.COMPLETED,
                    only_from={JobState.RUNNING},
                    native_state="DONE",
                    reason="None",
                    exit_code=0,
                    finished_at=utcnow(),
                )
        return still

    def wakeups(self) -> Wakeups:
        # Step again soon while jobs are on their way (they move one state a step).
        busy = self.context.store.list_ids(states=ACTIVE_STATES, backend=self.name)
        return Wakeups(within=0.01 if busy else None)

    def wake(self) -> None:
        type(self).woken += 1

    def _dir(self, job_id: int, attempt: int) -> Path:
        return self.context.settings.home / "echo" / str(job_id) / str(attempt)


def _output(spec: JobSpec) -> str:
    if spec.command is not None:
        return " ".join(spec.command[1:]) + "\n"
    return spec.script or ""
