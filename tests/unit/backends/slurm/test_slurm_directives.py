"""#SBATCH values: what hpcbox writes is what sbatch's lexer and slurmstepd read back.

The oracles below are SLURM 22.05's own parsing, ported line by line from
``get_argument`` in ``src/sbatch/opt.c`` and from ``fname_create`` and
``is_path_escaped`` in ``src/slurmd/slurmstepd/fname.c``, so that the quoting
is checked against what SLURM does, not against itself. (Rendered scripts
were also submitted to a real SLURM 22.05 cluster by hand.)
"""

from __future__ import annotations

import pytest

from hpcbox.core.errors import PermanentError
from hpcbox.jobs.backends.slurm.directives import directive, filename_pattern, quote_value


def _isspace(char: str) -> bool:
    return char in " \t\n\v\f\r"


def sbatch_arguments(line: str) -> list[str]:
    """The arguments sbatch reads from one ``#SBATCH`` line (the part after ``#SBATCH``)."""
    arguments: list[str] = []
    ptr = 0
    while True:
        while ptr < len(line) and _isspace(line[ptr]):
            ptr += 1
        if ptr >= len(line):
            return arguments
        argument: list[str] = []
        quoted, quote, escape = False, "", False
        while ptr < len(line) and (quoted or not _isspace(line[ptr])) and line[ptr] != "\n":
            char = line[ptr]
            if escape:
                escape = False
            elif char == "\\":
                escape = True
                ptr += 1
                continue
            elif quoted:
                if char == quote:
                    quoted = False
                    ptr += 1
                    continue
            elif char in "\"'":
                quoted, quote = True, char
                ptr += 1
                continue
            elif char == "#":
                # An unescaped '#' starts a comment: the rest of the line is ignored.
                if argument:
                    arguments.append("".join(argument))
                return arguments
            argument.append(char)
            ptr += 1
        if quoted:
            raise ValueError(f"sbatch: Unmatched `{quote}` in [{line}]")
        if not argument:
            # get_argument returns NULL, which ends the line for sbatch.
            return arguments
        arguments.append("".join(argument))


def batch_output_path(pattern: str, *, job_id: int = 77, user: str = "alice") -> str:
    """The file slurmstepd opens for a batch job's ``--output``/``--error`` pattern."""
    if "\\" in pattern:
        # is_path_escaped: every backslash is deleted and nothing is expanded.
        return pattern.replace("\\", "")
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        if nxt == "%":
            out.append("%")
            i += 2
        elif nxt in ("j", "J", "A"):
            out.append(str(job_id))
            i += 2
        elif nxt == "u":
            out.append(user)
            i += 2
        else:
            # Unknown or unported codes are kept as they are, as slurmstepd does
            # for the unknown ones; hpcbox never relies on the others.
            out.append(char)
            i += 1
    return "".join(out)


HOSTILE = [
    "plain",
    "/home/alice/.hpcbox/jobs/1/1/stdout",
    "with space",
    "tab\there",
    'double "quote"',
    "single 'quote'",
    "back\\slash",
    "trailing\\",
    "hash # not a comment",
    "#start",
    "$(id) `id` ; | & > <",
    "percent %j %% %",
    "unicode é漢 🚀",
    "",
    '"',
    "'",
    "\\\"'#",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_quoted_values_read_back_unchanged(value: str) -> None:
    line = directive("comment", value)
    assert line.startswith("#SBATCH ")
    assert "\n" not in line
    args = sbatch_arguments(line.removeprefix("#SBATCH"))
    assert args == [f"--comment={value}"]


def test_plain_values_stay_unquoted() -> None:
    assert directive("nodes", 2) == "#SBATCH --nodes=2"
    assert directive("partition", "gpu-a100.x") == "#SBATCH --partition=gpu-a100.x"
    assert quote_value("/home/a/.hpcbox/jobs/1/2/stdout") == "/home/a/.hpcbox/jobs/1/2/stdout"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "\n", "a\x00b"])
def test_line_breaks_are_refused(value: str) -> None:
    with pytest.raises(PermanentError, match="line break"):
        quote_value(value)


@pytest.mark.parametrize(
    "path",
    [
        "/home/alice/out",
        "/home/al ice/100%/out",
        "/home/%j/%u/%%/out",
        "/home/#\"q'/$(id)/out",
    ],
)
def test_filename_patterns_expand_back_to_the_path(path: str) -> None:
    line = directive("output", filename_pattern(path))
    [arg] = sbatch_arguments(line.removeprefix("#SBATCH"))
    assert batch_output_path(arg.removeprefix("--output=")) == path


def test_a_backslash_cannot_be_in_an_output_path() -> None:
    # slurmstepd deletes every backslash of such a path.
    with pytest.raises(PermanentError, match="backslash"):
        filename_pattern("/home/a\\b/out")
