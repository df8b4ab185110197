"""Turn an argv into one line for a remote POSIX shell, with nothing left unquoted.

SSH carries a command as a single string that the login shell on the far side
parses (``$SHELL -c <string>``), so every argument must be quoted for it. This is
the only place in hpcbox that builds such a line.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from hpcbox.core.errors import InvalidInputError

__all__ = ["MAX_COMMAND_BYTES", "shell_command", "validate_argv"]

#: Longest command line sent. Linux caps one argument at 128 KiB
#: (MAX_ARG_STRLEN) and the whole line is one argument of the remote shell's
#: ``-c``; the margin leaves room for that shell's own words. Larger data
#: belongs in a file (``put_file``) or on stdin.
MAX_COMMAND_BYTES = 120_000


def validate_argv(argv: Sequence[str]) -> None:
    """Raise InvalidInputError unless ``argv`` is a non-empty list of strings without NUL.

    A NUL cannot be passed in an argument on any POSIX system; failing here
    gives a clear message instead of a truncated argument.
    """
    if isinstance(argv, str):
        raise InvalidInputError("must be a sequence of arguments, not one string", field="argv")
    if not argv:
        raise InvalidInputError("must name a program", field="argv")
    for arg in argv:
        if not isinstance(arg, str):
            raise InvalidInputError(
                f"arguments must be strings, got {type(arg).__name__}", field="argv"
            )
        if "\0" in arg:
            raise InvalidInputError("arguments cannot contain a NUL byte", field="argv")


def _quote_always(word: str) -> str:
    # shlex.quote leaves "safe" words bare; a bare first word can still be a
    # keyword ("if", "time") or an assignment ("A=1") to the shell. Quoting it
    # always makes it a plain command name.
    return "'" + word.replace("'", "'\"'\"'") + "'"


def shell_command(argv: Sequence[str], *, cwd: str | None = None) -> str:
    """Return a POSIX shell line that runs ``argv`` verbatim, in ``cwd`` when given.

    Every word is single-quoted, so the shell performs no expansion, word
    splitting or globbing on it. With ``cwd`` the line is
    ``cd <cwd> && <argv>``: a missing directory makes the shell report the
    error and exit non-zero without running the command. ``cwd`` is not
    tilde-expanded; a leading ``-`` is neutralised with ``./`` so ``cd`` does
    not read it as an option.

    Raises:
        InvalidInputError: see :func:`validate_argv`; or the line would exceed
            :data:`MAX_COMMAND_BYTES`.
    """
    validate_argv(argv)
    words = [_quote_always(argv[0]), *(shlex.quote(arg) for arg in argv[1:])]
    line = " ".join(words)
    if cwd is not None:
        if not cwd or "\0" in cwd:
            raise InvalidInputError("must be a non-empty path without NUL", field="cwd")
        if cwd.startswith("-"):
            cwd = "./" + cwd
        line = f"cd {shlex.quote(cwd)} && {line}"
    try:
        size = len(line.encode("utf-8"))
    except UnicodeEncodeError as exc:
        # SSH sends the line as UTF-8; undecodable file names (surrogate
        # escapes) cannot be expressed in it.
        raise InvalidInputError("arguments must be valid Unicode", field="argv") from exc
    if size > MAX_COMMAND_BYTES:
        raise InvalidInputError(
            f"command line is {size} bytes, more than {MAX_COMMAND_BYTES}; "
            "pass large data in a file or on stdin",
            field="argv",
        )
    return line
