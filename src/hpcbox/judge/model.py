"""Judge values: submissions, limits, test cases, verdicts, results, and the states
of a stored submission with their transition table.

Pure data shared by the judge pipeline (``hpcbox.judge``), the queue (in-process or
Celery) and the shells (native ``/v1/submissions``, Judge0-compatible ``/judge0``,
``hpcbox judge``). Nothing here does I/O.

Contract of a judgement: the source is compiled once (when the language compiles),
then every test case runs in a fresh sandbox; each test gets a :class:`TestResult`
and the submission an overall :class:`Verdict`, the first non-accepted test verdict
in test order (or ``COMPILATION_ERROR`` / ``INTERNAL_ERROR`` before any test ran).

A stored submission moves forward only, as :data:`TRANSITIONS` says (the one place
that decides; the store writes no other move)::

    queued ──claim──> processing ──finish──> done
                       │    ^
                       └────┘ claimed again once the lease ran out (its worker died)
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Callable, Mapping
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hpcbox.core.errors import ConflictError

__all__ = [
    "INITIAL_STATE",
    "MAX_SOURCE_BYTES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Arguments",
    "CompareMode",
    "JudgeFunction",
    "JudgeResult",
    "Limits",
    "Submission",
    "SubmissionState",
    "TestCase",
    "TestObserver",
    "TestResult",
    "Verdict",
    "can_transition",
    "check_transition",
    "entered_from",
    "is_terminal",
    "splittable",
]


class Verdict(enum.StrEnum):
    """The exact verdicts of hpcbox's native API (Judge0 ids are mapped from these)."""

    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    RUNTIME_ERROR = "runtime_error"
    COMPILATION_ERROR = "compilation_error"
    INTERNAL_ERROR = "internal_error"


class CompareMode(enum.StrEnum):
    """How a run's stdout is compared with the expected output.

    ``exact``: Judge0's rule, equal after stripping trailing whitespace of every line
    and trailing blank lines. ``tokens``: equal as whitespace-separated tokens.
    ``float``: tokens, where numeric tokens match within ``float_tolerance`` (absolute
    or relative). ``checker``: a checker program (run sandboxed) decides.
    """

    EXACT = "exact"
    TOKENS = "tokens"
    FLOAT = "float"
    CHECKER = "checker"


_FROZEN = ConfigDict(frozen=True, extra="forbid")

#: Largest program (or checker) source accepted: 8 MiB.
MAX_SOURCE_BYTES = 8 * 1024 * 1024


def splittable(value: str) -> str:
    """``value`` if it splits into arguments like a shell would (``shlex``), else
    :class:`ValueError` (as a pydantic validator: the field gets the message)."""
    try:
        shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"cannot be split into arguments: {exc}") from exc
    return value


#: Arguments written as one string (compiler options, a program's arguments).
Arguments = Annotated[str, AfterValidator(splittable)]


class Limits(BaseModel):
    """A submission's limits, for the run of each of its tests. Defaults are
    Judge0's (``judge0.conf``). The sandbox runs each test under the
    :class:`~hpcbox.judge.sandbox.spec.RunLimits` made from these."""

    model_config = _FROZEN

    cpu_time_s: float = Field(default=5.0, gt=0)
    #: Extra CPU time granted before the run is killed (Judge0's ``cpu_extra_time``);
    #: the verdict is still TLE when CPU time exceeds ``cpu_time_s``.
    cpu_extra_time_s: float = Field(default=1.0, ge=0)
    wall_time_s: float = Field(default=10.0, gt=0)
    memory_bytes: int = Field(default=128_000 * 1024, gt=0)
    stack_bytes: int = Field(default=64_000 * 1024, gt=0)
    processes: int = Field(default=60, gt=0)
    file_size_bytes: int = Field(default=1024 * 1024, gt=0)
    #: Cap on each of stdout and stderr; more is cut and gives OUTPUT_LIMIT_EXCEEDED.
    output_bytes: int = Field(default=1024 * 1024, gt=0)


class TestCase(BaseModel):
    """One test: stdin and (optionally) the expected stdout."""

    __test__ = False  # not a pytest class

    model_config = _FROZEN

    stdin: bytes = b""
    expected_output: bytes | None = None


class Submission(BaseModel):
    """What to judge. ``language`` is a key of the language registry (e.g. ``"python3"``)."""

    model_config = _FROZEN

    language: str
    source: bytes = Field(max_length=MAX_SOURCE_BYTES)
    tests: tuple[TestCase, ...] = (TestCase(),)
    limits: Limits = Limits()
    compare: CompareMode = CompareMode.EXACT
    float_tolerance: float = Field(default=1e-6, ge=0)
    #: Checker source and its language, for ``compare="checker"``. The checker runs as
    #: ``checker INPUT_FILE EXPECTED_FILE OUTPUT_FILE`` and accepts with exit code 0.
    checker_source: bytes | None = Field(default=None, max_length=MAX_SOURCE_BYTES)
    checker_language: str | None = None
    #: Split into argv like a shell would (``shlex``); no shell ever runs them.
    compiler_options: Arguments = ""
    command_line_arguments: Arguments = ""
    redirect_stderr_to_stdout: bool = False


class TestResult(BaseModel):
    """The outcome of one test case."""

    __test__ = False

    model_config = _FROZEN

    index: int
    verdict: Verdict
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    exit_signal: int | None = None
    cpu_time_s: float = 0.0
    wall_time_s: float = 0.0
    peak_memory_bytes: int = 0
    message: str = ""


class JudgeResult(BaseModel):
    """The outcome of a submission: overall verdict, compile output, per-test results."""

    model_config = _FROZEN

    verdict: Verdict
    compile_output: bytes = b""
    message: str = ""
    tests: tuple[TestResult, ...] = ()


#: Called with each test's result as soon as it finishes (for streaming to clients).
TestObserver = Callable[[TestResult], None]


class JudgeFunction(Protocol):
    """The seam between the queue/shells and the pipeline: judge one submission.

    Must not raise for anything the submitted program does; failures of hpcbox itself
    come back as ``Verdict.INTERNAL_ERROR`` with a message.
    """

    def __call__(
        self, submission: Submission, *, on_test: TestObserver | None = None
    ) -> JudgeResult: ...


# -- the states of a stored submission --------------------------------------------


class SubmissionState(enum.StrEnum):
    """Where a stored submission is. The values are what the database stores and
    what the native API shows as ``state``; Judge0's status ids 1 (In Queue) and 2
    (Processing) are shown for the first two."""

    QUEUED = "queued"
    PROCESSING = "processing"
    DONE = "done"


#: Every submission is stored queued.
INITIAL_STATE = SubmissionState.QUEUED

#: The moves a stored submission may make: queued -> processing (a worker claims
#: it), processing -> processing (claimed again once the lease ran out: its worker
#: died, and it is run again from the start), processing -> done (the claim's
#: holder stores the result). Nothing leaves done: a finished submission is only
#: read, and deleted.
TRANSITIONS: Mapping[SubmissionState, frozenset[SubmissionState]] = {
    SubmissionState.QUEUED: frozenset({SubmissionState.PROCESSING}),
    SubmissionState.PROCESSING: frozenset({SubmissionState.PROCESSING, SubmissionState.DONE}),
    SubmissionState.DONE: frozenset(),
}

#: The states a submission never leaves.
TERMINAL_STATES: frozenset[SubmissionState] = frozenset(
    state for state, moves in TRANSITIONS.items() if not moves
)


def is_terminal(state: SubmissionState) -> bool:
    """True when the submission is finished and its state will not change again."""
    return state in TERMINAL_STATES


def can_transition(current: SubmissionState, new: SubmissionState) -> bool:
    """True when the table allows ``current -> new`` (staying put only where it says)."""
    return new in TRANSITIONS[current]


def check_transition(current: SubmissionState, new: SubmissionState) -> None:
    """Raise :class:`ConflictError`, saying why, unless ``current -> new`` is allowed."""
    if can_transition(current, new):
        return
    if is_terminal(current):
        raise ConflictError(f"a {current} submission is final; it cannot become {new}")
    allowed = " or ".join(state for state in SubmissionState if state in TRANSITIONS[current])
    raise ConflictError(f"a {current} submission cannot become {new}, only {allowed}")


def entered_from(new: SubmissionState) -> frozenset[SubmissionState]:
    """The states from which a submission may move to ``new``."""
    return frozenset(state for state, moves in TRANSITIONS.items() if new in moves)
