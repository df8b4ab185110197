"""``JobSpec``: what a user asks to run. Its JSON form is the REST body and is stable.

Sizes and durations are accepted the way SLURM users write them (see
:mod:`hpcbox.core.units`) and stored as integers (bytes, seconds); they are
serialised back as SLURM-style strings (``"512M"``, ``"01:30:00"``) so that a
spec's JSON always validates again to the same spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from hpcbox.core.units import format_duration, format_memory, parse_duration, parse_memory
from hpcbox.core.validation import validation_error

__all__ = ["MAX_NAME_LENGTH", "MAX_SCRIPT_BYTES", "JobSpec", "Resources", "parse_job_spec"]

# SLURM refuses batch scripts over 4 MB by default (max_script_size); so do we.
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
MAX_NAME_LENGTH = 4096
MAX_ARGS = 4096
MAX_ENV = 4096
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _memory(value: Any) -> Any:
    return None if value is None else parse_memory(value)


def _duration(value: Any) -> Any:
    return None if value is None else parse_duration(value)


def _no_nul(value: str, what: str) -> str:
    # NUL cannot travel through argv, the environment or most file formats.
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


MemoryBytes = Annotated[
    int,
    BeforeValidator(_memory),
    PlainSerializer(format_memory, return_type=str, when_used="json"),
]
DurationSeconds = Annotated[
    int,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


class Resources(BaseModel):
    """Resources requested, with SLURM's meaning.

    ``memory`` is for the whole job on each node (``--mem``); ``time_limit`` is
    wall time (``--time``). The total CPU count is ``ntasks * cpus_per_task``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: int = Field(default=1, ge=1, le=100_000)
    ntasks: int = Field(default=1, ge=1, le=1_000_000)
    cpus_per_task: int = Field(default=1, ge=1, le=10_000)
    memory: MemoryBytes | None = None
    time_limit: DurationSeconds | None = None
    partition: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("partition")
    @classmethod
    def _partition_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.+-]+", value):
            raise ValueError("partition must be a name of letters, digits, '_', '.', '+' or '-'")
        return value

    @property
    def cpus(self) -> int:
        """Total CPUs requested: ``ntasks * cpus_per_task``."""
        return self.ntasks * self.cpus_per_task


class JobSpec(BaseModel):
    """A batch job: a ``script`` (text) or a ``command`` (argv list), and its resources.

    Exactly one of ``script`` and ``command`` is given. A script without a ``#!``
    line runs with ``/bin/bash``. ``workdir`` must be absolute when given; the
    local backend defaults it to the job's own directory. ``env`` is added to the
    job's environment; names must be valid shell variable names.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    script: str | None = None
    command: list[str] | None = Field(default=None, min_length=1, max_length=MAX_ARGS)
    resources: Resources = Field(default_factory=Resources)
    workdir: str | None = Field(default=None, min_length=1, max_length=4096)
    env: dict[str, str] = Field(default_factory=dict, max_length=MAX_ENV)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        return None if value is None else _no_nul(value, "name")

    @field_validator("script")
    @classmethod
    def _check_script(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("script is empty")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
            raise ValueError(f"script is larger than {MAX_SCRIPT_BYTES // (1024 * 1024)} MiB")
        return _no_nul(value, "script")

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value[0]:
            raise ValueError("the program (first element) must not be empty")
        for arg in value:
            _no_nul(arg, "command arguments")
        return value

    @field_validator("workdir")
    @classmethod
    def _check_workdir(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _no_nul(value, "workdir")
        if not value.startswith("/"):
            raise ValueError("workdir must be an absolute path")
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _ENV_NAME_RE.match(key):
                raise ValueError(f"invalid environment variable name {key!r}")
            _no_nul(item, f"env[{key}]")
        return value

    @model_validator(mode="after")
    def _script_or_command(self) -> Self:
        if (self.script is None) == (self.command is None):
            raise ValueError("give exactly one of 'script' and 'command'")
        return self

    def display_name(self) -> str:
        """The name to show: the given one, else the program's base name."""
        if self.name:
            return self.name
        if self.command:
            return self.command[0].rsplit("/", 1)[-1] or "job"
        return "script"

    def with_script(self, script: str) -> JobSpec:
        """A copy running ``script`` instead (used by rerun-after-edit)."""
        # JSON mode: sizes and durations as strings, which validate back to the
        # same values (a bare integer would mean megabytes / minutes, as in SLURM).
        data = self.model_dump(mode="json")
        data.update(script=script, command=None)
        return parse_job_spec(data)


def parse_job_spec(data: Mapping[str, Any]) -> JobSpec:
    """Validate ``data`` into a :class:`JobSpec`.

    Raises :class:`InvalidInputError` whose message names the first offending
    field (``resources.memory: invalid memory size 'lots'; ...``).
    """
    try:
        return JobSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise validation_error(exc) from exc
