"""The pure Judge0 mapping (hpcbox.judge.judge0.mapping) on its own: requests to Submission,
results to Judge0 status ids and JSON, per shared/specs/judge0-api.md."""

from __future__ import annotations

import base64
import signal
from typing import Any

import pytest

from hpcbox.core.errors import InvalidInputError
from hpcbox.judge.judge0.mapping import (
    ALL_FIELDS,
    DEFAULT_FIELDS,
    STATUSES,
    Judge0Config,
    Judge0Request,
    Judge0ValidationError,
    StoredView,
    config_info,
    decode_text,
    parse_fields,
    parse_request,
    render_submission,
    status_for,
)
from hpcbox.judge.model import JudgeResult, TestResult, Verdict

LANGUAGES = {71: "python3", 50: "c"}
CONFIG = Judge0Config()
KB = 1024


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def parse(body: Any, *, encoded: bool = False, config: Judge0Config = CONFIG) -> Judge0Request:
    return parse_request(body, encoded=encoded, languages=LANGUAGES, config=config)


def errors_of(body: Any, *, encoded: bool = False) -> dict[str, list[str]]:
    with pytest.raises(Judge0ValidationError) as info:
        parse(body, encoded=encoded)
    assert isinstance(info.value, InvalidInputError)
    assert info.value.field == next(iter(info.value.errors))
    return info.value.errors


# -- requests -> Submission --------------------------------------------------------


def test_defaults_are_judge0s_in_seconds_and_bytes() -> None:
    req = parse({"source_code": "print(1)", "language_id": 71})
    sub = req.submission
    assert sub.language == "python3" and sub.source == b"print(1)"
    assert len(sub.tests) == 1 and sub.tests[0].stdin == b""
    assert sub.tests[0].expected_output is None
    lim = sub.limits
    assert (lim.cpu_time_s, lim.cpu_extra_time_s, lim.wall_time_s) == (5.0, 1.0, 10.0)
    assert lim.memory_bytes == 128_000 * KB and lim.stack_bytes == 64_000 * KB
    assert lim.processes == 60
    assert lim.file_size_bytes == 1024 * KB and lim.output_bytes == 1024 * KB
    assert sub.compiler_options == "" and sub.command_line_arguments == ""
    assert sub.redirect_stderr_to_stdout is False
    assert req.callback_url is None and req.number_of_runs == 1
    echo = req.echo
    assert set(echo) == set(ALL_FIELDS) - {
        "token", "stdout", "stderr", "compile_output", "message", "exit_code",
        "exit_signal", "status", "status_id", "language", "created_at", "finished_at",
        "time", "wall_time", "memory",
    }  # fmt: skip
    assert echo["memory_limit"] == 128_000 and echo["cpu_time_limit"] == 5.0
    assert echo["wall_time_limit"] == 10.0 and echo["max_file_size"] == 1024
    assert echo["enable_network"] is False and echo["additional_files"] is None
    assert echo["stdin"] is None and echo["language_id"] == 71


def test_given_limits_convert_kb_to_bytes_and_keep_seconds() -> None:
    req = parse(
        {
            "source_code": "x",
            "language_id": "50",  # Judge0 accepts numbers as strings
            "cpu_time_limit": 0.5,
            "cpu_extra_time": "0.25",
            "wall_time_limit": 2,
            "memory_limit": 65536,
            "stack_limit": 1000,
            "max_processes_and_or_threads": 3,
            "max_file_size": 10,
            "number_of_runs": 4,
            "redirect_stderr_to_stdout": "true",
            "compiler_options": "-O2 -lm",
            "command_line_arguments": "a 'b c'",
            "callback_url": "https://example.org/cb",
        }
    )
    lim = req.submission.limits
    assert lim.cpu_time_s == 0.5 and lim.cpu_extra_time_s == 0.25 and lim.wall_time_s == 2
    assert lim.memory_bytes == 65536 * KB and lim.stack_bytes == 1000 * KB
    assert lim.processes == 3 and lim.file_size_bytes == lim.output_bytes == 10 * KB
    assert req.submission.language == "c" and len(req.submission.tests) == 4
    assert req.number_of_runs == 4 and req.echo["language_id"] == 50
    assert req.submission.redirect_stderr_to_stdout is True
    assert req.submission.compiler_options == "-O2 -lm"
    assert req.submission.command_line_arguments == "a 'b c'"
    assert req.callback_url == "https://example.org/cb"
    assert req.echo["memory_limit"] == 65536 and req.echo["cpu_extra_time"] == 0.25


def test_maximums_themselves_are_accepted() -> None:
    req = parse(
        {
            "source_code": "x",
            "language_id": 71,
            "cpu_time_limit": 15,
            "cpu_extra_time": 5,
            "wall_time_limit": 20,
            "memory_limit": 512_000,
            "stack_limit": 128_000,
            "max_processes_and_or_threads": 120,
            "max_file_size": 4096,
            "number_of_runs": 20,
            "compiler_options": "o" * 512,
        }
    )
    assert req.submission.limits.memory_bytes == 512_000 * KB
    assert len(req.submission.tests) == 20


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cpu_time_limit", 15.001, "must be less than or equal to 15"),
        ("cpu_extra_time", 5.5, "must be less than or equal to 5"),
        ("wall_time_limit", 20.5, "must be less than or equal to 20"),
        ("memory_limit", 512_001, "must be less than or equal to 512000"),
        ("stack_limit", 128_001, "must be less than or equal to 128000"),
        ("max_processes_and_or_threads", 121, "must be less than or equal to 120"),
        ("max_file_size", 4097, "must be less than or equal to 4096"),
        ("number_of_runs", 21, "must be less than or equal to 20"),
        ("cpu_time_limit", 0, "must be greater than 0"),
        ("wall_time_limit", 0, "must be greater than 0"),
        ("cpu_extra_time", -0.1, "must be greater than or equal to 0"),
        ("memory_limit", 2047, "must be greater than or equal to 2048"),
        ("stack_limit", 0, "must be greater than or equal to 1"),
        ("number_of_runs", 0, "must be greater than or equal to 1"),
        ("memory_limit", 1000.5, "must be an integer"),
        ("max_file_size", "12.5", "must be an integer"),
        ("cpu_time_limit", "fast", "is not a number"),
        ("cpu_time_limit", True, "is not a number"),
        ("memory_limit", [1], "is not a number"),
        ("redirect_stderr_to_stdout", "yes", "must be true or false"),
        ("enable_network", True, "setting enable_network is not allowed"),
        ("enable_per_process_and_thread_time_limit", "true",
         "setting enable_per_process_and_thread_time_limit is not allowed"),
        ("enable_per_process_and_thread_memory_limit", True,
         "setting enable_per_process_and_thread_memory_limit is not allowed"),
        ("additional_files", b64("PK"), "additional files are not enabled"),
        ("callback_url", "file:///etc/passwd", "must be an http:// or https:// URL"),
        ("callback_url", 42, "must be an http:// or https:// URL"),
        ("compiler_options", "x" * 513, "is too long (maximum is 512 characters)"),
        ("command_line_arguments", ["-v"], "must be a string"),
        ("stdin", 5, "must be a string"),
    ],
)  # fmt: skip
def test_invalid_fields_are_refused_naming_the_field(
    field: str, value: object, message: str
) -> None:
    assert errors_of({"source_code": "x", "language_id": 71, field: value}) == {field: [message]}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf"), 10**400])
@pytest.mark.parametrize("field", ["cpu_time_limit", "cpu_extra_time", "memory_limit"])
def test_non_finite_and_overflowing_numbers_are_422_not_a_crash(field: str, value: object) -> None:
    # Found by this test: "nan" passed every comparison and reached Limits (a
    # pydantic error, HTTP 500); 10**400 raised OverflowError.
    assert errors_of({"source_code": "x", "language_id": 71, field: value}) == {
        field: ["is not a number"]
    }


def test_wall_time_follows_a_cpu_limit_asked_alone() -> None:
    # Judge0 refuses neither: a CPU limit above the default wall limit gets room.
    alone = parse({"source_code": "x", "language_id": 71, "cpu_time_limit": 12})
    assert alone.submission.limits.cpu_time_s == 12
    assert alone.submission.limits.wall_time_s == 13  # cpu + the default extra 1 s
    both = parse({"source_code": "x", "language_id": 71, "cpu_time_limit": 3, "wall_time_limit": 2})
    assert both.submission.limits.wall_time_s == 2  # as asked: the wall clock ends it
    capped = parse(
        {"source_code": "x", "language_id": 71, "cpu_time_limit": 15, "cpu_extra_time": 5}
    )
    assert capped.submission.limits.wall_time_s == 20  # the maximum wall time


def test_every_offending_field_is_reported_at_once() -> None:
    errors = errors_of({"memory_limit": 10**7, "number_of_runs": 99, "language_id": 1})
    assert errors == {
        "source_code": ["can't be blank"],
        "language_id": ["language with id 1 doesn't exist"],
        "memory_limit": ["must be less than or equal to 512000"],
        "number_of_runs": ["must be less than or equal to 20"],
    }


@pytest.mark.parametrize(
    ("language_id", "message"),
    [
        (None, "can't be blank"),
        ("python", "is not a number"),
        (float("inf"), "is not a number"),  # found by this test: OverflowError before
        (float("nan"), "is not a number"),
        ([71], "is not a number"),
        (9999, "language with id 9999 doesn't exist"),
        (True, "language with id True doesn't exist"),
    ],
)
def test_language_id(language_id: object, message: str) -> None:
    body: dict[str, Any] = {"source_code": "x"}
    if language_id is not None:
        body["language_id"] = language_id
    assert errors_of(body) == {"language_id": [message]}


@pytest.mark.parametrize("body", [None, [], "source", 3])
def test_body_must_be_an_object(body: object) -> None:
    assert errors_of(body) == {"submission": ["must be a JSON object"]}


def test_blank_source_is_refused_plain_and_base64() -> None:
    assert errors_of({"language_id": 71, "source_code": ""}) == {"source_code": ["can't be blank"]}
    assert errors_of({"language_id": 71, "source_code": ""}, encoded=True) == {
        "source_code": ["can't be blank"]
    }


# -- base64 ------------------------------------------------------------------------


def test_base64_in_decodes_every_text_field() -> None:
    req = parse(
        {
            "source_code": b64("print(input())"),
            "language_id": 71,
            "stdin": b64(b"\x00\xff\n"),
            "expected_output": b64("é\n"),
        },
        encoded=True,
    )
    sub = req.submission
    assert sub.source == b"print(input())"
    assert sub.tests[0].stdin == b"\x00\xff\n"
    assert sub.tests[0].expected_output == "é\n".encode()


def test_base64_wrapped_in_lines_as_ruby_clients_send_it() -> None:
    # Ruby's Base64.encode64 (Judge0's own clients) breaks lines every 60 characters.
    source = "x = 1\n" * 40
    wrapped = "\n".join(b64(source)[i : i + 60] for i in range(0, len(b64(source)), 60)) + "\n"
    assert parse({"source_code": wrapped, "language_id": 71}, encoded=True).submission.source == (
        source.encode()
    )


@pytest.mark.parametrize("value", ["abc", "a", "QUJD=====x", "é" * 8, "\ud800AAA"])
@pytest.mark.parametrize("field", ["source_code", "stdin", "expected_output"])
def test_invalid_base64_is_422_naming_the_field(field: str, value: str) -> None:
    body = {"source_code": b64("x"), "language_id": 71, field: value}
    assert errors_of(body, encoded=True) == {field: ["is not valid base64"]}


def test_decode_text() -> None:
    assert decode_text(None, field="stdin", encoded=True) is None
    assert decode_text("hé", field="stdin", encoded=False) == "hé".encode()
    assert decode_text(b64(b"\x00"), field="stdin", encoded=True) == b"\x00"
    with pytest.raises(Judge0ValidationError) as info:
        decode_text(1, field="stdin", encoded=False)
    assert info.value.errors == {"stdin": ["must be a string"]}


def test_lone_surrogate_in_plain_text_is_422_not_a_crash() -> None:
    # Found by this test: "\ud800" is valid JSON but not UTF-8; it raised
    # UnicodeEncodeError (HTTP 500).
    assert errors_of({"source_code": "\ud800", "language_id": 71}) == {
        "source_code": ["is not valid UTF-8"]
    }
    assert errors_of({"source_code": "x", "stdin": "a\udfffb", "language_id": 71}) == {
        "stdin": ["is not valid UTF-8"]
    }


# -- hostile input ------------------------------------------------------------------


def test_hostile_text_is_kept_byte_for_byte() -> None:
    source = "print('\\x00')\x00\r\n# ☃ 𝄞 \u202e\n" + "y" * 5_000_000
    stdin = "line1\nline2\r\n\x00\x1b[31m\n"
    req = parse({"source_code": source, "language_id": 71, "stdin": stdin, "expected_output": ""})
    assert req.submission.source == source.encode()
    assert req.submission.tests[0].stdin == stdin.encode()
    assert req.submission.tests[0].expected_output == b""
    encoded = parse(
        {"source_code": b64(source), "language_id": 71, "stdin": b64(stdin)}, encoded=True
    )
    assert encoded.submission.source == source.encode()
    assert base64.b64decode(encoded.echo["source_code"]) == source.encode()


def test_hostile_options_stay_data() -> None:
    opts = "-O2; rm -rf / `id` $(id)\n'\"' \"'\""
    req = parse({"source_code": "x", "language_id": 50, "compiler_options": opts})
    assert req.submission.compiler_options == opts
    assert req.echo["compiler_options"] == opts


@pytest.mark.parametrize("name", ["compiler_options", "command_line_arguments"])
def test_options_that_cannot_be_split_are_refused(name: str) -> None:
    errors = errors_of({"source_code": "x", "language_id": 50, name: "-DX='unclosed"})
    assert list(errors) == [name]
    assert "cannot be split" in errors[name][0]


# -- fields= ------------------------------------------------------------------------


def test_parse_fields() -> None:
    assert parse_fields(None) == DEFAULT_FIELDS
    assert parse_fields("") == DEFAULT_FIELDS
    assert parse_fields(" , ") == DEFAULT_FIELDS
    assert parse_fields("*") == ALL_FIELDS
    assert parse_fields("stdout,*") == ALL_FIELDS
    assert parse_fields(" status , stdout,status,") == ("status", "stdout")
    assert DEFAULT_FIELDS == (
        "token", "stdout", "time", "memory", "stderr", "compile_output", "message", "status",
    )  # fmt: skip


@pytest.mark.parametrize("raw", ["stdout,nope", "STDOUT", "stdout;status", "std\x00out", "☃"])
def test_unknown_fields_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_fields(raw)
    assert info.value.field == "fields" and "invalid fields" in str(info.value)


# -- results -> status ids ------------------------------------------------------------


def run(verdict: Verdict, index: int = 0, **kw: Any) -> TestResult:
    return TestResult(index=index, verdict=verdict, **kw)


RE = Verdict.RUNTIME_ERROR


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (JudgeResult(verdict=Verdict.ACCEPTED, tests=(run(Verdict.ACCEPTED, exit_code=0),)), 3),
        (JudgeResult(verdict=Verdict.WRONG_ANSWER, tests=(run(Verdict.WRONG_ANSWER),)), 4),
        (JudgeResult(verdict=Verdict.TIME_LIMIT_EXCEEDED,
                     tests=(run(Verdict.TIME_LIMIT_EXCEEDED, exit_signal=9),)), 5),
        (JudgeResult(verdict=Verdict.COMPILATION_ERROR, compile_output=b"error"), 6),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_signal=int(signal.SIGSEGV)),)), 7),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_signal=int(signal.SIGXFSZ)),)), 8),
        (JudgeResult(verdict=Verdict.OUTPUT_LIMIT_EXCEEDED,
                     tests=(run(Verdict.OUTPUT_LIMIT_EXCEEDED, exit_code=0),)), 8),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_signal=int(signal.SIGFPE)),)), 9),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_signal=int(signal.SIGABRT)),)), 10),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_code=1),)), 11),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_code=-1),)), 11),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_signal=int(signal.SIGKILL)),)), 12),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_signal=int(signal.SIGBUS)),)), 12),
        (JudgeResult(verdict=RE, tests=(run(RE, exit_code=0),)), 12),
        (JudgeResult(verdict=RE), 12),
        # Judge0 has no memory limit status: the runtime error the run shows.
        (JudgeResult(verdict=Verdict.MEMORY_LIMIT_EXCEEDED,
                     tests=(run(Verdict.MEMORY_LIMIT_EXCEEDED, exit_signal=9),)), 12),
        (JudgeResult(verdict=Verdict.MEMORY_LIMIT_EXCEEDED,
                     tests=(run(Verdict.MEMORY_LIMIT_EXCEEDED, exit_code=1),)), 11),
        (JudgeResult(verdict=Verdict.INTERNAL_ERROR, message="judge broke"), 13),
    ],
)  # fmt: skip
def test_status_ids(result: JudgeResult, status: int) -> None:
    assert status_for(result) == status


def test_the_first_failing_test_decides() -> None:
    result = JudgeResult(
        verdict=RE,
        tests=(
            run(Verdict.ACCEPTED, 0, exit_code=0),
            run(RE, 1, exit_signal=int(signal.SIGFPE)),
            run(RE, 2, exit_signal=int(signal.SIGSEGV)),
        ),
    )
    assert status_for(result) == 9


def test_statuses_table_is_judge0s() -> None:
    assert sorted(STATUSES) == list(range(1, 15))
    assert STATUSES[3] == "Accepted" and STATUSES[11] == "Runtime Error (NZEC)"
    assert STATUSES[13] == "Internal Error" and STATUSES[14] == "Exec Format Error"


# -- rendering -----------------------------------------------------------------------


def view(result: JudgeResult | None, state: str = "done", **echo: Any) -> StoredView:
    req = parse({"source_code": "src", "language_id": 71, "stdin": "in", **echo})
    return StoredView(
        token="tok",
        state=state,
        echo=req.echo,
        result=result,
        created_at="2024-01-01T00:00:00Z",
        finished_at="2024-01-01T00:00:01Z" if state == "done" else None,
        language_name="Python (3.11.2)",
    )


def test_render_times_in_seconds_and_memory_in_kb() -> None:
    tests = (
        run(Verdict.ACCEPTED, 0, stdout=b"a", exit_code=0, cpu_time_s=0.01, wall_time_s=0.1,
            peak_memory_bytes=3 * 1024 * 1024),
        run(Verdict.ACCEPTED, 1, stdout=b"b", exit_code=0, cpu_time_s=0.0205, wall_time_s=0.3,
            peak_memory_bytes=5000 * 1024 + 1023),
    )  # fmt: skip
    got = render_submission(
        view(JudgeResult(verdict=Verdict.ACCEPTED, tests=tests)), fields=ALL_FIELDS, encoded=False
    )
    # Judge0 reports the mean time over the runs and the largest memory.
    assert got["time"] == "0.015" and got["wall_time"] == "0.200"
    assert got["memory"] == 5000
    assert got["status"] == {"id": 3, "description": "Accepted"} and got["status_id"] == 3
    assert got["stdout"] == "a" and got["exit_code"] == 0 and got["exit_signal"] is None
    assert got["source_code"] == "src" and got["stdin"] == "in"
    assert got["language"] == {"id": 71, "name": "Python (3.11.2)"}
    assert got["token"] == "tok" and got["finished_at"] == "2024-01-01T00:00:01Z"
    assert list(got) == list(ALL_FIELDS)


def test_render_queued_and_processing() -> None:
    for state, status in (("queued", 1), ("processing", 2)):
        got = render_submission(view(None, state), fields=ALL_FIELDS, encoded=True)
        assert got["status"] == {"id": status, "description": STATUSES[status]}
        assert got["time"] is None and got["memory"] is None and got["stdout"] is None
        assert base64.b64decode(got["source_code"]) == b"src"


def test_render_base64_out_and_messages() -> None:
    failing = run(RE, 0, stdout=b"\xff\x00", stderr=b"Traceback\n", exit_code=3)
    result = JudgeResult(verdict=RE, compile_output=b"warning: x", tests=(failing,))
    got = render_submission(view(result), fields=DEFAULT_FIELDS, encoded=True)
    assert set(got) == set(DEFAULT_FIELDS)
    assert base64.b64decode(got["stdout"]) == b"\xff\x00"
    assert base64.b64decode(got["stderr"]) == b"Traceback\n"
    assert base64.b64decode(got["compile_output"]) == b"warning: x"
    assert base64.b64decode(got["message"]) == b"Exited with error status 3"
    assert got["status"]["id"] == 11
    # Non-UTF-8 output as plain text: the route answers "use base64_encoded=true".
    with pytest.raises(UnicodeDecodeError):
        render_submission(view(result), fields=("stdout",), encoded=False)
    signalled = JudgeResult(verdict=RE, tests=(run(RE, exit_signal=11),))
    plain = render_submission(view(signalled), fields=("message", "exit_signal"), encoded=False)
    assert plain == {"message": "Exited with signal 11", "exit_signal": 11}
    internal = JudgeResult(verdict=Verdict.INTERNAL_ERROR, message="sandbox setup failed")
    got = render_submission(view(internal), fields=("message", "status", "time"), encoded=False)
    assert got == {
        "message": "sandbox setup failed",
        "status": {"id": 13, "description": "Internal Error"},
        "time": None,
    }


def test_render_hostile_unicode_output_round_trips() -> None:
    out = "☃ 𝄞\u202e\x00\r\nend"
    result = JudgeResult(
        verdict=Verdict.ACCEPTED, tests=(run(Verdict.ACCEPTED, stdout=out.encode(), exit_code=0),)
    )
    assert render_submission(view(result), fields=("stdout",), encoded=False) == {"stdout": out}
    encoded = render_submission(view(result), fields=("stdout",), encoded=True)
    assert base64.b64decode(encoded["stdout"]).decode() == out


def test_config_info_has_every_key_clients_validate() -> None:
    info = config_info(Judge0Config(max_queue_size=7))
    assert info["max_queue_size"] == 7
    assert info["cpu_time_limit"] == 5.0 and info["max_cpu_time_limit"] == 15.0
    assert info["memory_limit"] == 128_000 and info["max_memory_limit"] == 512_000
    assert info["max_number_of_runs"] == 20 and info["max_submission_batch_size"] == 20
    assert info["enable_network"] is False and info["allow_enable_network"] is False
    assert len(info) == 39
