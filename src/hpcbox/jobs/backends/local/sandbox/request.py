"""What to run in a sandbox: :class:`LaunchRequest`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.isolation.ids import validate_safe_id
from hpcbox.infra.isolation.limits import ResourceLimits

__all__ = ["LaunchRequest"]


@dataclass(frozen=True)
class LaunchRequest:
    """One command to start in a fresh sandbox.

    ``argv`` runs verbatim (``argv[0]`` is looked up in ``env["PATH"]`` if it has
    no slash) with exactly ``env`` as its environment and ``workdir`` (absolute)
    as its working directory. Its stdout and stderr are appended to
    ``stdout_path`` and ``stderr_path``, which must not be symlinks.
    ``status_path`` receives bwrap's JSON status; the sandbox also keeps its
    small bookkeeping files next to it (same name plus a suffix), so it belongs
    in the run's own directory. ``run_id`` is a safe id (see
    :mod:`hpcbox.infra.isolation.ids`) and names the run's cgroup, so it must be unique
    among live runs. Invalid fields raise InvalidInputError at construction.
    """

    run_id: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    stdout_path: str
    stderr_path: str
    status_path: str
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    #: Absolute paths that must stay visible inside although they lie under the
    #: private /tmp (bound read-only at the same place).
    ro_binds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_safe_id(self.run_id)
        argv: object = self.argv
        if not isinstance(argv, list) or not argv:
            raise InvalidInputError("must be a non-empty list of strings", field="argv")
        for arg in argv:
            _check_text(arg, "argv")
        if argv[0] == "":
            raise InvalidInputError("the command name must not be empty", field="argv")
        env: object = self.env
        if not isinstance(env, dict):
            raise InvalidInputError("must be a dict of strings", field="env")
        for key, value in env.items():
            _check_text(key, "env")
            _check_text(value, "env")
            if not key or "=" in key:
                raise InvalidInputError(f"invalid variable name {key!r}", field="env")
        _check_text(self.workdir, "workdir")
        if not os.path.isabs(self.workdir):
            raise InvalidInputError(f"must be absolute, got {self.workdir!r}", field="workdir")
        for name in ("stdout_path", "stderr_path", "status_path"):
            value = getattr(self, name)
            _check_text(value, name)
            if not value:
                raise InvalidInputError("must not be empty", field=name)
        for path in self.ro_binds:
            _check_text(path, "ro_binds")
            if not os.path.isabs(path):
                raise InvalidInputError(f"must be absolute, got {path!r}", field="ro_binds")
        if not isinstance(self.limits, ResourceLimits):
            raise InvalidInputError("must be a ResourceLimits", field="limits")


def _check_text(value: object, field: str) -> None:
    # NUL cannot cross execve(); anything else is passed through verbatim.
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=field)
    if "\0" in value:
        raise InvalidInputError("must not contain NUL characters", field=field)
