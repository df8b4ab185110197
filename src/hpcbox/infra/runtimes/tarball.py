"""Pack :class:`FileEntry` values into the tar archive the engine's put_archive takes.

The archive holds regular files only, with names relative to ``/``. It holds
no directory entries on purpose: the engine creates a missing parent
directory (root-owned, 0755) by itself, while a directory entry for one that
exists would reset that directory's owner and mode (think ``/tmp`` or a
user's home).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from collections.abc import Sequence

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.runtimes.base import FileEntry

__all__ = ["build_tar", "checked_path"]


def checked_path(path: str) -> str:
    """``path`` relative to ``/`` for use as a tar member name.

    Raises InvalidInputError unless ``path`` is absolute, names a file (not
    ``/`` or a path ending in ``/``) and has no ``.``/``..`` components or NUL.
    """
    if not path.startswith("/") or path.endswith("/") or "\0" in path:
        raise InvalidInputError(f"not an absolute file path: {path!r}", field="path")
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidInputError(f"path must be normalised (no '', '.', '..'): {path!r}")
    return posixpath.join(*parts)


def build_tar(files: Sequence[FileEntry], *, mtime: float | None = None) -> bytes:
    """An uncompressed tar of ``files`` in order (a later entry for the same path wins).

    Raises InvalidInputError for a bad path, a mode outside 0..0o7777 or a
    negative uid/gid.
    """
    stamp = int(time.time() if mtime is None else mtime)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in files:
            if not 0 <= entry.mode <= 0o7777:
                raise InvalidInputError(f"bad mode {entry.mode:o} for {entry.path!r}")
            if entry.uid < 0 or entry.gid < 0:
                raise InvalidInputError(f"negative owner for {entry.path!r}")
            info = tarfile.TarInfo(checked_path(entry.path))
            info.type = tarfile.REGTYPE
            info.size = len(entry.data)
            info.mode = entry.mode
            info.uid = entry.uid
            info.gid = entry.gid
            info.mtime = stamp
            archive.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()
