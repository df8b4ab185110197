"""Judge0 CE compatibility, pure: requests to :class:`Submission`, results to Judge0 JSON.

The contract is ``shared/specs/judge0-api.md`` (Judge0 CE 1.13.1). Everything here is
pure data mapping; the routes (``hpcbox.api.judge0``) do the I/O.

Units: Judge0 speaks seconds (floats) for times and kilobytes (1024 bytes, as isolate
counts them) for memory, stack and file sizes; hpcbox's :class:`Limits` speaks seconds
and bytes.

Verdicts onto Judge0 status ids (Judge0 has no memory or output limit statuses):

* memory limit exceeded -> the runtime error its signal or exit code gives (a program
  killed by the memory cgroup shows SIGKILL, so "Runtime Error (Other)"; Python's
  MemoryError exits 1, "NZEC"), as Judge0 reports such runs;
* output limit exceeded -> 8 "Runtime Error (SIGXFSZ)": Judge0 caps output through the
  file-size limit, so a flood there dies of SIGXFSZ.
"""

from __future__ import annotations

import base64
import binascii
import math
import shlex
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpcbox.core.errors import InvalidInputError
from hpcbox.judge.model import (
    MAX_SOURCE_BYTES,
    JudgeResult,
    Limits,
    Submission,
    SubmissionState,
    TestCase,
    TestResult,
    Verdict,
)

__all__ = [
    "ALL_FIELDS",
    "DEFAULT_FIELDS",
    "JUDGE0_VERSION",
    "OUTCOME_FIELDS",
    "STATUSES",
    "TEXT_FIELDS",
    "Judge0Config",
    "Judge0Request",
    "Judge0ValidationError",
    "StoredView",
    "config_info",
    "decode_text",
    "parse_fields",
    "parse_request",
    "render_submission",
    "status_for",
    "status_of_verdict",
]

#: The Judge0 CE API version these routes are compatible with (SDKs key language ids on it).
JUDGE0_VERSION = "1.13.1"

STATUSES: dict[int, str] = {
    1: "In Queue",
    2: "Processing",
    3: "Accepted",
    4: "Wrong Answer",
    5: "Time Limit Exceeded",
    6: "Compilation Error",
    7: "Runtime Error (SIGSEGV)",
    8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)",
    10: "Runtime Error (SIGABRT)",
    11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)",
    13: "Internal Error",
    14: "Exec Format Error",
}
IN_QUEUE, PROCESSING = 1, 2

#: Text fields that travel base64-encoded with ``base64_encoded=true``.
TEXT_FIELDS = (
    "source_code",
    "stdin",
    "expected_output",
    "stdout",
    "stderr",
    "compile_output",
    "message",
)
DEFAULT_FIELDS = (
    "token",
    "stdout",
    "time",
    "memory",
    "stderr",
    "compile_output",
    "message",
    "status",
)
_INPUT_FIELDS = (
    "source_code",
    "language_id",
    "compiler_options",
    "command_line_arguments",
    "stdin",
    "expected_output",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "redirect_stderr_to_stdout",
    "enable_network",
    "number_of_runs",
    "additional_files",
    "callback_url",
)
ALL_FIELDS = (
    "token",
    *_INPUT_FIELDS,
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "exit_code",
    "exit_signal",
    "status",
    "status_id",
    "language",
    "created_at",
    "finished_at",
    "time",
    "wall_time",
    "memory",
)
_MAX_OPTION_CHARS = 512
_KB = 1024


class Judge0ValidationError(InvalidInputError):
    """Invalid Judge0 input; ``errors`` is Judge0's ``{"field": ["message", ...]}``."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        field = next(iter(errors))
        super().__init__("; ".join(errors[field]), field=field)
        self.errors = {key: list(value) for key, value in errors.items()}


@dataclass(frozen=True)
class Judge0Config:
    """Limits and switches of the Judge0 routes, with Judge0's defaults (``judge0.conf``).

    Times are seconds, sizes kilobytes, as Judge0 writes them.
    """

    cpu_time_limit: float = 5.0
    max_cpu_time_limit: float = 15.0
    cpu_extra_time: float = 1.0
    max_cpu_extra_time: float = 5.0
    wall_time_limit: float = 10.0
    max_wall_time_limit: float = 20.0
    memory_limit: int = 128_000
    max_memory_limit: int = 512_000
    stack_limit: int = 64_000
    max_stack_limit: int = 128_000
    max_processes_and_or_threads: int = 60
    max_max_processes_and_or_threads: int = 120
    max_file_size: int = 1024
    max_max_file_size: int = 4096
    number_of_runs: int = 1
    max_number_of_runs: int = 20
    #: Submissions waiting in the queue before new ones are refused with 503 (Judge0: 100).
    max_queue_size: int = 100
    max_submission_batch_size: int = 20
    enable_wait_result: bool = True
    #: Judge0 disables DELETE by default; hpcbox enables it (results hold students' code).
    enable_submission_delete: bool = True
    enable_batched_submissions: bool = True
    enable_callbacks: bool = True
    callbacks_max_tries: int = 3
    #: Seconds one callback attempt may take.
    callbacks_timeout: float = 5.0


def config_info(config: Judge0Config) -> dict[str, Any]:
    """``GET /config_info``: every key Judge0 clients validate.

    Network, per-process limits and additional files are refused by hpcbox's
    sandbox (never any network; limits always cover the whole process tree).
    """
    return {
        "maintenance_mode": False,
        "enable_wait_result": config.enable_wait_result,
        "enable_compiler_options": True,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": True,
        "enable_submission_delete": config.enable_submission_delete,
        "enable_callbacks": config.enable_callbacks,
        "callbacks_max_tries": config.callbacks_max_tries,
        "callbacks_timeout": config.callbacks_timeout,
        "enable_additional_files": False,
        "max_queue_size": config.max_queue_size,
        "cpu_time_limit": config.cpu_time_limit,
        "max_cpu_time_limit": config.max_cpu_time_limit,
        "cpu_extra_time": config.cpu_extra_time,
        "max_cpu_extra_time": config.max_cpu_extra_time,
        "wall_time_limit": config.wall_time_limit,
        "max_wall_time_limit": config.max_wall_time_limit,
        "memory_limit": config.memory_limit,
        "max_memory_limit": config.max_memory_limit,
        "stack_limit": config.stack_limit,
        "max_stack_limit": config.max_stack_limit,
        "max_processes_and_or_threads": config.max_processes_and_or_threads,
        "max_max_processes_and_or_threads": config.max_max_processes_and_or_threads,
        "enable_per_process_and_thread_time_limit": False,
        "allow_enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "allow_enable_per_process_and_thread_memory_limit": False,
        "max_file_size": config.max_file_size,
        "max_max_file_size": config.max_max_file_size,
        "number_of_runs": config.number_of_runs,
        "max_number_of_runs": config.max_number_of_runs,
        "redirect_stderr_to_stdout": False,
        "max_extract_size": 0,
        "enable_batched_submissions": config.enable_batched_submissions,
        "max_submission_batch_size": config.max_submission_batch_size,
        "submission_cache_duration": 0,
        "use_docs_as_homepage": False,
        "allow_enable_network": False,
        "enable_network": False,
    }


@dataclass(frozen=True)
class Judge0Request:
    """A validated Judge0 request: what to judge, and the input fields to echo back."""

    submission: Submission
    #: The input fields as Judge0 shows them later (limits with defaults filled in;
    #: text fields as sent, decoded from base64 when they came encoded).
    echo: dict[str, Any]
    callback_url: str | None
    number_of_runs: int


def decode_text(value: Any, *, field: str, encoded: bool) -> bytes | None:
    """A Judge0 text field as bytes (None stays None); 422 naming ``field`` if invalid."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Judge0ValidationError({field: ["must be a string"]})
    if not encoded:
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") is valid JSON
            raise Judge0ValidationError({field: ["is not valid UTF-8"]}) from exc
    try:
        return base64.b64decode(value.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise Judge0ValidationError({field: ["is not valid base64"]}) from exc


def _number(
    body: Mapping[str, Any],
    name: str,
    default: float,
    maximum: float,
    errors: dict[str, list[str]],
    *,
    integer: bool,
    minimum: float = 0,
    strict_minimum: bool = False,
) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors[name] = ["is not a number"]
        return default
    try:
        number = float(value)
    except (ValueError, OverflowError):
        errors[name] = ["is not a number"]
        return default
    if not math.isfinite(number):  # "nan" and "inf" parse as floats but are no limits
        errors[name] = ["is not a number"]
        return default
    if integer and not number.is_integer():
        errors[name] = ["must be an integer"]
        return default
    shown = f"{maximum:g}"
    if number > maximum:
        errors[name] = [f"must be less than or equal to {shown}"]
    elif strict_minimum and number <= minimum:
        errors[name] = [f"must be greater than {minimum:g}"]
    elif number < minimum:
        errors[name] = [f"must be greater than or equal to {minimum:g}"]
    return number


def _flag(body: Mapping[str, Any], name: str, errors: dict[str, list[str]]) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    errors[name] = ["must be true or false"]
    return False


def parse_request(
    body: Any,
    *,
    encoded: bool,
    languages: Mapping[int, str],
    config: Judge0Config,
) -> Judge0Request:
    """Validate a Judge0 submission body; ``languages`` maps Judge0 ids to registry keys.

    Raises :class:`Judge0ValidationError` (HTTP 422) with every offending field.
    """
    if not isinstance(body, Mapping):
        raise Judge0ValidationError({"submission": ["must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    texts: dict[str, bytes | None] = {}
    for name in ("source_code", "stdin", "expected_output"):
        try:
            texts[name] = decode_text(body.get(name), field=name, encoded=encoded)
        except Judge0ValidationError as exc:
            errors.update(exc.errors)
    if "source_code" not in errors and not texts.get("source_code"):
        errors.setdefault("source_code", ["can't be blank"])
    elif len(texts.get("source_code") or b"") > MAX_SOURCE_BYTES:
        errors["source_code"] = [f"is too long (maximum is {MAX_SOURCE_BYTES} bytes)"]
    language_key = _language(body.get("language_id"), languages, errors)
    options: dict[str, str] = {}
    for name in ("compiler_options", "command_line_arguments"):
        value = body.get(name)
        if value is None:
            options[name] = ""
        elif not isinstance(value, str):
            errors[name] = ["must be a string"]
        elif len(value) > _MAX_OPTION_CHARS:
            errors[name] = [f"is too long (maximum is {_MAX_OPTION_CHARS} characters)"]
        else:
            try:
                # Split here, as the judge will, so bad quoting is the client's 422
                # and not an internal error at judging time.
                shlex.split(value)
            except ValueError as exc:
                errors[name] = [f"cannot be split into arguments: {exc}"]
            else:
                options[name] = value
    c = config
    cpu = _number(
        body, "cpu_time_limit", c.cpu_time_limit, c.max_cpu_time_limit, errors,
        integer=False, strict_minimum=True,
    )  # fmt: skip
    extra = _number(
        body, "cpu_extra_time", c.cpu_extra_time, c.max_cpu_extra_time, errors, integer=False
    )
    wall = _number(
        body, "wall_time_limit", c.wall_time_limit, c.max_wall_time_limit, errors,
        integer=False, strict_minimum=True,
    )  # fmt: skip
    memory = _number(
        body, "memory_limit", c.memory_limit, c.max_memory_limit, errors,
        integer=True, minimum=2048,
    )  # fmt: skip
    stack = _number(
        body, "stack_limit", c.stack_limit, c.max_stack_limit, errors, integer=True, minimum=1
    )
    procs = _number(
        body, "max_processes_and_or_threads", c.max_processes_and_or_threads,
        c.max_max_processes_and_or_threads, errors, integer=True, minimum=1,
    )  # fmt: skip
    fsize = _number(
        body, "max_file_size", c.max_file_size, c.max_max_file_size, errors,
        integer=True, minimum=1,
    )  # fmt: skip
    runs = _number(
        body, "number_of_runs", c.number_of_runs, c.max_number_of_runs, errors,
        integer=True, minimum=1,
    )  # fmt: skip
    if body.get("wall_time_limit") is None and not errors.keys() & {
        "cpu_time_limit",
        "wall_time_limit",
    }:
        # Only a CPU limit was asked for: give the wall clock room to use it (Judge0
        # refuses neither; a default wall limit below the CPU limit would turn the
        # CPU limit asked for into a wall-time kill).
        wall = min(max(wall, cpu + extra), c.max_wall_time_limit)
    flags = {
        name: _flag(body, name, errors)
        for name in (
            "redirect_stderr_to_stdout",
            "enable_network",
            "enable_per_process_and_thread_time_limit",
            "enable_per_process_and_thread_memory_limit",
        )
    }
    # The sandbox never has a network and always limits the whole process tree.
    for name in (
        "enable_network",
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ):
        if flags[name] and name not in errors:
            errors[name] = [f"setting {name} is not allowed"]
    if body.get("additional_files"):
        errors["additional_files"] = ["additional files are not enabled"]
    callback = body.get("callback_url")
    if callback is not None and (
        not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
    ):
        errors["callback_url"] = ["must be an http:// or https:// URL"]
    if errors:
        raise Judge0ValidationError(errors)
    assert language_key is not None  # noqa: S101 - guaranteed by the checks above
    source = texts["source_code"] or b""
    limits = Limits(
        cpu_time_s=cpu,
        cpu_extra_time_s=extra,
        wall_time_s=wall,
        memory_bytes=int(memory) * _KB,
        stack_bytes=int(stack) * _KB,
        processes=int(procs),
        file_size_bytes=int(fsize) * _KB,
        # Judge0 caps output with the file-size limit; the same cap here.
        output_bytes=int(fsize) * _KB,
    )
    test = TestCase(stdin=texts["stdin"] or b"", expected_output=texts["expected_output"])
    submission = Submission(
        language=language_key,
        source=source,
        tests=(test,) * int(runs),
        limits=limits,
        compiler_options=options["compiler_options"],
        command_line_arguments=options["command_line_arguments"],
        redirect_stderr_to_stdout=flags["redirect_stderr_to_stdout"],
    )
    echo: dict[str, Any] = {
        "source_code": _show(source),
        "language_id": int(body["language_id"]),
        "compiler_options": body.get("compiler_options"),
        "command_line_arguments": body.get("command_line_arguments"),
        "stdin": _show(texts["stdin"]),
        "expected_output": _show(texts["expected_output"]),
        "cpu_time_limit": cpu,
        "cpu_extra_time": extra,
        "wall_time_limit": wall,
        "memory_limit": int(memory),
        "stack_limit": int(stack),
        "max_processes_and_or_threads": int(procs),
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "max_file_size": int(fsize),
        "redirect_stderr_to_stdout": flags["redirect_stderr_to_stdout"],
        "enable_network": False,
        "number_of_runs": int(runs),
        "additional_files": None,
        "callback_url": callback,
    }
    return Judge0Request(submission, echo, callback, int(runs))


def _show(data: bytes | None) -> str | None:
    """Bytes kept in the echo as base64 (decoded again when rendered)."""
    return None if data is None else base64.b64encode(data).decode("ascii")


def _language(value: Any, languages: Mapping[int, str], errors: dict[str, list[str]]) -> str | None:
    if value is None:
        errors["language_id"] = ["can't be blank"]
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        errors["language_id"] = ["is not a number"]
        return None
    if isinstance(value, bool) or number not in languages:
        errors["language_id"] = [f"language with id {value} doesn't exist"]
        return None
    return languages[number]


def parse_fields(raw: str | None) -> tuple[str, ...]:
    """``fields=a,b`` or ``fields=*`` → the fields to render; raises for unknown ones."""
    if raw is None or not raw.strip():
        return DEFAULT_FIELDS
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:  # "fields=," names nothing: the defaults, not an empty object
        return DEFAULT_FIELDS
    if "*" in names:
        return ALL_FIELDS
    unknown = [name for name in names if name not in ALL_FIELDS]
    if unknown:
        raise InvalidInputError(f"invalid fields: [{', '.join(unknown)}]", field="fields")
    return tuple(dict.fromkeys(names))


def _runtime_error_status(test: TestResult) -> int:
    sig = test.exit_signal
    if sig is not None and sig > 0:
        return {
            int(signal.SIGSEGV): 7,
            int(signal.SIGXFSZ): 8,
            int(signal.SIGFPE): 9,
            int(signal.SIGABRT): 10,
        }.get(sig, 12)
    if test.exit_code not in (None, 0):
        return 11
    return 12


def _deciding_test(result: JudgeResult) -> TestResult | None:
    for test in result.tests:
        if test.verdict is not Verdict.ACCEPTED:
            return test
    return result.tests[0] if result.tests else None


#: Judge0 status ids of the verdicts whose status does not depend on how a test ended.
_SIMPLE_STATUSES: dict[str, int] = {
    Verdict.ACCEPTED: 3,
    Verdict.WRONG_ANSWER: 4,
    Verdict.TIME_LIMIT_EXCEEDED: 5,
    Verdict.COMPILATION_ERROR: 6,
    Verdict.INTERNAL_ERROR: 13,
    Verdict.OUTPUT_LIMIT_EXCEEDED: 8,
}


def status_for(result: JudgeResult) -> int:
    """The Judge0 status id of a finished judgement (see the module docstring)."""
    simple = _SIMPLE_STATUSES.get(result.verdict)
    if simple is not None:
        return simple
    test = _deciding_test(result)
    return 12 if test is None else _runtime_error_status(test)


def status_of_verdict(verdict: str | None) -> int | None:
    """The Judge0 status id of a finished judgement with ``verdict``, where the
    verdict alone decides it; None where it takes the result (runtime errors and
    memory limits: the status names the signal or exit)."""
    return None if verdict is None else _SIMPLE_STATUSES.get(verdict)


def _message(result: JudgeResult, test: TestResult | None) -> bytes | None:
    if result.message:
        return result.message.encode()
    if test is None:
        return None
    if test.message:
        return test.message.encode()
    if result.verdict in (Verdict.RUNTIME_ERROR, Verdict.MEMORY_LIMIT_EXCEEDED):
        if test.exit_signal:
            return f"Exited with signal {test.exit_signal}".encode()
        if test.exit_code:
            return f"Exited with error status {test.exit_code}".encode()
    return None


def _encode(data: bytes | None, encoded: bool) -> str | None:
    if data is None:
        return None
    if encoded:
        return base64.b64encode(data).decode("ascii")
    # Judge0 refuses to show undecodable output as text and asks for base64.
    return data.decode("utf-8")


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


@dataclass(frozen=True)
class StoredView:
    """What :func:`render_submission` needs of a stored submission."""

    token: str
    state: SubmissionState
    echo: Mapping[str, Any]
    result: JudgeResult | None
    created_at: str | None
    finished_at: str | None
    language_name: str | None = None
    #: The status id of a finished submission shown without its outcome (no field
    #: of :data:`OUTCOME_FIELDS`), when known without ``result`` (None: from it).
    status: int | None = None


#: Fields that depend on the outcome of a finished judgement.
OUTCOME_FIELDS: frozenset[str] = frozenset(
    (
        "stdout",
        "stderr",
        "compile_output",
        "message",
        "exit_code",
        "exit_signal",
        "time",
        "wall_time",
        "memory",
    )
)


def render_submission(view: StoredView, *, fields: Sequence[str], encoded: bool) -> dict[str, Any]:
    """A submission as Judge0 shows it, restricted to ``fields``.

    Output texts (``stdout``, ``stderr``, ``compile_output``, ``message``) that are
    empty are ``null``, as Judge0 stores them. Raises :class:`UnicodeDecodeError`
    when a requested text field is not UTF-8 and ``encoded`` is false (the route
    answers as Judge0 does: use base64); fields not asked for are never computed
    (a client polling for ``token,status`` pays for just those).
    """
    wanted = set(fields)
    full: dict[str, Any] = {"token": view.token}
    # Text fields as bytes, encoded (base64 or UTF-8) only if asked for.
    texts: dict[str, bytes | None] = {}
    for name in _INPUT_FIELDS:
        if name not in wanted:
            continue
        raw = view.echo.get(name)
        if name in ("source_code", "stdin", "expected_output"):
            texts[name] = None if raw is None else base64.b64decode(raw)
        else:
            full[name] = raw
    if "language" in wanted:
        language_id = view.echo.get("language_id")
        full["language"] = (
            {"id": language_id, "name": view.language_name} if view.language_name else None
        )
    full["created_at"] = view.created_at
    full["finished_at"] = view.finished_at
    done = view.state == SubmissionState.DONE
    result = view.result if done else None
    if result is None:
        if done and view.status is not None:
            status = view.status
        else:
            status = PROCESSING if view.state == SubmissionState.PROCESSING else IN_QUEUE
        texts.update(stdout=None, stderr=None, compile_output=None, message=None)
        full.update(exit_code=None, exit_signal=None, time=None, wall_time=None, memory=None)
    else:
        status = status_for(result)
        if wanted & OUTCOME_FIELDS:
            _outcome(result, texts, full)
    full["status_id"] = status
    full["status"] = {"id": status, "description": STATUSES[status]}
    return {name: _encode(texts[name], encoded) if name in texts else full[name] for name in fields}


def _outcome(result: JudgeResult, texts: dict[str, bytes | None], full: dict[str, Any]) -> None:
    """Fill in the fields of a finished judgement's outcome."""
    test = _deciding_test(result)
    runs = result.tests
    texts.update(
        stdout=(test.stdout or None) if test else None,
        stderr=(test.stderr or None) if test else None,
        compile_output=result.compile_output or None,
        message=_message(result, test) or None,
    )
    full.update(
        exit_code=test.exit_code if test else None,
        exit_signal=test.exit_signal if test else None,
        time=_seconds(_mean(t.cpu_time_s for t in runs)) if runs else None,
        wall_time=_seconds(_mean(t.wall_time_s for t in runs)) if runs else None,
        memory=max(t.peak_memory_bytes for t in runs) // _KB if runs else None,
    )
