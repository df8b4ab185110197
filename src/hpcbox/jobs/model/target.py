"""Targets: SLURM clusters hpcbox submits to, reached over SSH as a regular user.

A target is data: where to connect and how to check the host's identity. Secrets
are never part of it: a key is referenced by path (or comes from an agent), and a
password only ever comes from the environment or a Kubernetes Secret at run time.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.validation import validation_error

__all__ = ["RESERVED_TARGETS", "TargetSpec", "parse_ssh_url", "parse_target"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$")
_KEY_RE = re.compile(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( \S.*)?$")
#: "local" is the machine hpcbox runs on (the local backend), not a target.
RESERVED_TARGETS = frozenset({"local"})


class TargetSpec(BaseModel):
    """An SSH target: ``ssh://user@host:port`` plus how to authenticate and verify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    host: str
    user: str
    port: int = Field(default=22, ge=1, le=65535)
    key_path: str | None = Field(default=None, description="Private key file (never copied)")
    known_hosts: str | None = Field(default=None, description="known_hosts file to verify with")
    host_key: str | None = Field(default=None, description="Expected host public key line")
    cluster: str | None = Field(default=None, description="hpcbox cluster that registered it")
    job_root: str | None = Field(
        default=None,
        description="Directory on the cluster, shared by its nodes, under which job files "
        "go (default: the user's home)",
    )
    rate_limit: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="SLURM commands per second hpcbox may send this target (0: no limit; "
        "default: the HPCBOX_SLURM_RATE_LIMIT setting)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("target names are lowercase letters, digits, '_' and '-'")
        if value in RESERVED_TARGETS:
            raise ValueError(f"{value!r} is reserved (the local backend)")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST_RE.match(value):
            raise ValueError(f"invalid host {value!r}")
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _USER_RE.match(value):
            raise ValueError(f"invalid user name {value!r}")
        return value

    @field_validator("key_path", "known_hosts", "job_root")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\x00" in value):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, value: str | None) -> str | None:
        if value is not None and not _KEY_RE.match(value.strip()):
            raise ValueError("must be one public key line, e.g. 'ssh-ed25519 AAAA...'")
        return None if value is None else value.strip()

    @property
    def url(self) -> str:
        port = "" if self.port == 22 else f":{self.port}"
        return f"ssh://{self.user}@{self.host}{port}"

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["url"] = self.url
        return data


def parse_ssh_url(url: str) -> dict[str, Any]:
    """``ssh://USER@HOST[:PORT]`` -> host, user, port; raises InvalidInputError."""
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname or not parts.username:
        raise InvalidInputError("expected ssh://USER@HOST[:PORT]", field="URL")
    if parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInputError(
            "expected ssh://USER@HOST[:PORT] (no password, path or query; passwords come "
            "only from the environment)",
            field="URL",
        )
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise InvalidInputError(f"invalid port: {exc}", field="URL") from exc
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return {"host": host, "user": unquote(parts.username), "port": port}


def parse_target(data: dict[str, Any]) -> TargetSpec:
    try:
        return TargetSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from exc
