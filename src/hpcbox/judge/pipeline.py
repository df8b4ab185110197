"""Compile once, run every test in a fresh sandbox, compare, decide.

:func:`judge_submission` takes boxes from a ``take_box(language_key)`` callable
(the warm pool) and destroys each after its one run. Compile artifacts are
collected from the compile box as regular files only (no link is ever followed)
and written into every test's box.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hpcbox.core.errors import InvalidInputError
from hpcbox.judge.compare import outputs_match
from hpcbox.judge.languages import Language, expand_argv
from hpcbox.judge.model import (
    MAX_SOURCE_BYTES,
    CompareMode,
    JudgeResult,
    Limits,
    Submission,
    TestCase,
    TestObserver,
    TestResult,
    Verdict,
)
from hpcbox.judge.sandbox.box import WarmBox
from hpcbox.judge.sandbox.spec import RunLimits, RunResult, RunSpec
from hpcbox.judge.verdicts import run_limits, run_verdict

__all__ = ["COMPILE_LIMITS", "MAX_ARTIFACTS", "MAX_SOURCE_BYTES", "judge_submission"]

TakeBox = Callable[[str], WarmBox]

#: Limits of a compilation (javac is a JVM: it needs room).
COMPILE_LIMITS = RunLimits(
    cpu_time_s=15.0,
    cpu_extra_time_s=0.0,
    wall_time_s=30.0,
    memory_bytes=768 * 1024 * 1024,
    processes=128,
    file_size_bytes=48 * 1024 * 1024,
    output_bytes=64 * 1024,
)
#: Largest total size of compile artifacts carried to the test runs.
_MAX_ARTIFACT_BYTES = 48 * 1024 * 1024
#: Most files a compilation may leave in /box (the source counts).
MAX_ARTIFACTS = 256
_STDIN = ".stdin"
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/box", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}

Files = dict[str, tuple[bytes, int]]


@dataclass(frozen=True)
class _Program:
    """A runnable program: its files and its run argv (before extra arguments)."""

    files: Files
    language: Language


class _CompileFailed(Exception):
    def __init__(self, output: bytes, message: str) -> None:
        super().__init__(message)
        self.output = output
        self.message = message


def run_env(lang: Language) -> dict[str, str]:
    """The environment of every compile and run of ``lang``."""
    return {**_ENV, **dict(lang.env)}


def build(take_box: TakeBox, lang: Language, source: bytes, options: str) -> _Program:
    """Compile ``source`` (if ``lang`` compiles) and return the runnable program.

    Raise _CompileFailed with the compiler's output.
    """
    if len(source) > MAX_SOURCE_BYTES:
        raise _CompileFailed(b"", f"source of {len(source)} bytes over {MAX_SOURCE_BYTES}")
    if lang.compile_cmd is None:
        return _Program({lang.source_file: (source, 0o644)}, lang)
    argv = expand_argv(lang.compile_cmd, options=options, memory_bytes=COMPILE_LIMITS.memory_bytes)
    with take_box(lang.key) as box:
        box.write_file(lang.source_file, source)
        result = box.run(
            RunSpec(argv=tuple(argv), env=run_env(lang), limits=COMPILE_LIMITS, merge_stderr=True)
        )
        output = result.stdout
        if result.cpu_exceeded or result.wall_exceeded:
            raise _CompileFailed(output, "compilation exceeded its time limit")
        if result.output_exceeded:
            raise _CompileFailed(output, "compiler output too long")
        if result.oom_killed:
            raise _CompileFailed(output, "compilation exceeded its memory limit")
        if result.exit_code != 0:
            ended = (
                f"killed by signal {result.signal}"
                if result.signal
                else f"exit code {result.exit_code}"
            )
            detail = result.exec_error or result.report_error or ended
            raise _CompileFailed(output, f"compilation failed ({detail})")
        files: Files = {}
        total = 0
        listing = box.list_files()
        if len(listing) > MAX_ARTIFACTS:  # each is written into every test's box
            raise _CompileFailed(output, f"too many compile artifacts (over {MAX_ARTIFACTS})")
        for name, mode in listing:
            data = box.read_file(name, max_bytes=_MAX_ARTIFACT_BYTES - total + 1)
            total += len(data)
            if total > _MAX_ARTIFACT_BYTES:
                raise _CompileFailed(output, "compile artifacts too large")
            files[name] = (data, mode & 0o755)
    return _Program(files, lang)


def run_program(
    take_box: TakeBox,
    program: _Program,
    *,
    limits: RunLimits,
    args: list[str],
    inputs: Mapping[str, bytes],
    stdin: bytes,
    merge_stderr: bool = False,
) -> RunResult:
    """Run ``program`` once in a fresh box with ``inputs`` written next to it."""
    lang = program.language
    argv = expand_argv(lang.run_cmd, memory_bytes=limits.memory_bytes) + args
    with take_box(lang.key) as box:
        for name, (data, mode) in program.files.items():
            box.write_file(name, data, mode=mode)
        for name, data in inputs.items():
            box.write_file(name, data)
        box.write_file(_STDIN, stdin)
        return box.run(
            RunSpec(
                argv=tuple(argv),
                env=run_env(lang),
                limits=limits,
                stdin_file=_STDIN,
                merge_stderr=merge_stderr,
            )
        )


def _check(
    take_box: TakeBox, checker: _Program, test: TestCase, output: bytes
) -> tuple[Verdict, str]:
    result = run_program(
        take_box,
        checker,
        limits=run_limits(Limits()),
        args=["input", "expected", "output"],
        inputs={"input": test.stdin, "expected": test.expected_output or b"", "output": output},
        stdin=b"",
    )
    if result.exit_code == 0:
        return Verdict.ACCEPTED, ""
    ended = run_verdict(result, Limits())
    if result.exit_code is not None and ended is not None and ended[0] is Verdict.RUNTIME_ERROR:
        message = result.stdout.decode(errors="replace").strip()[:500]
        return Verdict.WRONG_ANSWER, message or "rejected by the checker"
    detail = ended[1] if ended else "no verdict"
    return Verdict.INTERNAL_ERROR, f"the checker failed: {detail}"


def judge_submission(
    submission: Submission,
    languages: Mapping[str, Language],
    take_box: TakeBox,
    *,
    on_test: TestObserver | None = None,
) -> JudgeResult:
    """Judge ``submission``: compile once, run each test in a fresh box, decide.

    Raise InvalidInputError for an unknown language or malformed options (the
    caller's fault); everything the program does becomes a verdict. Errors of the
    sandbox itself propagate (the service turns them into INTERNAL_ERROR).
    """
    lang = languages.get(submission.language)
    if lang is None:
        raise InvalidInputError(f"unknown language {submission.language!r}", field="language")
    try:
        args = shlex.split(submission.command_line_arguments)
    except ValueError as exc:
        raise InvalidInputError(f"cannot split: {exc}", field="command_line_arguments") from exc
    checker: _Program | None = None
    if submission.compare is CompareMode.CHECKER:
        built = _build_checker(take_box, submission, languages)
        if isinstance(built, JudgeResult):
            return built
        checker = built
    try:
        program = build(take_box, lang, submission.source, submission.compiler_options)
    except _CompileFailed as failed:
        return JudgeResult(
            verdict=Verdict.COMPILATION_ERROR, compile_output=failed.output, message=failed.message
        )
    limits = run_limits(submission.limits)
    results: list[TestResult] = []
    for index, test in enumerate(submission.tests):
        result = run_program(
            take_box,
            program,
            limits=limits,
            args=args,
            inputs={},
            stdin=test.stdin,
            merge_stderr=submission.redirect_stderr_to_stdout,
        )
        verdict, message = _decide(take_box, submission, checker, test, result)
        test_result = TestResult(
            index=index,
            verdict=verdict,
            stdout=result.stdout,
            stderr=result.stderr,
            exit_code=result.exit_code,
            exit_signal=result.signal,
            cpu_time_s=round(result.cpu_time_s, 6),
            wall_time_s=round(result.wall_time_s, 6),
            peak_memory_bytes=result.peak_memory_bytes,
            message=message,
        )
        results.append(test_result)
        if on_test is not None:
            on_test(test_result)
    overall = next((r.verdict for r in results if r.verdict is not Verdict.ACCEPTED), None)
    return JudgeResult(verdict=overall or Verdict.ACCEPTED, tests=tuple(results))


def _build_checker(
    take_box: TakeBox, submission: Submission, languages: Mapping[str, Language]
) -> _Program | JudgeResult:
    key = submission.checker_language or submission.language
    checker_lang = languages.get(key)
    if checker_lang is None or submission.checker_source is None:
        raise InvalidInputError(
            "compare=checker needs checker_source and a known checker_language",
            field="checker_source",
        )
    try:
        return build(take_box, checker_lang, submission.checker_source, "")
    except _CompileFailed as failed:
        return JudgeResult(
            verdict=Verdict.INTERNAL_ERROR,
            compile_output=failed.output,
            message=f"the checker does not compile: {failed.message}",
        )


def _decide(
    take_box: TakeBox,
    submission: Submission,
    checker: _Program | None,
    test: TestCase,
    result: RunResult,
) -> tuple[Verdict, str]:
    ended = run_verdict(result, submission.limits)
    if ended is not None:
        return ended
    if checker is not None:
        return _check(take_box, checker, test, result.stdout)
    if test.expected_output is None:
        return Verdict.ACCEPTED, ""
    if outputs_match(
        submission.compare, test.expected_output, result.stdout, submission.float_tolerance
    ):
        return Verdict.ACCEPTED, ""
    return Verdict.WRONG_ANSWER, "output differs from the expected output"
