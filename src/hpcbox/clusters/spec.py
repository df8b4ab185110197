"""``ClusterSpec``: a virtual HPC cluster declared as data (one YAML file).

Pure: parsing and validation only. Rendering configuration files from a spec
lives in :mod:`hpcbox.clusters.render`; bringing a spec up is a runtime's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
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

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.units import format_duration, format_memory, parse_duration, parse_memory
from hpcbox.core.validation import validation_error

__all__ = [
    "ClusterKind",
    "ClusterSpec",
    "ClusterState",
    "JupyterSpec",
    "LoginSpec",
    "MpiFlavour",
    "PartitionSpec",
    "RuntimeName",
    "StorageSpec",
    "UpAction",
    "UserSpec",
    "WorkersSpec",
    "parse_cluster_spec",
    "parse_cluster_yaml",
    "up_action",
]

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PARTITION_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_KEY_RE = re.compile(
    r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/=]+( [^\n\r]*)?$"
)
_HASH_RE = re.compile(r"^\$(1|5|6|y|2[aby]|7)\$[./A-Za-z0-9$=,+-]+$")
#: Names the system already uses inside the images; a spec user may not take them.
RESERVED_USERS = frozenset(
    {"root", "daemon", "bin", "sys", "nobody", "slurm", "munge", "mysql", "sshd", "hpcbox"}
)
#: Spec users get uids from here up unless they give one (below: system accounts).
FIRST_UID = 2000


def _memory(value: Any) -> Any:
    return parse_memory(value)


MemoryBytes = Annotated[
    int,
    BeforeValidator(_memory),
    PlainSerializer(format_memory, return_type=str, when_used="json"),
]
DurationSeconds = Annotated[
    int,
    BeforeValidator(lambda v: None if v is None else parse_duration(v)),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


class ClusterKind(StrEnum):
    SLURM = "slurm"
    JUPYTER = "jupyter"
    MPI = "mpi"


class MpiFlavour(StrEnum):
    OPENMPI = "openmpi"
    MPICH = "mpich"


class RuntimeName(StrEnum):
    """Where the cluster runs: containers (Docker, Podman, or whichever is there), or
    ``kubernetes``: a release of hpcbox's Helm chart on the current kubeconfig context."""

    DOCKER = "docker"
    PODMAN = "podman"
    AUTO = "auto"
    KUBERNETES = "kubernetes"


class ClusterState(StrEnum):
    """A stored cluster's state.

    ``CREATING`` while ``cluster up`` runs (or after one was killed mid-way),
    ``RUNNING`` once every node is idle, ``SCALING`` while workers are added or
    removed, ``FAILED`` when an up failed or was interrupted (its containers are
    left for inspection), ``DOWN`` after ``cluster down`` (homes kept).
    """

    CREATING = "CREATING"
    RUNNING = "RUNNING"
    SCALING = "SCALING"
    FAILED = "FAILED"
    DOWN = "DOWN"


class UpAction(StrEnum):
    """What ``cluster up`` does about a cluster of the same name (see :func:`up_action`)."""

    #: None, or one that is DOWN: bring it up (homes and keys kept).
    CREATE = "create"
    #: An up that failed, or that nobody runs any more: remove what it left, then up.
    RETRY = "retry"
    #: A RUNNING (or SCALING) one, with ``--replace``: take it down, then up.
    REPLACE = "replace"
    #: A RUNNING (or SCALING) one without ``--replace``.
    REFUSE = "refuse"


def up_action(state: str | None, *, replace: bool) -> UpAction:
    """Decide what ``cluster up`` does given the stored ``state`` of that name (None: no
    record). The caller holds the cluster's lock, so a ``CREATING`` state is left by
    an up whose process is gone (killed, or the machine restarted): it is retried."""
    if state is None or state == ClusterState.DOWN:
        return UpAction.CREATE
    if state in (ClusterState.FAILED, ClusterState.CREATING):
        return UpAction.RETRY
    return UpAction.REPLACE if replace else UpAction.REFUSE


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkersSpec(_Model):
    """Compute nodes: how many, and what each offers to SLURM."""

    count: int = Field(default=2, ge=0, le=64)
    cpus: int = Field(default=1, ge=1, le=256)
    memory: MemoryBytes = Field(default=1024**3)


class PartitionSpec(_Model):
    name: str
    default: bool = False
    max_time: DurationSeconds | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _PARTITION_RE.match(value):
            raise ValueError("partition names are letters, digits and '_' (at most 64)")
        return value


class StorageSpec(_Model):
    """Shared home directories: one named volume mounted at /home on every node."""

    home_volume: str | None = Field(
        default=None, description="Volume name; default hpcbox-<cluster>-home"
    )

    @field_validator("home_volume")
    @classmethod
    def _volume(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", value):
            raise ValueError("volume names are letters, digits, '_', '.' and '-'")
        return value


class UserSpec(_Model):
    """An account created on every node, with its home on the shared volume."""

    name: str
    uid: int | None = Field(default=None, ge=1000, le=60000)
    gid: int | None = Field(default=None, ge=1000, le=60000)
    ssh_keys: list[str] = Field(default_factory=list, max_length=64)
    password_hash: str | None = Field(
        default=None, repr=False, description="crypt(3) hash, e.g. from `openssl passwd -6`"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _USER_RE.match(value):
            raise ValueError(
                "user names start with a lowercase letter or '_' and have at most 32 "
                "lowercase letters, digits, '_' or '-'"
            )
        if value in RESERVED_USERS:
            raise ValueError(f"{value!r} is reserved for the system")
        return value

    @field_validator("ssh_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _KEY_RE.match(key.strip()):
                raise ValueError("each SSH key is one public key line, e.g. 'ssh-ed25519 AAAA...'")
        return [key.strip() for key in value]

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str | None) -> str | None:
        if value is not None and not _HASH_RE.match(value):
            raise ValueError("password_hash must be a crypt(3) hash (e.g. openssl passwd -6)")
        return value


class LoginSpec(_Model):
    """The login node's SSH endpoint, published on the host's loopback only."""

    ssh_port: int = Field(default=0, ge=0, le=65535, description="0: pick a free port")


class JupyterSpec(_Model):
    """JupyterHub: always on the front end of kind ``jupyter``; on a SLURM cluster's
    login node when ``hub`` is true. Published on the host's loopback only."""

    hub: bool = Field(default=False, description="SLURM kind: run JupyterHub on the login node")
    port: int = Field(default=0, ge=0, le=65535, description="Host port; 0: pick a free port")
    engines_per_worker: int | None = Field(
        default=None, ge=1, le=256, description="ipengines on each worker; default workers.cpus"
    )


class ClusterSpec(_Model):
    """A cluster: SLURM controller + workers (+ slurmdbd and MariaDB with accounting);
    or, with kind ``jupyter``, a JupyterHub front end + ipyparallel engines on workers."""

    name: str
    kind: ClusterKind = ClusterKind.SLURM
    runtime: RuntimeName = RuntimeName.AUTO
    workers: WorkersSpec = Field(default_factory=WorkersSpec)
    partitions: list[PartitionSpec] = Field(default_factory=list, max_length=32)
    mpi: MpiFlavour = MpiFlavour.OPENMPI
    accounting: bool = False
    storage: StorageSpec = Field(default_factory=StorageSpec)
    users: list[UserSpec] = Field(default_factory=list, max_length=1000)
    login: LoginSpec = Field(default_factory=LoginSpec)
    jupyter: JupyterSpec = Field(default_factory=JupyterSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "cluster names are 1-32 lowercase letters, digits and '-', starting with "
                "a letter and not ending with '-'"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [p.name for p in self.partitions]
        if len(set(names)) != len(names):
            raise ValueError("partition names must be unique")
        if sum(p.default for p in self.partitions) > 1:
            raise ValueError("at most one partition can be the default")
        users = [u.name for u in self.users]
        if len(set(users)) != len(users):
            raise ValueError("user names must be unique")
        uids = [u.uid for u in self.users if u.uid is not None]
        if len(set(uids)) != len(uids):
            raise ValueError("user uids must be unique")
        if self.jupyter.hub and self.kind is not ClusterKind.SLURM:
            raise ValueError("jupyter.hub turns JupyterHub on for a SLURM login node only")
        return self

    @property
    def has_jupyterhub(self) -> bool:
        """JupyterHub runs on the front end (kind jupyter) or the login node (hub: true)."""
        return self.kind is ClusterKind.JUPYTER or self.jupyter.hub

    @property
    def engines_per_worker(self) -> int:
        return self.jupyter.engines_per_worker or self.workers.cpus

    @property
    def effective_partitions(self) -> list[PartitionSpec]:
        """The partitions, with one default: ``batch`` when none is given, else the
        one marked default, else the first."""
        if not self.partitions:
            return [PartitionSpec(name="batch", default=True)]
        if any(p.default for p in self.partitions):
            return list(self.partitions)
        first, *rest = self.partitions
        return [first.model_copy(update={"default": True}), *rest]

    @property
    def home_volume(self) -> str:
        return self.storage.home_volume or f"hpcbox-{self.name}-home"

    def user_ids(self) -> dict[str, tuple[int, int]]:
        """Each user's (uid, gid): given ones kept, others assigned from 2000 upward,
        skipping taken uids; gid defaults to the uid (a personal group)."""
        taken = {u.uid for u in self.users if u.uid is not None}
        next_uid = FIRST_UID
        ids: dict[str, tuple[int, int]] = {}
        for user in self.users:
            uid = user.uid
            if uid is None:
                while next_uid in taken:
                    next_uid += 1
                uid = next_uid
                taken.add(uid)
            ids[user.name] = (uid, user.gid or uid)
        return ids


def parse_cluster_spec(data: Mapping[str, Any]) -> ClusterSpec:
    """Validate ``data``; raises :class:`InvalidInputError` naming the first bad field."""
    if not isinstance(data, Mapping):
        raise InvalidInputError("a cluster spec is a mapping (YAML object)", field="spec")
    try:
        return ClusterSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise validation_error(exc) from exc


def parse_cluster_yaml(text: str) -> ClusterSpec:
    """Parse a YAML cluster spec (safe loader only: no arbitrary objects)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"not valid YAML: {exc}", field="spec") from exc
    return parse_cluster_spec(data if data is not None else {})
