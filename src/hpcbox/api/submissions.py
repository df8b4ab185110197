"""hpcbox's native judge API: ``/v1/submissions``.

One submission carries many tests (compiled once); results come per test as they
finish (poll ``/tests?after=N`` or follow ``/events``, server-sent events), with
hpcbox's exact verdicts (memory and output limit exceeded included). A repeated
``Idempotency-Key`` returns the first submission (200) instead of making another;
``priority`` (0-9, higher first) puts an exam ahead of practice; finished
submissions are kept ``retention_s`` seconds (default: the service's).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hpcbox.api.auth import require_token
from hpcbox.core.errors import InvalidInputError
from hpcbox.judge.judge0.mapping import Judge0Config
from hpcbox.judge.judge0.views import native_json, result_json
from hpcbox.judge.model import (
    MAX_SOURCE_BYTES,
    Arguments,
    CompareMode,
    Limits,
    Submission,
    SubmissionState,
    TestCase,
    is_terminal,
)
from hpcbox.judge.queue.queue import JudgeQueue

__all__ = ["SubmissionRequest", "submissions_router"]

_MAX_TESTS = 1000
#: ``?state=`` of the listing: one of the stored states.
_STATE_PATTERN = f"^({'|'.join(SubmissionState)})$"
_MAX_WAIT_S = 600.0
_KB = 1024


class TestInput(BaseModel):
    __test__ = False
    model_config = ConfigDict(extra="forbid")
    stdin: str = ""
    expected_output: str | None = None


class CheckerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: str
    source: str


class SubmissionRequest(BaseModel):
    """The body of ``POST /v1/submissions``. With ``base64: true``, ``source``,
    tests' ``stdin``/``expected_output`` and the checker's source are base64."""

    model_config = ConfigDict(extra="forbid")
    language: str = Field(description="Language key, e.g. python3, c, cpp, java, javascript")
    source: str
    tests: list[TestInput] = Field(
        default_factory=lambda: [TestInput()], min_length=1, max_length=_MAX_TESTS
    )
    limits: Limits = Limits()
    compare: CompareMode = CompareMode.EXACT
    float_tolerance: float = Field(default=1e-6, ge=0)
    checker: CheckerInput | None = None
    compiler_options: Arguments = Field(default="", max_length=512)
    command_line_arguments: Arguments = Field(default="", max_length=512)
    redirect_stderr_to_stdout: bool = False
    priority: int = Field(default=0, ge=0, le=9, description="Higher runs first")
    callback_url: str | None = Field(default=None, pattern=r"^https?://")
    retention_s: int | None = Field(default=None, ge=0)
    base64: bool = False


def _bytes(text: str, *, field: str, encoded: bool) -> bytes:
    if not encoded:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") is valid JSON
            raise InvalidInputError("is not valid UTF-8", field=field) from exc
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidInputError("is not valid base64", field=field) from exc


def _check_maxima(limits: Limits, conf: Judge0Config) -> None:
    maxima = {
        "cpu_time_s": (limits.cpu_time_s, conf.max_cpu_time_limit),
        "cpu_extra_time_s": (limits.cpu_extra_time_s, conf.max_cpu_extra_time),
        "wall_time_s": (limits.wall_time_s, conf.max_wall_time_limit),
        "memory_bytes": (limits.memory_bytes, conf.max_memory_limit * _KB),
        "stack_bytes": (limits.stack_bytes, conf.max_stack_limit * _KB),
        "processes": (limits.processes, conf.max_max_processes_and_or_threads),
        "file_size_bytes": (limits.file_size_bytes, conf.max_max_file_size * _KB),
        "output_bytes": (limits.output_bytes, conf.max_max_file_size * _KB),
    }
    for name, (value, maximum) in maxima.items():
        if value > maximum:
            raise InvalidInputError(
                f"must be less than or equal to {maximum}", field=f"limits.{name}"
            )


def to_submission(body: SubmissionRequest, conf: Judge0Config) -> Submission:
    """The request as the judge's value; InvalidInputError naming the field."""
    _check_maxima(body.limits, conf)
    plain = {
        "language": body.language,
        "compiler_options": body.compiler_options,
        "command_line_arguments": body.command_line_arguments,
        "callback_url": body.callback_url or "",
        "checker.language": "" if body.checker is None else body.checker.language,
    }
    for name, text in plain.items():  # each must be UTF-8 to be stored and hashed
        _bytes(text, field=name, encoded=False)
    enc = body.base64
    if body.compare is CompareMode.CHECKER and body.checker is None:
        raise InvalidInputError("compare=checker needs a checker", field="checker")
    tests = tuple(
        TestCase(
            stdin=_bytes(t.stdin, field=f"tests.{i}.stdin", encoded=enc),
            expected_output=None
            if t.expected_output is None
            else _bytes(t.expected_output, field=f"tests.{i}.expected_output", encoded=enc),
        )
        for i, t in enumerate(body.tests)
    )
    source = _bytes(body.source, field="source", encoded=enc)
    if not source:
        raise InvalidInputError("can't be blank", field="source")
    checker_source = (
        None
        if body.checker is None
        else _bytes(body.checker.source, field="checker.source", encoded=enc)
    )
    for where, data in (("source", source), ("checker.source", checker_source)):
        if data is not None and len(data) > MAX_SOURCE_BYTES:
            raise InvalidInputError(
                f"is too long (maximum is {MAX_SOURCE_BYTES} bytes)", field=where
            )
    return Submission(
        language=body.language,
        source=source,
        tests=tests,
        limits=body.limits,
        compare=body.compare,
        float_tolerance=body.float_tolerance,
        checker_source=checker_source,
        checker_language=None if body.checker is None else body.checker.language,
        compiler_options=body.compiler_options,
        command_line_arguments=body.command_line_arguments,
        redirect_stderr_to_stdout=body.redirect_stderr_to_stdout,
    )


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def submissions_router(queue: JudgeQueue, *, token: str | None = None) -> APIRouter:
    """The ``/v1/submissions`` routes over ``queue``."""
    conf = queue.config.judge0()
    router = APIRouter(
        prefix="/v1/submissions", tags=["judge"], dependencies=[Depends(require_token(token))]
    )

    @router.post("", status_code=201)
    async def create(
        body: SubmissionRequest,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
        wait: bool = False,
    ) -> JSONResponse:
        """Queue a submission: 201 with its JSON, or 200 with the first one for a
        repeated ``Idempotency-Key`` (409 if that key came with another body)."""
        submission = to_submission(body, conf)
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        record, created = await asyncio.to_thread(
            queue.submit,
            submission,
            api="v1",
            priority=body.priority,
            callback_url=body.callback_url,
            idempotency_key=idempotency_key,
            request_hash=digest,
            retain_s=body.retention_s,
        )
        if wait:
            record = await queue.wait_async(record.token, timeout=_MAX_WAIT_S)
        headers = {"Location": f"/v1/submissions/{record.token}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(
            native_json(record, tests=queue.store.tests(record.token), encoded=body.base64),
            status_code=201 if created else 200,
            headers=headers,
        )

    @router.get("")
    def list_submissions(
        state: Annotated[str | None, Query(pattern=_STATE_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> JSONResponse:
        """A page of submissions, newest first; ``X-Total-Count`` gives the total."""
        wanted = SubmissionState(state) if state else None
        records, total = queue.store.page(offset=offset, limit=limit, state=wanted)
        return JSONResponse(
            [native_json(r) for r in records], headers={"X-Total-Count": str(total)}
        )

    @router.get("/{token}")
    def show(token: str, base64: bool = False) -> dict[str, Any]:
        """The submission with the tests finished so far."""
        record = queue.store.get(token)
        return native_json(record, tests=queue.store.tests(token), encoded=base64)

    @router.get("/{token}/tests")
    def tests(
        token: str, after: Annotated[int, Query(ge=-1)] = -1, base64: bool = False
    ) -> dict[str, Any]:
        """Polling: the tests finished after index ``after``, and whether it is done."""
        record = queue.store.get(token)
        found = queue.store.tests(token, after=after)
        return {
            "token": token,
            "state": record.state.value,
            "done": is_terminal(record.state),
            "verdict": None if record.result is None else record.result.verdict.value,
            "tests": [result_json(t, encoded=base64) for t in found],
        }

    @router.get("/{token}/events")
    async def events(token: str, request: Request, base64: bool = False) -> StreamingResponse:
        """Server-sent events: ``test`` per finished test (in order), then ``done``
        with the whole submission."""
        await asyncio.to_thread(queue.store.get, token)  # 404 before streaming starts

        async def stream() -> AsyncIterator[bytes]:
            sent = -1
            delay = 0.01
            while not await request.is_disconnected():
                record = await asyncio.to_thread(queue.store.get, token)
                fresh = await asyncio.to_thread(queue.store.tests, token, after=sent)
                for test in fresh:
                    if test.index == sent + 1:
                        yield _sse("test", result_json(test, encoded=base64))
                        sent = test.index
                if is_terminal(record.state):
                    yield _sse("done", native_json(record, encoded=base64))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @router.delete("/{token}")
    def remove(token: str) -> dict[str, Any]:
        """Delete a submission and its results now; answers with it as it was."""
        return native_json(queue.store.delete(token))

    return router
