"""Kubernetes manifests for a SLURM :class:`ClusterSpec`.

The same spec that runs on Podman or Docker renders to plain manifests (no
Helm, no operator) in one namespace, ``hpcbox-<name>``:

- Secrets: the munge key, the SSH host keys, the admin's public key, the
  users' shadow lines and, with accounting, slurmdbd.conf and the database
  password. Everything secret-bearing is in a Secret, never in a ConfigMap.
- ConfigMaps: slurm.conf and cgroup.conf, the users' passwd/group lines and
  authorized keys, the MPI hostfile, and the nodes' start-up script (the one
  file of :mod:`hpcbox.clusters.render.node`, as on Podman and Docker).
- The controller (slurmctld, also the SSH login node): a one-replica
  Deployment with hostname ``controller``, its state on a PVC, and Services
  ``controller`` (slurmctld) and ``login`` (SSH, type configurable).
- The workers: a StatefulSet ``worker`` with a headless Service ``worker``.
  Kubernetes names StatefulSet pods ``worker-0``, ``worker-1``...; they are
  dynamic SLURM nodes registering under their hostname, so SLURM calls them
  ``worker-0``... there, where containers on Podman are ``worker1``...
- With accounting: MariaDB (data on a PVC) and slurmdbd, each a one-replica
  Deployment behind a Service of its hostname.
- Homes: a ReadWriteMany PVC ``home`` from a storage class, or bound to an
  NFS PersistentVolume.

Kind ``jupyter`` renders a JupyterHub front end, ipyparallel engines and an
Ingress instead of the SLURM parts (see :mod:`._k8s_jupyter`), on the same
namespace and homes.

Pure: the caller supplies the secrets (:class:`ClusterSecrets`) and writes the
result (:func:`manifests_yaml`, :func:`manifest_files`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcbox.clusters.render import _k8s, _k8s_jupyter, _k8s_workloads
from hpcbox.clusters.render._k8s import Manifest, Names
from hpcbox.clusters.render._k8s_workloads import WORKER_STATEFULSET
from hpcbox.clusters.render._yaml import manifest_files, manifests_yaml
from hpcbox.clusters.render.accounts import (
    accounts,
    authorized_keys,
    group_lines,
    passwd_lines,
    sacctmgr_commands,
    shadow_lines,
)
from hpcbox.clusters.render.layout import (
    CONTROLLER_HOST,
    DB_HOST,
    DB_PORT,
    DBD_HOST,
    SLURMCTLD_PORT,
    SLURMD_PORT,
    SLURMDBD_PORT,
    SSH_PORT,
)
from hpcbox.clusters.render.mpi import render_hostfile
from hpcbox.clusters.render.slurm import render_cgroup_conf, render_slurm_conf, render_slurmdbd_conf
from hpcbox.clusters.spec import ClusterKind, ClusterSpec
from hpcbox.core.errors import InvalidInputError
from hpcbox.core.version import __version__

__all__ = [
    "LOGIN_SERVICE_TYPES",
    "MIN_MUNGE_KEY_BYTES",
    "WORKER_STATEFULSET",
    "ClusterSecrets",
    "image_name",
    "manifest_files",
    "manifests_yaml",
    "render_kubernetes",
    "worker_pod_hostname",
]

LOGIN_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
#: munged refuses shorter keys.
MIN_MUNGE_KEY_BYTES = 32
_CONTROLLER_STATE_SIZE = "1Gi"
_DB_SIZE = "5Gi"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[A-Za-z0-9][-._A-Za-z0-9]{0,252}$")
# The password goes into slurmdbd.conf and, on MariaDB's side, into SQL quotes:
# only characters that need quoting in neither.
_DB_PASSWORD = re.compile(r"^[A-Za-z0-9._~+/=-]{8,128}$")
_IMAGE_PREFIX = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_NFS_SERVER = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")


@dataclass(frozen=True)
class ClusterSecrets:
    """The per-cluster secrets the manifests carry (as base64 Secret data).

    ``ssh_host_keys`` maps file names (``ssh_host_ed25519_key``, and ``.pub``
    files if wanted) to their text. ``db_password`` is required when the spec
    has accounting: 8-128 characters from ``A-Za-z0-9._~+/=-`` (URL-safe
    base64 fits). Construction raises :class:`InvalidInputError` naming the
    field for a munge key under 32 bytes, a file name that cannot be a Secret
    key, an admin key that is not one line, or such a password. ``repr``
    shows no secret.
    """

    munge_key: bytes = field(repr=False)
    ssh_host_keys: Mapping[str, str] = field(repr=False)
    admin_public_key: str
    db_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.munge_key) < MIN_MUNGE_KEY_BYTES:
            raise InvalidInputError(
                f"the munge key must be at least {MIN_MUNGE_KEY_BYTES} bytes", field="munge_key"
            )
        for name in self.ssh_host_keys:
            if not _SECRET_KEY.match(name):
                raise InvalidInputError(f"not a usable file name: {name!r}", field="ssh_host_keys")
        key = self.admin_public_key.strip()
        if not key or "\n" in key or "\r" in key:
            raise InvalidInputError("must be one public key line", field="admin_public_key")
        if self.db_password is not None and not _DB_PASSWORD.match(self.db_password):
            raise InvalidInputError(
                "8-128 characters from A-Z a-z 0-9 . _ ~ + / = -", field="db_password"
            )


def image_name(prefix: str, role: str, tag: str) -> str:
    """``<prefix>/<role>:<tag>``, e.g. ``hpcbox/slurm-worker:0.1.0``."""
    return f"{prefix}/{role}:{tag}"


def worker_pod_hostname(index: int) -> str:
    """Hostname (and SLURM node name) of worker pod ``index``, counted from 0."""
    return f"{WORKER_STATEFULSET}-{index}"


def render_kubernetes(
    spec: ClusterSpec,
    *,
    secrets: ClusterSecrets,
    image_prefix: str = "hpcbox",
    storage_class: str | None = None,
    nfs_server: str | None = None,
    nfs_path: str | None = None,
    image_tag: str | None = None,
    login_service_type: str = "ClusterIP",
    home_size: str = "10Gi",
    ingress_host: str | None = None,
) -> list[dict[str, Any]]:
    """All manifests for ``spec``, in an order ``kubectl apply`` can take them.

    Images are ``<image_prefix>/<role>:<image_tag>`` (tag: hpcbox's version by
    default). Homes come from ``storage_class`` (the cluster's default class
    when None) or, given ``nfs_server`` and ``nfs_path``, from an NFS
    PersistentVolume of ``home_size``. ``login_service_type`` is one of
    :data:`LOGIN_SERVICE_TYPES`. ``ingress_host`` (kind jupyter) limits the
    hub's Ingress to one host name; None serves it on every host.

    Raises :class:`InvalidInputError` naming the argument for a spec of kind
    ``mpi``, accounting without ``secrets.db_password``, half an
    NFS option, NFS together with a storage class, or a malformed name.
    """
    tag = image_tag or __version__
    _check_options(
        spec,
        secrets,
        image_prefix=image_prefix,
        tag=tag,
        storage_class=storage_class,
        nfs=(nfs_server, nfs_path),
        login_service_type=login_service_type,
        home_size=home_size,
    )
    if ingress_host is not None and not _DNS_SUBDOMAIN.match(ingress_host):
        raise InvalidInputError(f"not a host name: {ingress_host!r}", field="ingress_host")
    names = Names(spec.name)
    nfs_volume = None
    if nfs_server is not None and nfs_path is not None:
        nfs_volume = _nfs_volume(names, nfs_server, nfs_path, home_size)
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": names.namespace, "labels": names.labels("cluster")},
    }
    if spec.kind is ClusterKind.JUPYTER:
        return [
            namespace,
            *([nfs_volume] if nfs_volume else []),
            _home_claim(names, storage_class, nfs_volume, home_size),
            *_k8s_jupyter.jupyter_manifests(
                names, spec, image_name(image_prefix, "jupyter", tag), ingress_host=ingress_host
            ),
        ]
    return [
        namespace,
        *([nfs_volume] if nfs_volume else []),
        *_secrets(names, spec, secrets),
        *_config_maps(names, spec),
        *_claims(names, spec, storage_class, nfs_volume, home_size),
        *_services(names, spec, login_service_type),
        *_workloads(names, spec, secrets, image_prefix, tag),
    ]


def _check_options(
    spec: ClusterSpec,
    secrets: ClusterSecrets,
    *,
    image_prefix: str,
    tag: str,
    storage_class: str | None,
    nfs: tuple[str | None, str | None],
    login_service_type: str,
    home_size: str,
) -> None:
    if spec.kind not in (ClusterKind.SLURM, ClusterKind.JUPYTER):
        raise InvalidInputError(
            f"kinds 'slurm' and 'jupyter' render to Kubernetes, not {spec.kind.value!r}",
            field="kind",
        )
    if not _DNS_LABEL.match(f"hpcbox-{spec.name}"):
        raise InvalidInputError(f"cannot name a namespace after {spec.name!r}", field="name")
    if spec.accounting and secrets.db_password is None:
        raise InvalidInputError("accounting needs a database password", field="db_password")
    if not _IMAGE_PREFIX.match(image_prefix):
        raise InvalidInputError(f"not an image prefix: {image_prefix!r}", field="image_prefix")
    if not _TAG.match(tag):
        raise InvalidInputError(f"not an image tag: {tag!r}", field="image_tag")
    if storage_class is not None and not _DNS_SUBDOMAIN.match(storage_class):
        raise InvalidInputError(
            f"not a storage class name: {storage_class!r}", field="storage_class"
        )
    if login_service_type not in LOGIN_SERVICE_TYPES:
        raise InvalidInputError(
            f"must be one of {', '.join(LOGIN_SERVICE_TYPES)}", field="login_service_type"
        )
    if not _QUANTITY.match(home_size):
        raise InvalidInputError(f"not a size such as 10Gi: {home_size!r}", field="home_size")
    server, path = nfs
    if (server is None) != (path is None):
        raise InvalidInputError("give both nfs_server and nfs_path, or neither", field="nfs_server")
    if server is not None and path is not None:
        if storage_class is not None:
            raise InvalidInputError(
                "homes come from NFS or from a storage class, not both", field="storage_class"
            )
        if not _NFS_SERVER.match(server):
            raise InvalidInputError(f"not a host name or address: {server!r}", field="nfs_server")
        if not path.startswith("/") or any(c.isspace() or c == "\x00" for c in path):
            raise InvalidInputError("an absolute path without whitespace", field="nfs_path")


def _secrets(names: Names, spec: ClusterSpec, secrets: ClusterSecrets) -> list[Manifest]:
    users = accounts(spec)
    admin_key = secrets.admin_public_key.strip() + "\n"
    result = [
        _k8s.secret(names, "munge-key", "cluster", {"munge.key": secrets.munge_key}),
        _k8s.secret(names, "ssh-host-keys", "cluster", dict(secrets.ssh_host_keys)),
        _k8s.secret(names, "admin-key", "cluster", {"authorized_keys": admin_key}),
        _k8s.secret(names, "users-shadow", "cluster", {"shadow": shadow_lines(users)}),
    ]
    if spec.accounting and secrets.db_password is not None:
        conf = render_slurmdbd_conf(spec, db_password=secrets.db_password)
        result += [
            _k8s.secret(names, "slurmdbd-conf", "slurmdbd", {"slurmdbd.conf": conf}),
            _k8s.secret(names, "mariadb-credentials", "mariadb", {"password": secrets.db_password}),
        ]
    return result


def _config_maps(names: Names, spec: ClusterSpec) -> list[Manifest]:
    users = accounts(spec)
    user_files = {"passwd": passwd_lines(users), "group": group_lines(users)}
    user_files.update({f"authorized_keys.{a.name}": authorized_keys(a) for a in users})
    if spec.accounting:
        # One command a line; the node script splits words on spaces, which is
        # exact: the arguments are checked names and constants, no whitespace.
        commands = sacctmgr_commands(spec, cluster=spec.name)
        user_files["sacctmgr"] = "".join(" ".join(argv) + "\n" for argv in commands)
    # Pod DNS names through the headless Service, e.g. worker-0.worker.
    hosts = [f"{worker_pod_hostname(i)}.{WORKER_STATEFULSET}" for i in range(spec.workers.count)]
    hostfile = render_hostfile(hosts, slots=spec.workers.cpus, flavour=spec.mpi)
    slurm_files = {"slurm.conf": render_slurm_conf(spec), "cgroup.conf": render_cgroup_conf(spec)}
    return [
        _k8s.config_map(names, "slurm-config", "cluster", slurm_files),
        _k8s.config_map(names, "users", "cluster", user_files),
        _k8s.config_map(names, "mpi-hostfile", "cluster", {"hostfile": hostfile}),
        _k8s.node_setup(names),
    ]


def _nfs_volume(names: Names, server: str, path: str, size: str) -> Manifest:
    # PersistentVolumes are cluster-wide: the name carries the namespace.
    name = f"{names.namespace}-home"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": names.meta(name, "cluster", namespaced=False),
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteMany"],
            # Homes outlive the cluster: deleting the claim must not wipe them.
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            # Reserved for this cluster's claim; no other claim can bind it.
            "claimRef": {"namespace": names.namespace, "name": "home"},
            "nfs": {"server": server, "path": path},
        },
    }


def _home_claim(
    names: Names, storage_class: str | None, nfs_volume: Manifest | None, home_size: str
) -> Manifest:
    if nfs_volume is not None:
        # Bound by name; the empty class keeps dynamic provisioning from
        # handing the claim some other volume first.
        home = _k8s.pvc(
            names,
            "home",
            "cluster",
            access_mode="ReadWriteMany",
            size=home_size,
            storage_class="",
            volume_name=nfs_volume["metadata"]["name"],
        )
    else:
        home = _k8s.pvc(
            names,
            "home",
            "cluster",
            access_mode="ReadWriteMany",
            size=home_size,
            storage_class=storage_class,
        )
    return home


def _claims(
    names: Names,
    spec: ClusterSpec,
    storage_class: str | None,
    nfs_volume: Manifest | None,
    home_size: str,
) -> list[Manifest]:
    claims = [
        _home_claim(names, storage_class, nfs_volume, home_size),
        _k8s.pvc(
            names,
            "controller-state",
            "controller",
            access_mode="ReadWriteOnce",
            size=_CONTROLLER_STATE_SIZE,
            storage_class=storage_class,
        ),
    ]
    if spec.accounting:
        claims.append(
            _k8s.pvc(
                names,
                "mariadb-data",
                "mariadb",
                access_mode="ReadWriteOnce",
                size=_DB_SIZE,
                storage_class=storage_class,
            )
        )
    return claims


def _services(names: Names, spec: ClusterSpec, login_service_type: str) -> list[Manifest]:
    services = [
        _k8s.service(names, CONTROLLER_HOST, "controller", [("slurmctld", SLURMCTLD_PORT)]),
        _k8s.service(
            names, "login", "controller", [("ssh", SSH_PORT)], service_type=login_service_type
        ),
        _k8s.service(
            names,
            WORKER_STATEFULSET,
            "worker",
            [("slurmd", SLURMD_PORT), ("ssh", SSH_PORT)],
            headless=True,
        ),
    ]
    if spec.accounting:
        services += [
            _k8s.service(names, DB_HOST, "mariadb", [("mysql", DB_PORT)]),
            _k8s.service(names, DBD_HOST, "slurmdbd", [("slurmdbd", SLURMDBD_PORT)]),
        ]
    return services


def _workloads(
    names: Names, spec: ClusterSpec, secrets: ClusterSecrets, prefix: str, tag: str
) -> list[Manifest]:
    users = accounts(spec)
    ssh_keys = sorted(secrets.ssh_host_keys)
    workloads = []
    if spec.accounting:
        workloads += [
            _k8s_workloads.mariadb(names, image_name(prefix, "mariadb", tag)),
            _k8s_workloads.slurmdbd(names, image_name(prefix, "slurmdbd", tag)),
        ]
    workloads += [
        _k8s_workloads.controller(
            names,
            image_name(prefix, "slurm-controller", tag),
            users,
            ssh_keys,
            accounting=spec.accounting,
        ),
        _k8s_workloads.workers(
            names, spec, image_name(prefix, "slurm-worker", tag), users, ssh_keys
        ),
    ]
    return workloads
