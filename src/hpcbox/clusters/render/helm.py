"""A ClusterSpec as the values file of hpcbox's Helm chart for its kind: one spec,
many targets (``hpcbox cluster render --target helm``, and what ``cluster up
--runtime kubernetes`` installs).

Kinds ``slurm`` and ``mpi`` map onto chart ``hpcbox-slurm``, kind ``jupyter`` onto
``hpcbox-jupyter``. ClusterSpec fields keep their names in the values (the charts'
READMEs, "From a ClusterSpec", document the mapping): ``name``, ``workers`` (memory
in MiB), ``partitions`` (``max_time`` as ``max_time_minutes``, rounded up as
slurm.conf does), ``mpi``, ``accounting``, ``users`` (each with the uid
:meth:`ClusterSpec.user_ids` assigns) and, for ``jupyter``, ``engines_per_worker``.
What Kubernetes adds (images, storage, services, keeping homes, the admin key) comes
from :class:`HelmOptions`. Only values that differ from the chart's defaults or come
from the spec are written, so a values file stays readable and ``helm upgrade
--reuse-values`` keeps working.

Pure: no I/O. The values are plain data; :func:`values_yaml` makes the file's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from hpcbox.clusters.spec import ClusterKind, ClusterSpec
from hpcbox.core.errors import InvalidInputError
from hpcbox.core.version import __version__

__all__ = [
    "IMAGE_PREFIX",
    "JUPYTER_CHART",
    "SERVICE_TYPES",
    "SLURM_CHART",
    "HelmOptions",
    "chart_name",
    "helm_values",
    "jupyter_values",
    "slurm_values",
    "values_yaml",
]

SLURM_CHART = "hpcbox-slurm"
JUPYTER_CHART = "hpcbox-jupyter"
#: Images are ``<prefix>/<role>:<tag>``, as ``hpcbox images build`` tags them.
IMAGE_PREFIX = "hpcbox"
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PREFIX = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_NFS_SERVER = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")
_KEY_LINE = re.compile(r"^\S+ [A-Za-z0-9+/=]+( [^\n\r]*)?$")


@dataclass(frozen=True)
class HelmOptions:
    """What Kubernetes needs beyond the spec. None: the chart's default.

    ``image_tag``: the images' tag (default this hpcbox's version, the tag ``hpcbox
    images build`` gives and the charts' appVersion). ``service_type``: the SSH login
    Service (slurm) or the hub's (jupyter); with ``NodePort``, the spec's
    ``login.ssh_port`` (slurm) or ``jupyter.port`` (jupyter), when not 0, is the node
    port. ``keep_homes``: keep the homes claim at uninstall. ``admin_public_key``:
    root's authorized key on every node, added to every user's (slurm only).
    """

    image_tag: str = __version__
    image_prefix: str = IMAGE_PREFIX
    pull_policy: str | None = None
    storage_class: str | None = None
    home_size: str | None = None
    nfs_server: str | None = None
    nfs_path: str | None = None
    keep_homes: bool | None = None
    service_type: str | None = None
    ingress_host: str | None = None
    admin_public_key: str | None = None

    def __post_init__(self) -> None:
        if not _TAG.match(self.image_tag):
            raise InvalidInputError(
                "an image tag is 1-128 letters, digits, '_', '.' or '-' (not first)",
                field="--image-tag",
            )
        if not _PREFIX.match(self.image_prefix):
            raise InvalidInputError(
                "an image prefix is a registry path such as hpcbox or reg.example:5000/hpc",
                field="--image-prefix",
            )
        if self.pull_policy is not None and self.pull_policy not in PULL_POLICIES:
            raise InvalidInputError(f"one of {', '.join(PULL_POLICIES)}", field="--pull-policy")
        if self.service_type is not None and self.service_type not in SERVICE_TYPES:
            raise InvalidInputError(f"one of {', '.join(SERVICE_TYPES)}", field="--service-type")
        if self.storage_class is not None and not _DNS.match(self.storage_class):
            raise InvalidInputError("not a storage class name", field="--storage-class")
        if self.home_size is not None and not _QUANTITY.match(self.home_size):
            raise InvalidInputError("a size such as 10Gi", field="--home-size")
        if (self.nfs_server is None) != (self.nfs_path is None):
            raise InvalidInputError("give both --nfs-server and --nfs-path", field="--nfs-server")
        if self.nfs_server is not None and not _NFS_SERVER.match(self.nfs_server):
            raise InvalidInputError("not a host name or address", field="--nfs-server")
        if self.nfs_path is not None and not re.fullmatch(r"/[^\s\x00]*", self.nfs_path):
            raise InvalidInputError("an absolute path", field="--nfs-path")
        if self.nfs_server is not None and self.storage_class is not None:
            raise InvalidInputError(
                "homes on NFS take no storage class: give one or the other", field="--nfs-server"
            )
        if self.ingress_host is not None and not _DNS.match(self.ingress_host):
            raise InvalidInputError("not a host name", field="--ingress-host")
        key = self.admin_public_key
        if key is not None and not _KEY_LINE.match(key.strip()):
            raise InvalidInputError("one public key line", field="admin_public_key")


def chart_name(spec: ClusterSpec) -> str:
    """The chart that runs ``spec``: hpcbox-jupyter for kind jupyter, else hpcbox-slurm."""
    return JUPYTER_CHART if spec.kind is ClusterKind.JUPYTER else SLURM_CHART


def _users(spec: ClusterSpec) -> list[dict[str, Any]]:
    ids = spec.user_ids()
    users = []
    for user in spec.users:
        uid, gid = ids[user.name]
        entry: dict[str, Any] = {"name": user.name, "uid": uid, "ssh_keys": list(user.ssh_keys)}
        if gid != uid:
            entry["gid"] = gid
        if user.password_hash:
            entry["password_hash"] = user.password_hash
        users.append(entry)
    return users


def _workers(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "count": spec.workers.count,
        "cpus": spec.workers.cpus,
        "memory": max(1, spec.workers.memory // 1024**2),
    }


def _kubernetes(options: HelmOptions) -> dict[str, Any]:
    """The Kubernetes-only values both charts share."""
    values: dict[str, Any] = {}
    image: dict[str, Any] = {}
    if options.image_prefix != IMAGE_PREFIX:
        image["prefix"] = options.image_prefix
    if options.image_tag != __version__:
        image["tag"] = options.image_tag
    if options.pull_policy is not None:
        image["pullPolicy"] = options.pull_policy
    if image:
        values["image"] = image
    if options.keep_homes is not None:
        values["keepHomes"] = options.keep_homes
    storage: dict[str, Any] = {}
    if options.storage_class is not None:
        storage["storageClass"] = options.storage_class
    if options.home_size is not None:
        storage["homeSize"] = options.home_size
    if options.nfs_server is not None and options.nfs_path is not None:
        storage["nfs"] = {"server": options.nfs_server, "path": options.nfs_path}
    if storage:
        values["storage"] = storage
    return values


def _service(service_type: str | None, port: int) -> dict[str, Any] | None:
    if service_type is None:
        return None
    service: dict[str, Any] = {"serviceType": service_type}
    if service_type == "NodePort" and port:
        service["nodePort"] = port
    return service


def slurm_values(spec: ClusterSpec, options: HelmOptions | None = None) -> dict[str, Any]:
    """Values of chart hpcbox-slurm for a ``slurm`` or ``mpi`` spec."""
    options = options or HelmOptions()
    if spec.kind is ClusterKind.JUPYTER:
        raise InvalidInputError("kind jupyter is chart hpcbox-jupyter's", field="kind")
    if spec.jupyter.hub:
        raise InvalidInputError(
            "JupyterHub on the SLURM login node (jupyter.hub) is not in chart hpcbox-slurm: "
            "install chart hpcbox-jupyter beside it",
            field="jupyter.hub",
        )
    values: dict[str, Any] = {
        "name": spec.name,
        "workers": _workers(spec),
        "partitions": [
            {
                "name": p.name,
                "default": p.default,
                "max_time_minutes": None if p.max_time is None else -(-p.max_time // 60),
            }
            for p in spec.partitions
        ],
        "mpi": spec.mpi.value,
        "accounting": spec.accounting,
        "users": _users(spec),
    }
    if options.admin_public_key:
        values["adminPublicKey"] = options.admin_public_key.strip()
    login = _service(options.service_type, spec.login.ssh_port)
    if login is not None:
        values["login"] = login
    values.update(_kubernetes(options))
    return values


def jupyter_values(spec: ClusterSpec, options: HelmOptions | None = None) -> dict[str, Any]:
    """Values of chart hpcbox-jupyter for a ``jupyter`` spec."""
    options = options or HelmOptions()
    if spec.kind is not ClusterKind.JUPYTER:
        raise InvalidInputError(f"kind {spec.kind.value} is chart hpcbox-slurm's", field="kind")
    values: dict[str, Any] = {
        "name": spec.name,
        "workers": _workers(spec),
        "jupyter": {"engines_per_worker": spec.jupyter.engines_per_worker},
        "users": _users(spec),
    }
    hub = _service(options.service_type, spec.jupyter.port)
    if hub is not None:
        values["hub"] = hub
    if options.ingress_host is not None:
        values["ingress"] = {"enabled": True, "host": options.ingress_host}
    values.update(_kubernetes(options))
    return values


def helm_values(spec: ClusterSpec, options: HelmOptions | None = None) -> dict[str, Any]:
    """The values of :func:`chart_name`'s chart for ``spec``."""
    if spec.kind is ClusterKind.JUPYTER:
        return jupyter_values(spec, options)
    return slurm_values(spec, options)


def values_yaml(spec: ClusterSpec, values: dict[str, Any]) -> str:
    """The values file's text: a header naming the chart and the spec, then the values."""
    header = (
        f"# Values of chart {chart_name(spec)} for cluster {spec.name} (kind "
        f"{spec.kind.value}),\n# written by `hpcbox cluster render --target helm` "
        f"(hpcbox {__version__}).\n# helm install {spec.name} charts/{chart_name(spec)} "
        f"-n hpcbox-{spec.name} --create-namespace -f THIS_FILE\n"
    )
    return header + yaml.safe_dump(values, sort_keys=False, default_flow_style=False)
