"""Optional parts of hpcbox and the extras that install them.

Parts that one pillar alone needs are extras of the package (``pip install
'hpcbox[operator]'``), so a user who wants one pillar does not install all of
them. :func:`require` is how code that needs one says so: it checks before the
import and names the exact fix, instead of failing with a bare ImportError.
"""

from __future__ import annotations

import importlib.util

from hpcbox.core.errors import UnavailableError

__all__ = ["EXTRAS", "require"]

#: Each extra and the modules it brings that hpcbox imports.
EXTRAS: dict[str, tuple[str, ...]] = {
    "operator": ("kopf", "lightkube"),
    "worker": ("celery",),
    "postgres": ("psycopg",),
    "psij": ("psij",),
}


def require(extra: str, purpose: str) -> None:
    """Raise :class:`UnavailableError` unless every module of ``extra`` is importable.

    ``purpose`` says what needs it (``"hpcbox operator"``); the message names the
    extra to install. Unknown extras are a programming error (KeyError).
    """
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise UnavailableError(
            f"{purpose} needs {', '.join(missing)}: install hpcbox with the "
            f"'{extra}' extra (pip install 'hpcbox[{extra}]'; scripts/setup.sh "
            "installs every extra)"
        )
