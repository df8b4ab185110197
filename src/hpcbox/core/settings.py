"""hpcbox's settings: one typed model of every ``HPCBOX_*`` variable.

:class:`Settings` (a pydantic-settings model) holds the state directory and the
state store at its top, and one group per part of hpcbox beneath:
``settings.jobs``, ``settings.slurm``, ``settings.judge``, ``settings.api`` and
``settings.images``. Every field that a variable sets names that variable, in
full, as its ``validation_alias``: the names users' scripts set stay exactly what
they were, whatever group a field lives in, and no other spelling is read.

The environment is read only when asked, by :meth:`SettingsGroup.from_env`
(``os.environ`` or a mapping handed in): a ``Settings(home=...)`` built in Python
holds what it was given and the defaults, whatever the shell around it set. An
empty variable counts as unset. A group can be read on its own
(``SlurmSettings.from_env()``), so a pillar that needs one value at the moment of
use reads only its group.

Secrets (the database URL, which may hold a password, the broker URL likewise,
the API token, SSH passwords, the callback secret) are :class:`~pydantic.SecretStr`:
shown as ``**********`` in every repr, log line and error, and revealed only
where they are used (:func:`reveal`).

``python -m hpcbox.core.settings`` prints docs/configuration.md, the table of every
variable, generated from the model (:func:`env_table`); a unit test keeps the
page and the model in step.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.units import parse_memory

__all__ = [
    "ENV_PREFIX",
    "ApiSettings",
    "EnvVariable",
    "ImagesSettings",
    "JobsSettings",
    "JudgeSettings",
    "KubeSettings",
    "Settings",
    "SettingsGroup",
    "SlurmSettings",
    "configuration_page",
    "env_table",
    "env_variables",
    "parse_pool_size",
    "reveal",
]

#: Every variable hpcbox reads starts with this.
ENV_PREFIX = "HPCBOX_"
#: The end of a variable name that stands for many: one variable per SSH target.
_PER_TARGET = "<TARGET>"
#: The command that writes docs/configuration.md (the test that compares says it).
REGENERATE = ".venv/bin/python -m hpcbox.core.settings > docs/configuration.md"


def reveal(secret: SecretStr | None) -> str | None:
    """The clear text of ``secret``, for the one place that uses it; None stays None."""
    return None if secret is None else secret.get_secret_value()


def parse_pool_size(text: str) -> int | dict[str, int]:
    """``HPCBOX_JUDGE_POOL_SIZE``: ``N`` warm boxes for every language, or
    ``KEY=N,KEY=N`` per language key (``*=N`` for the languages not named; without
    it they keep none warm and start a box when a run needs one).

    Raises InvalidInputError naming the setting for anything else.
    """

    def count(value: str) -> int:
        try:
            n = int(value.strip())
        except ValueError:
            n = -1
        if n < 0:
            raise InvalidInputError(
                f"pool sizes are whole numbers >= 0, got {value.strip()!r}",
                field="HPCBOX_JUDGE_POOL_SIZE",
            )
        return n

    if "=" not in text:
        return count(text)
    sizes: dict[str, int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or key in sizes:
            raise InvalidInputError(
                f"expected N or KEY=N,KEY=N (each language once), got {text!r}",
                field="HPCBOX_JUDGE_POOL_SIZE",
            )
        sizes[key] = count(value)
    return sizes


def _env(
    default: Any = PydanticUndefined,
    *,
    env: str | None,
    description: str,
    shown_default: str | None = None,
    **constraints: Any,
) -> Any:
    """A field set by the variable ``env`` (None: set from Python only).
    ``shown_default``: the default as the docs say it, where the value alone would not."""
    extra: JsonDict | None = None if shown_default is None else {"shown_default": shown_default}
    return Field(
        default,
        validation_alias=env,
        description=description,
        json_schema_extra=extra,
        **constraints,
    )


class SettingsGroup(BaseSettings):
    """A group of settings; :class:`Settings` is one too, holding the others."""

    model_config = SettingsConfigDict(
        # Each field names its variable in full (validation_alias); the tests check
        # that every name starts with the prefix.
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="forbid",
        # Python code names fields (``JobsSettings(cpus=2)``); the environment
        # source hands values in under their variables' names.
        validate_by_name=True,
        validate_by_alias=True,
    )

    #: The group's attribute on :class:`Settings` ("" for Settings itself).
    group: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # What the caller passes, and the defaults: the environment is read by
        # from_env only, never behind the back of code that builds settings itself.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """This group from ``HPCBOX_*`` variables (``os.environ`` when not given).

        Raises InvalidInputError naming the first variable that does not parse."""
        env = os.environ if environ is None else environ
        source = EnvironSource(cls, env)
        try:
            return cls.model_validate(source())
        except ValidationError as exc:
            # Not chained: pydantic's error would print the value, a secret's too.
            raise _invalid(cls, exc) from None

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable that sets ``field`` of this group."""
        name = _env_name(cls.model_fields[field])
        if name is None:
            raise KeyError(f"{cls.__name__}.{field} is set from Python only")
        return name


def _env_name(info: FieldInfo) -> str | None:
    alias = info.validation_alias
    return alias if isinstance(alias, str) else None


def _group_class(info: FieldInfo) -> type[SettingsGroup] | None:
    ann = info.annotation
    return ann if isinstance(ann, type) and issubclass(ann, SettingsGroup) else None


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(arg) for arg in get_args(annotation))


class EnvironSource(PydanticBaseSettingsSource):
    """The variables of one environment, each read under exactly the name its field
    declares: a group's values nest under the group's attribute, an empty variable
    is unset, and a ``..._<TARGET>`` name gathers every variable that starts so
    into a mapping keyed by the rest of the name."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self._environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = _env_name(field)
        value = (self._environ.get(name) or None) if name else None
        return value, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._values(self.settings_cls)

    def _values(self, model: type[BaseSettings]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            group = _group_class(info)
            if group is not None:
                if values := self._values(group):
                    data[name] = values
                continue
            env = _env_name(info)
            if env is None:
                continue
            if env.endswith(_PER_TARGET):
                head = env.removesuffix(_PER_TARGET)
                found = {
                    key.removeprefix(head): value
                    for key, value in self._environ.items()
                    if key.startswith(head) and len(key) > len(head) and value
                }
                if found:
                    data[env] = found
            elif self._environ.get(env):
                data[env] = self._environ[env]
        return data


def _invalid(model: type[SettingsGroup], exc: ValidationError) -> InvalidInputError:
    secrets = {row.name for row in env_variables(model) if row.secret}
    error = exc.errors()[0]
    names = [str(part) for part in error["loc"] if str(part).startswith(ENV_PREFIX)]
    name = names[0] if names else None
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    if name not in secrets and isinstance(value, str) and repr(value) not in message:
        message = f"{message} (got {value!r})"
    return InvalidInputError(message, field=name or f"{ENV_PREFIX}* setting")


# -- the groups -------------------------------------------------------------------


class JobsSettings(SettingsGroup):
    """How much of this machine local jobs may use, and the background scheduler."""

    group: ClassVar[str] = "jobs"

    cpus: int | None = _env(
        None,
        env="HPCBOX_CPUS",
        description="CPUs the local queue hands out.",
        shown_default="all CPUs of this machine (like one SLURM node)",
    )
    memory_bytes: int | None = _env(
        None,
        env="HPCBOX_MEMORY",
        description="Memory the local queue hands out, as SLURM writes it "
        "(`512M`, `16G`; a bare number is megabytes). In bytes from Python.",
        shown_default="this machine's total memory",
    )
    agent_idle_seconds: float = _env(
        30.0,
        env="HPCBOX_AGENT_IDLE_SECONDS",
        description="Seconds an idle background scheduler (`hpcbox agent`) lingers "
        "before exiting: long enough to absorb a burst of CLI submissions.",
    )
    #: Default process cap per local job, as SLURM sites do with TasksMax; None = no cap.
    default_pids_limit: int | None = _env(
        4096,
        env=None,
        description="Processes per local job unless it asks otherwise (TasksMax).",
    )

    @field_validator("memory_bytes", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        # Text is a size as SLURM writes it; a number from Python is bytes.
        return parse_memory(value) if isinstance(value, str) else value


class SlurmSettings(SettingsGroup):
    """SLURM targets reached over SSH: how fast hpcbox talks to them, and passwords."""

    group: ClassVar[str] = "slurm"

    rate_limit: float | None = _env(
        2.0,
        env="HPCBOX_SLURM_RATE_LIMIT",
        description="SLURM commands (sbatch, squeue, sacct, scancel) per second and "
        "target, on average; `0`: no limit. 2/s is what SLURM's RPC rate limiter "
        "(`rl_enable`) refills per user by default, and what the watcher needs at its "
        "fastest. A target's own `rate_limit` overrides it.",
    )
    rate_burst: int = _env(
        10,
        env="HPCBOX_SLURM_RATE_BURST",
        description="Commands that may go at once before the rate applies (the token "
        "bucket's size): a third of SLURM's default `rl_bucket_size` of 30.",
        ge=1,
    )
    ssh_password: SecretStr | None = _env(
        None,
        env="HPCBOX_SSH_PASSWORD",
        description="SSH password for every target that has no password of its own. "
        "Read when connecting, never stored.",
    )
    ssh_passwords: dict[str, SecretStr] = _env(
        {},
        env="HPCBOX_SSH_PASSWORD" + "_" + _PER_TARGET,
        description="SSH password of one target: its name in capitals, `-` as `_` "
        "(`HPCBOX_SSH_PASSWORD_MY_CLUSTER` for `my-cluster`). Read when connecting, "
        "never stored.",
        shown_default="unset",
    )

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> float | None:
        if value is None:
            return None
        try:
            rate = float(value)
        except (TypeError, ValueError):
            rate = -1.0
        if not 0 <= rate < math.inf:  # also refuses NaN
            raise ValueError("must be a number >= 0 (0: no limit)")
        return rate or None

    def ssh_password_for(self, target: str) -> SecretStr | None:
        """The password for ``target``: its own variable's, else the common one."""
        return self.ssh_passwords.get(target.upper().replace("-", "_")) or self.ssh_password


class JudgeSettings(SettingsGroup):
    """The judge: its queue and workers, callbacks, and where its runtime lives."""

    group: ClassVar[str] = "judge"

    broker_url: SecretStr | None = _env(
        None,
        env="HPCBOX_BROKER_URL",
        description="Celery broker (`redis://HOST:6379/0` or `amqp://...`) that "
        "`hpcbox serve` queues submissions to and `hpcbox worker` takes them from.",
        shown_default="unset: submissions are judged inside `hpcbox serve`",
    )
    threads: int | None = _env(
        None,
        env="HPCBOX_JUDGE_THREADS",
        description="Threads judging inside `hpcbox serve`, or per `hpcbox worker`.",
        shown_default="4 per CPU, at most 32",
    )
    pool_size: int | dict[str, int] | None = _env(
        None,
        env="HPCBOX_JUDGE_POOL_SIZE",
        description="Warm boxes per language: `N` for each, or `KEY=N,KEY=N` per "
        "language key, `*=N` for the languages not named.",
        shown_default="the judge's default",
    )
    lease_seconds: float = _env(
        30.0,
        env="HPCBOX_JUDGE_LEASE_SECONDS",
        description="Seconds a claim on a submission holds without a heartbeat: "
        "a worker that dies is noticed after this.",
    )
    retention_seconds: int = _env(
        7 * 24 * 3600,
        env="HPCBOX_JUDGE_RETENTION_SECONDS",
        description="Seconds finished submissions are kept (then purged) unless a "
        "submission asks otherwise.",
        shown_default="`604800` (one week)",
    )
    max_queue: int = _env(
        100,
        env="HPCBOX_JUDGE_MAX_QUEUE",
        description="Submissions waiting before new ones are refused with 503 (Judge0's cap).",
    )
    callback_secret: SecretStr | None = _env(
        None,
        env="HPCBOX_JUDGE_CALLBACK_SECRET",
        description="Key of the `X-Hpcbox-Signature` HMAC on callbacks.",
        shown_default="unset: callbacks go unsigned",
    )
    callback_tries: int = _env(
        3, env="HPCBOX_JUDGE_CALLBACK_TRIES", description="Attempts per callback."
    )
    callback_timeout: float = _env(
        5.0,
        env="HPCBOX_JUDGE_CALLBACK_TIMEOUT",
        description="Seconds one callback attempt may take.",
    )
    callback_backoff: float = _env(
        1.0,
        env="HPCBOX_JUDGE_CALLBACK_BACKOFF",
        description="Seconds before the first callback retry; doubled after each failure.",
    )
    cache: Path | None = _env(
        None,
        env="HPCBOX_JUDGE_CACHE",
        description="The directory of the judge's runtime root filesystems, exactly "
        "(tests and benchmarks share one).",
        shown_default="root: `<system cache>/judge`; others: `$HPCBOX_HOME/judge`",
    )
    system_cache_dir: Path | None = _env(
        None,
        env="HPCBOX_SYSTEM_CACHE_DIR",
        description="The base of hpcbox's machine-wide caches: as root, the judge's "
        "runtime lives in its `judge` directory.",
        shown_default="`/var/cache/hpcbox`",
    )

    @field_validator("pool_size", mode="before")
    @classmethod
    def _pool_size(cls, value: Any) -> Any:
        return parse_pool_size(value) if isinstance(value, str) else value


class ApiSettings(SettingsGroup):
    """The REST API (`hpcbox serve`)."""

    group: ClassVar[str] = "api"

    token: SecretStr | None = _env(
        None,
        env="HPCBOX_API_TOKEN",
        description="Bearer token the REST API requires; needed to listen on any "
        "address but loopback.",
        shown_default="unset: no token (loopback only)",
    )


class ImagesSettings(SettingsGroup):
    """Building the cluster node images."""

    group: ClassVar[str] = "images"

    host_ca: str | None = _env(
        None,
        env="HPCBOX_IMAGES_HOST_CA",
        description="CA bundle image builds trust (pip and npm behind a TLS-intercepting "
        "proxy): a PEM file's absolute path, `auto` (the system's bundle) or `none`. "
        "`--host-ca` overrides it.",
        shown_default="`auto`",
    )


class KubeSettings(SettingsGroup):
    """Clusters on Kubernetes (``cluster up --runtime kubernetes``, ``cluster render``)."""

    group: ClassVar[str] = "kube"

    helm: str | None = _env(
        None,
        env="HPCBOX_HELM",
        description="The helm binary. Unset: `${XDG_CACHE_HOME:-~/.cache}/hpcbox/kube/bin/helm` "
        "(what `scripts/kube.sh build` makes), else `helm` on the PATH.",
        shown_default="the cache's, else the PATH's",
    )
    kubectl: str | None = _env(
        None,
        env="HPCBOX_KUBECTL",
        description="The kubectl binary, found as helm is.",
        shown_default="the cache's, else the PATH's",
    )
    charts: str | None = _env(
        None,
        env="HPCBOX_CHARTS",
        description="The directory holding hpcbox's Helm charts (hpcbox-slurm, "
        "hpcbox-jupyter, hpcbox-operator).",
        shown_default="`charts/` of the source checkout hpcbox runs from",
    )


# -- the one model --------------------------------------------------------------------

#: Names of the first, flat model that still work as keywords and attributes:
#: ``Settings(cpus=2)`` is ``Settings(jobs={"cpus": 2})``, ``settings.cpus`` is
#: ``settings.jobs.cpus``.
_FLAT: dict[str, tuple[str, str]] = {
    "cpus": ("jobs", "cpus"),
    "memory_bytes": ("jobs", "memory_bytes"),
    "agent_idle_seconds": ("jobs", "agent_idle_seconds"),
    "default_pids_limit": ("jobs", "default_pids_limit"),
    "slurm_rate_limit": ("slurm", "rate_limit"),
    "slurm_rate_burst": ("slurm", "rate_burst"),
}


def _default_home(environ: Mapping[str, str]) -> Path:
    xdg = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "/root")) / ".local/share")
    return Path(xdg) / "hpcbox"


class Settings(SettingsGroup):
    """Where hpcbox keeps its state, and one group of settings per part of hpcbox."""

    home: Path = _env(
        env="HPCBOX_HOME",
        description="State directory: the SQLite database, job directories, cluster "
        "keys, logs, the scheduler's lock.",
        shown_default="`$XDG_DATA_HOME/hpcbox`, else `~/.local/share/hpcbox`",
    )
    database_url: SecretStr | None = _env(
        None,
        env="HPCBOX_DATABASE_URL",
        description="SQLAlchemy URL of the state store, for PostgreSQL "
        "(`postgresql+psycopg://USER:PASSWORD@HOST/DB`) shared by many machines.",
        shown_default="SQLite at `$HPCBOX_HOME/hpcbox.db`",
    )
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    images: ImagesSettings = Field(default_factory=ImagesSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Every setting from ``HPCBOX_*`` variables (``os.environ`` when not given);
        without ``HPCBOX_HOME``, the state directory under ``XDG_DATA_HOME`` or ``HOME``."""
        env = os.environ if environ is None else environ
        if not env.get("HPCBOX_HOME"):
            env = {**env, "HPCBOX_HOME": str(_default_home(env))}
        return super().from_env(env)

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not _FLAT.keys() & data.keys():
            return data
        data = dict(data)
        for flat, (group, name) in _FLAT.items():
            if flat not in data:
                continue
            values = data.get(group, {})
            if isinstance(values, SettingsGroup):
                values = {key: getattr(values, key) for key in type(values).model_fields}
            data[group] = {**values, name: data.pop(flat)}
        return data

    @field_validator("home")
    @classmethod
    def _absolute(cls, home: Path) -> Path:
        return home.expanduser().absolute()

    def to_env(self) -> dict[str, str]:
        """The variables that rebuild the state store's, the jobs' and SLURM's settings
        in a child process (the background agent). Secrets are left out, but for the
        database URL: the child must open the same store."""
        env = {
            "HPCBOX_HOME": str(self.home),
            "HPCBOX_AGENT_IDLE_SECONDS": str(self.jobs.agent_idle_seconds),
        }
        if self.database_url:
            env["HPCBOX_DATABASE_URL"] = self.database_url.get_secret_value()
        if self.jobs.cpus:
            env["HPCBOX_CPUS"] = str(self.jobs.cpus)
        if self.jobs.memory_bytes:
            env["HPCBOX_MEMORY"] = f"{self.jobs.memory_bytes // 1024}K"
        env["HPCBOX_SLURM_RATE_LIMIT"] = str(self.slurm.rate_limit or 0)
        env["HPCBOX_SLURM_RATE_BURST"] = str(self.slurm.rate_burst)
        return env

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def sqlite_path(self) -> Path:
        return self.home / "hpcbox.db"

    def effective_database_url(self) -> str:
        """The store's URL in clear, for the database engine only (never print it)."""
        return reveal(self.database_url) or f"sqlite:///{self.sqlite_path}"

    # The flat names of the first model (see _FLAT), read by the job engine, the
    # local backend and the agent.

    @property
    def cpus(self) -> int | None:
        return self.jobs.cpus

    @property
    def memory_bytes(self) -> int | None:
        return self.jobs.memory_bytes

    @property
    def agent_idle_seconds(self) -> float:
        return self.jobs.agent_idle_seconds

    @property
    def default_pids_limit(self) -> int | None:
        return self.jobs.default_pids_limit

    @property
    def slurm_rate_limit(self) -> float | None:
        return self.slurm.rate_limit

    @property
    def slurm_rate_burst(self) -> int:
        return self.slurm.rate_burst


# -- the table of every variable -------------------------------------------------------


@dataclass(frozen=True)
class EnvVariable:
    """One row of the table: a variable, the setting it sets, its default, what it is."""

    name: str
    setting: str
    default: str
    description: str
    secret: bool


def _shown_default(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown_default"), str):
        return str(extra["shown_default"])
    if info.default is None:
        return "unset"
    return f"`{info.default}`"


def _rows(model: type[SettingsGroup], path: str) -> Iterator[EnvVariable]:
    for name, info in model.model_fields.items():
        group = _group_class(info)
        if group is not None:
            yield from _rows(group, f"{path}.{name}")
            continue
        env = _env_name(info)
        if env is None:
            continue
        yield EnvVariable(
            name=env,
            setting=f"{path}.{name}",
            default=_shown_default(info),
            description=info.description or "",
            secret=_is_secret(info.annotation),
        )


def env_variables(model: type[SettingsGroup] = Settings) -> list[EnvVariable]:
    """Every variable ``model`` reads, in the model's order (groups after the top)."""
    path = "settings" + (f".{model.group}" if model.group else "")
    return list(_rows(model, path))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def env_table() -> str:
    """Every ``HPCBOX_*`` variable as a Markdown table, from the model."""
    lines = [
        "| Variable | Setting | Default | What it sets |",
        "| --- | --- | --- | --- |",
    ]
    for row in env_variables():
        what = ("**Secret.** " if row.secret else "") + row.description
        lines.append(f"| `{row.name}` | `{row.setting}` | {_cell(row.default)} | {_cell(what)} |")
    return "\n".join(lines) + "\n"


#: Variables hpcbox sets itself for the programs it starts; they are not settings.
SET_BY_HPCBOX: tuple[tuple[str, str], ...] = (
    ("HPCBOX_JOB_ID", "a local job's environment: the job's id"),
    ("HPCBOX_JOB_NAME", "a local job's environment: the job's name"),
    ("HPCBOX_ATTEMPT", "a local job's environment: the attempt's number"),
    ("HPCBOX_NTASKS", "a local job's environment: the tasks it asked for"),
    ("HPCBOX_CPUS", "a local job's environment: the CPUs it asked for, all tasks together"),
    ("HPCBOX_SLURMJOB_UID", "a job the operator submits: its `SlurmJob`'s uid"),
    ("HPCBOX_CLUSTER", "a cluster node's container: the cluster's name"),
    ("HPCBOX_ROLE", "a cluster node's container: the node's role"),
    ("HPCBOX_MOUNTS", "a cluster node's pod on Kubernetes: where its inputs are mounted"),
    ("HPCBOX_SLURMD_CONF", "a SLURM worker's container: slurmd's `--conf` (dynamic node)"),
    ("HPCBOX_ENGINES", "a Jupyter worker's container: ipyparallel engines to start"),
    ("HPCBOX_JUPYTERHUB", "a Jupyter container: `1` starts JupyterHub"),
    ("HPCBOX_VERSION", "a build argument of every node image: hpcbox's version"),
)

#: Variables of hpcbox's own scripts, tests and benchmarks (not read by hpcbox).
DEVELOPMENT: tuple[tuple[str, str], ...] = (
    ("HPCBOX_SKIP_CLEANROOM", "`scripts/test.sh`: `1` leaves the clean room out (not in CI)"),
    ("HPCBOX_CLEANROOM_REBUILD", "`scripts/cleanroom.sh`: `1` rebuilds the clean room image"),
    ("HPCBOX_VERBOSE", "`scripts/setup.sh`: `1` shows the installers' output"),
    ("HPCBOX_DEMO_CLUSTER", "`scripts/demo.sh`: the demo cluster's name (`demo`)"),
    ("HPCBOX_TEST_DATABASE_URL", "the PostgreSQL tests' server (`scripts/postgres.sh`)"),
    ("HPCBOX_TEST_BROKER_URL", "the Celery tests' Redis (`scripts/redis.sh`)"),
    ("HPCBOX_TEST_KUBECONFIG", "the Kubernetes tests' cluster (`scripts/kube.sh`)"),
    ("HPCBOX_KUBE_CACHE", "`scripts/kube.sh`: built binaries and images (`~/.cache/hpcbox/kube`)"),
    (
        "HPCBOX_KUBE_STATE",
        "`scripts/kube.sh`: PKI, etcd, containerd, logs (`~/.local/state/hpcbox/kube`)",
    ),
    ("HPCBOX_KUBE_API_PORT", "`scripts/kube.sh`: kube-apiserver's port (`6443`)"),
    ("HPCBOX_KUBE_NODE_IP", "`scripts/kube.sh`: the node's address (the default route's)"),
    ("HPCBOX_TEST_REDIS_PORT", "`scripts/redis.sh`: the port (`6379`)"),
    ("HPCBOX_TEST_CACHE", "the container tests' image cache (`/var/tmp/hpcbox-test-cache`)"),
    ("HPCBOX_TEST_REBUILD_IMAGES", "the image tests: `1` rebuilds every image"),
    ("HPCBOX_UPDATE_GOLDEN", "the rendering tests: `1` rewrites the golden files"),
    ("HPCBOX_BENCH_HOME", "the cluster benchmarks' state directory (`/var/tmp/hpcbox-bench`)"),
)


def _pairs(title: str, pairs: tuple[tuple[str, str], ...]) -> str:
    rows = [f"| `{name}` | {_cell(what)} |" for name, what in pairs]
    return "\n".join([f"| {title} | Where and what |", "| --- | --- |", *rows]) + "\n"


def configuration_page() -> str:
    """docs/configuration.md: every ``HPCBOX_*`` variable, from the model."""
    return f"""<!-- Generated from hpcbox.core.settings; do not edit. Regenerate with:
     {REGENERATE} -->

# Configuration

hpcbox reads its configuration from `HPCBOX_*` environment variables, every one
of them into one typed model, `hpcbox.core.settings.Settings`: the state directory
and store at its top, a group per part beneath (`settings.jobs`, `settings.slurm`,
`settings.judge`, `settings.api`, `settings.images`, `settings.kube`). An empty variable counts as
unset; a value that does not parse stops the command with the variable's name
(exit code 2).

Secrets are held so that they never reach a log, an error message or CLI output in
clear, and hpcbox never stores them (the database URL lives only in the
environment of the processes that use it).

## Every HPCBOX_ variable

{env_table()}
## Set by hpcbox

hpcbox sets these in the environment of what it starts (a job, a node's container,
an image build); they are not settings. `HPCBOX_CPUS` is both: a local job sees the
CPUs it asked for, and an hpcbox run inside that job takes them as the size of its
own local queue.

{_pairs("Variable", SET_BY_HPCBOX)}
## For hpcbox's own scripts and tests

{_pairs("Variable", DEVELOPMENT)}"""


def main() -> int:
    sys.stdout.write(configuration_page())
    return 0


if __name__ == "__main__":
    sys.exit(main())
