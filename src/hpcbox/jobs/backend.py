"""What the engine needs from a job backend: the one interface every place jobs run implements.

A backend takes the jobs that the engine routes to it (by target) and drives their
attempts through the states, in the store the engine hands it: it submits or
starts them, follows them, stops them and reads their output. The engine owns the
store, the state machine, the scheduler lock and the wake-ups, and never asks
which backend it talks to: whatever differs between backends is a method here.

A backend answers from the store and its own traces only (never from memory kept
since an earlier call), so that a fresh process can take over from a dead one.
Backends are found through the ``hpcbox.backends`` entry point
(:mod:`hpcbox.jobs.registry`): the entry point names a callable (usually the
class) that takes a :class:`BackendContext` and returns the :class:`Backend`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from hpcbox.core.settings import Settings
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec
from hpcbox.jobs.store import JobStore
from hpcbox.jobs.target_store import TargetStore

if TYPE_CHECKING:
    from hpcbox.infra.transport.credentials import CredentialStore

__all__ = ["Backend", "BackendContext", "BackendFactory", "Wakeups"]


@dataclass(frozen=True)
class BackendContext:
    """What the engine hands every backend it makes."""

    settings: Settings
    store: JobStore
    targets: TargetStore
    #: True while this process is the scheduling one (it holds the scheduler lock):
    #: work a backend does in threads of its own stops when this turns False.
    scheduling: Callable[[], bool]


@dataclass(frozen=True)
class Wakeups:
    """What the scheduling process's sleep must watch for a backend."""

    #: File descriptors that become readable when something of the backend's
    #: happens (a job's pidfd when it exits).
    fds: tuple[int, ...] = ()
    #: The longest sleep before the backend must step again (a time limit falls
    #: due); None: no bound of its own.
    within: float | None = None


class Backend(ABC):
    """A place jobs run. Plugins register under the ``hpcbox.backends`` entry point.

    Methods are called from any process (admission, cancel, logs) or, for
    :meth:`step`, :meth:`wakeups`, :meth:`wake` and :meth:`close`, from the one
    process that schedules (it holds the scheduler lock).
    """

    #: The backend's name, as stored with its jobs (``job.backend``) and as its
    #: entry point is named.
    name: ClassVar[str]
    #: True when every valid job waits in hpcbox's own queue, PENDING from its
    #: submission (the local queue); False when it stays NEW until the backend has
    #: handed it on in the scheduling process (an ``sbatch``).
    queues_at_once: ClassVar[bool] = False

    def __init__(self, context: BackendContext) -> None:
        self.context = context

    # -- admission (any process) ------------------------------------------------------

    @abstractmethod
    def target_for(self, target: str | None) -> str | None:
        """The target to store with a job submitted to ``target`` when this backend
        runs it (``None`` and ``""`` mean this machine); None when it does not."""

    def validate(self, spec: JobSpec) -> None:  # noqa: B027 (accepting every spec is a fine default)
        """Raise :class:`~hpcbox.core.errors.InvalidInputError` when ``spec`` cannot run here."""

    # -- operations (any process) -----------------------------------------------------

    def cancel(self, job: Job) -> None:  # noqa: B027 (nothing to stop is a fine default)
        """Stop the current attempt where it runs, before the engine marks it CANCELLED.

        Raise (a :class:`~hpcbox.core.errors.TransientError` when the place is out
        of reach) to leave the job as it was rather than marked CANCELLED while it
        still runs."""

    def cancelled(self, job: Job) -> bool:
        """The engine has just marked the current attempt CANCELLED: stop what is
        left of it. True when the scheduling process must look at once (the attempt
        held resources that queued jobs may now use)."""
        return False

    @abstractmethod
    def read_log(
        self, job: Job, attempt: int, stream: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """Up to ``limit`` bytes of the attempt's ``stdout`` or ``stderr`` from
        ``offset``, and the stream's size so far (a missing stream reads as empty)."""

    @abstractmethod
    def log_path(self, job: Job, attempt: int, stream: str) -> str:
        """Where the attempt's ``stdout`` or ``stderr`` is written (on the place it runs)."""

    def unreachable(self, target: str) -> str | None:
        """Why ``target`` cannot be reached right now (as last seen), or None."""
        return None

    def use_credentials(self, credentials: CredentialStore) -> None:  # noqa: B027
        """Credentials handed in at run time (memory only), by target name, for the
        connections the backend makes; a backend that makes none ignores them."""

    # -- in the scheduling process ----------------------------------------------------

    @abstractmethod
    def step(self) -> int:
        """One round: start or submit what waits, collect what ended; return the
        number of the backend's active jobs. Never blocks for long: work that waits
        on a network runs in a thread of the backend's own, started here."""

    def wakeups(self) -> Wakeups:
        """What the scheduling process's sleep after :meth:`step` must watch."""
        return Wakeups()

    def wake(self) -> None:  # noqa: B027 (a backend stepped only by the engine needs nothing)
        """Something changed in the store (a submission, cancel or rerun, in this
        process or another): look now rather than at the next poll. Thread-safe."""

    def close(self) -> None:  # noqa: B027
        """Stop the backend's own threads and connections; called before the
        scheduler lock is released."""


#: What the ``hpcbox.backends`` entry point names: the context in, the backend out.
BackendFactory = Callable[[BackendContext], Backend]
