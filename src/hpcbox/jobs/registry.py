"""The installed job backends, found through the ``hpcbox.backends`` entry point.

hpcbox registers its own (``local``, ``slurm``) in its package metadata; another
distribution adds one by declaring, in its ``pyproject.toml``::

    [project.entry-points."hpcbox.backends"]
    pbs = "hpcbox_pbs:PbsBackend"

The name is the backend's :attr:`~hpcbox.jobs.backend.Backend.name`, stored with
its jobs; the value is a callable (usually the class) taking a
:class:`~hpcbox.jobs.backend.BackendContext`. A backend that cannot be loaded is
left out with a warning (unless it is one of hpcbox's own), so that one broken
plugin does not stop the others; its jobs then answer that their backend is not
installed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points

from hpcbox.jobs.backend import Backend, BackendContext, BackendFactory

__all__ = ["GROUP", "installed", "make_backends"]

log = logging.getLogger(__name__)

#: The entry point group backends register under.
GROUP = "hpcbox.backends"


def installed() -> dict[str, EntryPoint]:
    """The backends' entry points by name, sorted by name (the first of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=GROUP):
        if point.name in found:
            if point.value != found[point.name].value:
                log.warning(
                    "backend %r is registered twice (%s, %s); using the first",
                    point.name,
                    found[point.name].value,
                    point.value,
                )
            continue
        found[point.name] = point
    return dict(sorted(found.items()))


def make_backends(
    context: BackendContext, factories: Mapping[str, BackendFactory] | None = None
) -> dict[str, Backend]:
    """One backend of each kind for an engine: those ``factories`` name, else every
    installed one. The engine asks them in this order (by name) which one runs a
    target."""
    made: dict[str, Backend] = {}
    if factories is not None:
        for name, factory in factories.items():
            made[name] = _checked(name, factory(context))
        return made
    for name, point in installed().items():
        try:
            made[name] = _checked(name, point.load()(context))
        except Exception as exc:
            if point.module.partition(".")[0] == "hpcbox":
                raise  # hpcbox's own: a bug to see, not to step around
            # Another distribution's: its bug must not stop the other backends.
            log.warning("job backend %r (%s) cannot be loaded: %s", name, point.value, exc)
    return made


def _checked(name: str, backend: object) -> Backend:
    if not isinstance(backend, Backend):
        raise TypeError(f"{type(backend).__name__} is not a hpcbox.jobs.backend.Backend")
    if backend.name != name:
        raise TypeError(f"registered as {name!r} but names itself {backend.name!r}")
    return backend
