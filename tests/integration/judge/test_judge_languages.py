"""Every language compiles/runs for real, and every verdict comes out of a real run."""

from __future__ import annotations

import pytest

from hpcbox.judge.model import CompareMode, Limits, Submission, TestCase, Verdict
from hpcbox.judge.service import JudgeService

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SUM = {
    "c": b'#include <stdio.h>\nint main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);}',
    "cpp": b"#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<std::endl;}",
    "python3": b"a, b = map(int, input().split())\nprint(a + b)\n",
    "java": b"import java.util.*;\npublic class Main { public static void main(String[] x) {"
    b" Scanner s = new Scanner(System.in); System.out.println(s.nextLong() + s.nextLong()); } }",
    "javascript": b"const [a, b] = require('fs').readFileSync(0, 'utf8').trim().split(/\\s+/)"
    b".map(Number);\nconsole.log(a + b);\n",
    "bash": b"read a b\necho $((a + b))\n",
}
TESTS = (
    TestCase(stdin=b"1 2\n", expected_output=b"3\n"),
    TestCase(stdin=b"40 2", expected_output=b"42"),
)


def test_languages_are_installed_and_working(judge: JudgeService) -> None:
    langs = {lang.key: lang for lang in judge.languages()}
    assert set(langs) == set(SUM)
    assert langs["python3"].name.startswith("Python (3.")
    assert langs["java"].name.startswith("Java (OpenJDK 17.")


@pytest.mark.parametrize("lang", sorted(SUM))
def test_sum_is_accepted_in_every_language(judge: JudgeService, lang: str) -> None:
    seen: list[int] = []
    result = judge(
        Submission(language=lang, source=SUM[lang], tests=TESTS),
        on_test=lambda t: seen.append(t.index),
    )
    assert result.verdict is Verdict.ACCEPTED, result
    assert seen == [0, 1]
    for test in result.tests:
        assert test.cpu_time_s > 0 and test.wall_time_s > 0 and test.peak_memory_bytes > 0


def test_wrong_answer_and_first_failure_decides(judge: JudgeService) -> None:
    tests = (
        TestCase(stdin=b"1 1", expected_output=b"2"),
        TestCase(stdin=b"1 1", expected_output=b"3"),
    )
    result = judge(Submission(language="python3", source=SUM["python3"], tests=tests))
    assert [t.verdict for t in result.tests] == [Verdict.ACCEPTED, Verdict.WRONG_ANSWER]
    assert result.verdict is Verdict.WRONG_ANSWER


def test_compilation_error_is_reported_with_the_compiler_output(judge: JudgeService) -> None:
    result = judge(Submission(language="c", source=b"int main( { return 0 }"))
    assert result.verdict is Verdict.COMPILATION_ERROR
    assert b"error" in result.compile_output and result.tests == ()


def test_runtime_errors_carry_exit_code_or_signal(judge: JudgeService) -> None:
    exit3 = judge(Submission(language="python3", source=b"import sys; sys.exit(3)"))
    assert exit3.verdict is Verdict.RUNTIME_ERROR and exit3.tests[0].exit_code == 3
    segv = judge(Submission(language="c", source=b"int main(void){ *(volatile int*)0 = 1; }"))
    assert segv.verdict is Verdict.RUNTIME_ERROR and segv.tests[0].exit_signal == 11


def test_compiler_options_and_arguments_are_argv_not_shell(judge: JudgeService) -> None:
    source = b'#include <stdio.h>\nint main(int c,char**v){printf("%s %d %s\\n",X,c,v[1]);}'
    result = judge(
        Submission(
            language="c",
            source=source,
            compiler_options="'-DX=\"a;b $(id)\"'",
            command_line_arguments="'x y; rm -rf /'",
            tests=(TestCase(expected_output=b"a;b $(id) 2 x y; rm -rf /"),),
        )
    )
    assert result.verdict is Verdict.ACCEPTED, result


def test_float_and_checker_comparisons(judge: JudgeService) -> None:
    floats = judge(
        Submission(
            language="python3",
            source=b"print(3.1415926)",
            tests=(TestCase(expected_output=b"3.14159"),),
            compare=CompareMode.FLOAT,
            float_tolerance=1e-4,
        )
    )
    assert floats.verdict is Verdict.ACCEPTED
    checker = b"import sys\nn = int(open(sys.argv[3]).read())\nsys.exit(0 if n % 2 == 0 else 1)\n"
    results = [
        judge(
            Submission(
                language="bash",
                source=f"echo {n}".encode(),
                compare=CompareMode.CHECKER,
                checker_source=checker,
                checker_language="python3",
            )
        ).verdict
        for n in (4, 5)
    ]
    assert results == [Verdict.ACCEPTED, Verdict.WRONG_ANSWER]


def test_stderr_redirect_and_memory_limit_for_java(judge: JudgeService) -> None:
    source = (
        b'public class Main { public static void main(String[] a) { System.err.println("e"); } }'
    )
    result = judge(
        Submission(
            language="java",
            source=source,
            redirect_stderr_to_stdout=True,
            limits=Limits(memory_bytes=256 << 20),
            tests=(TestCase(expected_output=b"e\n"),),
        )
    )
    assert result.verdict is Verdict.ACCEPTED, result
