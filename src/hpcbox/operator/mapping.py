"""SlurmJob objects onto hpcbox values and back: pure functions, no Kubernetes, no I/O.

- :func:`connection` and :func:`target_spec`: ``spec.target`` -> an hpcbox target.
  SlurmJobs of one namespace that reach the same login node as the same user with
  the same Secret share one target, hence one SSH connection and one batched
  squeue per poll however many jobs there are.
- :func:`credentials_from_secret`: a Secret's data -> in-memory SSH credentials.
- :func:`job_spec`: ``spec`` (+ the script text) -> a :class:`JobSpec`.
- :func:`status_of`: a :class:`Job` -> the SlurmJob's ``status``.
- :func:`decide_update`: what an edit of ``spec`` means for the job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hpcbox.core.errors import InvalidInputError
from hpcbox.infra.transport.credentials import SshCredentials
from hpcbox.jobs.model.job import Job
from hpcbox.jobs.model.spec import JobSpec, parse_job_spec
from hpcbox.jobs.model.states import JobState
from hpcbox.jobs.model.target import TargetSpec, parse_target
from hpcbox.operator.resource import ObjectRef

__all__ = [
    "UID_ENV",
    "Connection",
    "Decision",
    "ScriptRef",
    "connection",
    "credentials_from_secret",
    "decide_update",
    "format_elapsed",
    "job_spec",
    "script_ref",
    "status_of",
    "target_spec",
]

#: Set in each job's environment: how a restarted operator recognises a job it
#: submitted but had not yet recorded in the SlurmJob's status.
UID_ENV = "HPCBOX_SLURMJOB_UID"
#: Secret keys: the standard kubernetes.io/ssh-auth key, and the original prototype's.
KEY_FIELD = "ssh-privatekey"
KNOWN_HOSTS_FIELD = "known_hosts"
USER_FIELD = "user"
PASSWORD_FIELD = "passwd"  # noqa: S105 (a key name, not a password)


@dataclass(frozen=True)
class Connection:
    """``spec.target``: where the job goes. ``user`` None: the Secret names it."""

    host: str
    port: int
    user: str | None
    secret_name: str
    host_key: str | None


@dataclass(frozen=True)
class ScriptRef:
    """``spec.scriptConfigMap``: the script is the ConfigMap's ``key``."""

    name: str
    key: str


class Decision(StrEnum):
    """What to do about an edit of a SlurmJob's spec."""

    CREATE = "create"  # no job yet (the first submission failed): submit now
    RERUN = "rerun"  # the job is over: a new attempt with the new spec
    REFUSE_ACTIVE = "refuse-active"  # the job is queued or running
    REFUSE_TARGET = "refuse-target"  # the connection changed: not the same job any more
    NOTHING = "nothing"  # nothing that concerns the job changed


def _section(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        raise InvalidInputError("must be an object", field=f"spec.{key}")
    return value


def connection(spec: Mapping[str, Any]) -> Connection:
    """Read ``spec.target``; raises InvalidInputError naming the field."""
    target = _section(spec, "target")
    host = target.get("host")
    secret = target.get("secretName")
    if not isinstance(host, str) or not host:
        raise InvalidInputError("is required", field="spec.target.host")
    if not isinstance(secret, str) or not secret:
        raise InvalidInputError("is required", field="spec.target.secretName")
    port = target.get("port", 22)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise InvalidInputError("must be a port number", field="spec.target.port")
    user = target.get("user") or None
    host_key = target.get("hostKey") or None
    return Connection(
        host=host,
        port=port,
        user=str(user) if user else None,
        secret_name=secret,
        host_key=str(host_key) if host_key else None,
    )


def credentials_from_secret(
    data: Mapping[str, bytes], *, secret_name: str
) -> tuple[SshCredentials, str | None]:
    """The Secret's credentials and the user it names (prototype Secrets), if any.

    Accepts ``ssh-privatekey`` (+ optional ``known_hosts``) and/or the original
    prototype's ``user`` + ``passwd``. Raises InvalidInputError (naming the
    Secret and the key, never a value) when it holds neither key nor password.
    """

    def text(key: str) -> str | None:
        raw = data.get(key)
        if raw is None or not raw.strip():
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                "is not UTF-8 text", field=f"Secret {secret_name}: {key}"
            ) from exc

    key = text(KEY_FIELD)
    password = text(PASSWORD_FIELD)
    if key is None and password is None:
        raise InvalidInputError(
            f"holds neither {KEY_FIELD!r} nor {PASSWORD_FIELD!r}", field=f"Secret {secret_name}"
        )
    user = text(USER_FIELD)
    credentials = SshCredentials(
        key_data=key,
        # A password ends where the line does (Secrets made with echo carry a newline).
        password=password.rstrip("\r\n") if password is not None else None,
        known_hosts=text(KNOWN_HOSTS_FIELD),
    )
    return credentials, user.strip() if user else None


def _target_name(namespace: str, conn: Connection, user: str) -> str:
    identity = "\0".join(
        (namespace, conn.host, str(conn.port), user, conn.secret_name, conn.host_key or "")
    )
    return "k8s-" + hashlib.sha256(identity.encode()).hexdigest()[:16]


def target_spec(namespace: str, conn: Connection, secret_user: str | None) -> TargetSpec:
    """The hpcbox target for a SlurmJob's connection (holds no secret)."""
    user = conn.user or secret_user
    if not user:
        raise InvalidInputError(
            "is required (or a 'user' key in the Secret)", field="spec.target.user"
        )
    host = f"[{conn.host}]" if ":" in conn.host and not conn.host.startswith("[") else conn.host
    try:
        return parse_target(
            {
                "name": _target_name(namespace, conn, user),
                "host": host,
                "port": conn.port,
                "user": user,
                "host_key": conn.host_key,
            }
        )
    except InvalidInputError as exc:
        field = {"host": "host", "user": "user", "host_key": "hostKey"}.get(exc.field or "", "")
        raise InvalidInputError(exc.detail, field=f"spec.target.{field}".rstrip(".")) from exc


def script_ref(spec: Mapping[str, Any]) -> str | ScriptRef:
    """The inline ``scriptCode``, or where in a ConfigMap the script is."""
    code = spec.get("scriptCode")
    ref = spec.get("scriptConfigMap")
    if (code is None) == (ref is None):
        raise InvalidInputError("give exactly one of scriptCode and scriptConfigMap", field="spec")
    if code is not None:
        if not isinstance(code, str):
            raise InvalidInputError("must be a string", field="spec.scriptCode")
        return code
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
        raise InvalidInputError("needs a name", field="spec.scriptConfigMap")
    return ScriptRef(name=ref["name"], key=str(ref.get("key") or "script"))


def job_spec(ref: ObjectRef, spec: Mapping[str, Any], script: str) -> JobSpec:
    """The JobSpec for a SlurmJob, given the script text (inline or from its ConfigMap)."""
    resources = _section(spec, "resources")
    renames = {
        "nodes": "nodes",
        "ntasks": "ntasks",
        "cpusPerTask": "cpus_per_task",
        "memory": "memory",
        "time": "time_limit",
        "partition": "partition",
    }
    unknown = sorted(set(resources) - set(renames))
    if unknown:
        raise InvalidInputError(f"unknown field {unknown[0]!r}", field="spec.resources")
    env = dict(_section(spec, "env"))
    env[UID_ENV] = ref.uid
    data: dict[str, Any] = {
        "name": ref.name,
        "script": script,
        "resources": {renames[k]: v for k, v in resources.items() if v is not None},
        "env": env,
    }
    if spec.get("workdir"):
        data["workdir"] = spec["workdir"]
    try:
        return parse_job_spec(data)
    except InvalidInputError as exc:
        field = exc.field or ""
        for ours, theirs in renames.items():
            field = field.replace(f"resources.{theirs}", f"resources.{ours}")
        field = field.replace("script", "scriptCode") if field == "script" else field
        raise InvalidInputError(exc.detail, field=f"spec.{field}") from exc


def job_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a spec that define the job (an edit elsewhere changes nothing)."""
    return {
        k: spec.get(k) for k in ("scriptCode", "scriptConfigMap", "resources", "env", "workdir")
    }


def decide_update(job: Job | None, old: Mapping[str, Any], new: Mapping[str, Any]) -> Decision:
    """What an edit of ``spec`` from ``old`` to ``new`` means for ``job`` (None: none yet)."""
    if job is None:
        return Decision.CREATE
    if connection(old) != connection(new):
        return Decision.REFUSE_TARGET
    if job_fields(old) == job_fields(new):
        return Decision.NOTHING
    if not job.terminal:
        return Decision.REFUSE_ACTIVE
    return Decision.RERUN


def format_elapsed(seconds: float) -> str:
    """SLURM's way of writing a duration: ``[D-]HH:MM:SS``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _message(job: Job, ref: ObjectRef, unreachable: str | None) -> str:
    cur = job.current
    if cur.state is JobState.NEW:
        return f"submitting to the cluster ({unreachable})" if unreachable else "submitting"
    if unreachable:
        return f"state kept while the cluster cannot be reached: {unreachable}"
    if cur.state is JobState.ERROR:
        return cur.reason or "hpcbox lost track of the job"
    if job.terminal:
        code = "" if cur.exit_code is None else f" with exit code {cur.exit_code}"
        ended = f"SLURM job {cur.native_id} ended {cur.state.value}{code}"
        return f"{ended}; output: kubectl logs {ref.name}"
    return f"SLURM job {cur.native_id} is {cur.native_state or cur.state.value}"


def status_of(
    job: Job,
    ref: ObjectRef,
    *,
    target: TargetSpec,
    now: datetime,
    unreachable: str | None = None,
) -> dict[str, Any]:
    """The SlurmJob ``status`` for ``job`` (a merge patch: None removes a field)."""
    cur = job.current
    elapsed: str | None = None
    if cur.started_at is not None:
        end = cur.finished_at or now
        elapsed = format_elapsed((_aware(end) - _aware(cur.started_at)).total_seconds())
    return {
        "state": cur.state.value,
        "nativeState": cur.native_state,
        "reason": None if cur.reason in (None, "None") else cur.reason,
        "jobId": cur.native_id,
        "partition": cur.spec.resources.partition,
        "user": target.user,
        "elapsed": elapsed,
        "exitCode": cur.exit_code,
        "attempts": cur.number,
        "message": _message(job, ref, unreachable),
        "hpcboxJob": job.id,
        "target": target.name,
    }
