r"""Values written into ``#SBATCH`` lines, which sbatch parses by its own rules.

The shell sees ``#SBATCH`` lines as comments; sbatch reads them itself, with the
lexer in ``src/sbatch/opt.c`` (``get_argument``). That lexer splits a line on
whitespace, groups characters inside ``"..."`` or ``'...'``, takes the character
after a backslash literally, and stops at an unquoted ``#``; a directive cannot
continue onto the next line. Hence:

- a value that is not plainly safe is written in double quotes, with ``\``,
  ``"`` and ``#`` backslash-escaped. SLURM reads that back unchanged in every
  version since 2.x (the oldest lexers knew only ``"`` and stopped at any
  unescaped ``#``, quoted or not; the escapes cover them too);
- a value containing a newline or carriage return cannot be written at all and
  is refused.

``--output`` and ``--error`` are filename *patterns* besides, expanded by
slurmstepd (``fname.c``): ``%j``, ``%u``... are replaced, ``%%`` is a literal
``%``, and a path containing any backslash has every backslash deleted and no
pattern expanded. So :func:`filename_pattern` doubles ``%`` and refuses ``\``.
"""

from __future__ import annotations

import re

from hpcbox.core.errors import PermanentError

__all__ = ["directive", "filename_pattern", "quote_value"]

# Characters that sbatch's lexer never treats specially, so need no quotes.
_BARE = re.compile(r"[A-Za-z0-9_./+:@%,=-]+")


def quote_value(value: str) -> str:
    """``value`` written so that sbatch's directive lexer reads it back unchanged.

    Raises :class:`PermanentError` when ``value`` holds a line break (or NUL),
    which no ``#SBATCH`` line can carry.
    """
    if "\n" in value or "\r" in value or "\x00" in value:
        raise PermanentError(f"{value!r} cannot be written into an #SBATCH line (line break)")
    if _BARE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#")
    return f'"{escaped}"'


def filename_pattern(path: str) -> str:
    """``path`` as a ``--output``/``--error`` pattern that slurmstepd expands back to ``path``.

    Raises :class:`PermanentError` for a path with a backslash (slurmstepd would
    delete it) or a line break.
    """
    if "\\" in path:
        raise PermanentError(f"{path!r} cannot be a SLURM output file: it contains a backslash")
    return path.replace("%", "%%")


def directive(option: str, value: str | int) -> str:
    """The line ``#SBATCH --option=value``, with ``value`` quoted by :func:`quote_value`."""
    return f"#SBATCH --{option}={quote_value(str(value))}"
