"""The pods of a cluster on Kubernetes: controller, workers, MariaDB, slurmdbd.

Internal to :mod:`hpcbox.clusters.render.kubernetes`. Every node pod runs the nodes'
one start-up script (:mod:`hpcbox.clusters.render.node`, the same file containers get
on Podman and Docker) from the ``node-setup`` ConfigMap, so the images need no
Kubernetes-specific entrypoint; ``HPCBOX_MOUNTS`` tells it where its inputs are
mounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hpcbox.clusters.render import _k8s
from hpcbox.clusters.render._k8s import Manifest, Names
from hpcbox.clusters.render.accounts import Account
from hpcbox.clusters.render.layout import (
    CONTROLLER_HOST,
    DB_HOST,
    DB_NAME,
    DB_PORT,
    DB_USER,
    DBD_HOST,
    HOME_ROOT,
    SLURM_CONF_DIR,
    SLURMCTLD_PORT,
    SLURMCTLD_STATE_DIR,
    SLURMD_PORT,
    SLURMDBD_PORT,
    SSH_PORT,
)
from hpcbox.clusters.render.node import MPI_DIR, SECRETS_DIR, USERS_DIR
from hpcbox.clusters.render.slurm import real_memory_mb, slurmd_conf_arg
from hpcbox.clusters.spec import ClusterSpec

__all__ = ["WORKER_STATEFULSET", "controller", "mariadb", "slurmdbd", "workers"]

WORKER_STATEFULSET = "worker"
# Room for munged, sshd and slurmd themselves above what SLURM hands to jobs,
# so a job using all of RealMemory does not get the daemons OOM-killed.
_DAEMON_OVERHEAD_MIB = 256
_OWNER_READ = 0o400


def _container(
    names: Names,
    name: str,
    image: str,
    role: str,
    *,
    ports: Sequence[tuple[str, int]],
    ready_port: int,
    resources: dict[str, Any],
    mounts: list[dict[str, Any]],
    env: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": _k8s.node_command(role),
        "env": [*_k8s.node_env(names, role), *env],
        "ports": _k8s.container_ports(ports),
        "readinessProbe": _k8s.tcp_probe(ready_port),
        "resources": resources,
        "volumeMounts": [_k8s.setup_mount(), *mounts],
    }


def _secrets_volume(sources: list[dict[str, Any]]) -> dict[str, Any]:
    # Owner-only; the start-up script copies each file to its place with the
    # owner its daemon wants.
    return {
        "name": "secrets",
        "projected": {"defaultMode": _OWNER_READ, "sources": sources},
    }


def _node_volumes(
    users: Sequence[Account], ssh_key_names: Sequence[str], *, sacctmgr: bool = False
) -> list[dict[str, Any]]:
    """Volumes of every SLURM node (controller and workers)."""
    ssh_source: dict[str, Any] = {"name": "ssh-host-keys"}
    if ssh_key_names:
        ssh_source["items"] = [{"key": key, "path": f"ssh/{key}"} for key in ssh_key_names]
    user_items = [{"key": "passwd", "path": "passwd"}, {"key": "group", "path": "group"}]
    user_items += [
        {"key": f"authorized_keys.{a.name}", "path": f"authorized_keys/{a.name}"} for a in users
    ]
    if sacctmgr:
        user_items.append({"key": "sacctmgr", "path": "sacctmgr"})
    admin_items = [{"key": "authorized_keys", "path": "admin_authorized_keys"}]
    return [
        _k8s.setup_volume(),
        {"name": "slurm-config", "configMap": {"name": "slurm-config"}},
        _secrets_volume(
            [
                {"secret": {"name": "munge-key"}},
                {"secret": ssh_source},
                {"secret": {"name": "admin-key", "items": admin_items}},
                {"secret": {"name": "users-shadow"}},
            ]
        ),
        {"name": "users", "configMap": {"name": "users", "items": user_items}},
        {"name": "mpi", "configMap": {"name": "mpi-hostfile"}},
        {"name": "home", "persistentVolumeClaim": {"claimName": "home"}},
    ]


def _node_mounts() -> list[dict[str, Any]]:
    return [
        # Mounted as a directory (not subPath) so ConfigMap updates arrive.
        _k8s.mount("slurm-config", SLURM_CONF_DIR, read_only=True),
        _k8s.mount("secrets", SECRETS_DIR, read_only=True),
        _k8s.mount("users", USERS_DIR, read_only=True),
        _k8s.mount("mpi", MPI_DIR, read_only=True),
        _k8s.mount("home", HOME_ROOT),
    ]


def controller(
    names: Names,
    image: str,
    users: Sequence[Account],
    ssh_key_names: Sequence[str],
    *,
    accounting: bool,
) -> Manifest:
    """slurmctld and the SSH login node: one replica, hostname ``controller``.

    With ``accounting`` it also registers the users' SLURM associations (the
    ``sacctmgr`` file of the ``users`` ConfigMap) once slurmdbd answers.
    """
    container = _container(
        names,
        "controller",
        image,
        "controller",
        ports=[("slurmctld", SLURMCTLD_PORT), ("ssh", SSH_PORT)],
        ready_port=SLURMCTLD_PORT,
        # The login node: users compile and submit here.
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}},
        mounts=[*_node_mounts(), _k8s.mount("state", SLURMCTLD_STATE_DIR)],
    )
    volumes = [
        *_node_volumes(users, ssh_key_names, sacctmgr=accounting),
        {"name": "state", "persistentVolumeClaim": {"claimName": "controller-state"}},
    ]
    template = _k8s.pod_template(names, "controller", container, volumes, hostname=CONTROLLER_HOST)
    return _k8s.deployment(names, "controller", "controller", template)


def workers(
    names: Names,
    spec: ClusterSpec,
    image: str,
    users: Sequence[Account],
    ssh_key_names: Sequence[str],
) -> Manifest:
    """The workers: a StatefulSet whose pods ``worker-0``... are dynamic SLURM nodes."""
    memory = f"{real_memory_mb(spec) + _DAEMON_OVERHEAD_MIB}Mi"
    cpus = str(spec.workers.cpus)
    container = _container(
        names,
        "slurmd",
        image,
        "worker",
        ports=[("slurmd", SLURMD_PORT), ("ssh", SSH_PORT)],
        ready_port=SLURMD_PORT,
        # Requests equal limits: the Guaranteed QoS class, so workers are the
        # last pods evicted under pressure.
        resources={
            "requests": {"cpu": cpus, "memory": memory},
            "limits": {"cpu": cpus, "memory": memory},
        },
        mounts=_node_mounts(),
        env=[{"name": "HPCBOX_SLURMD_CONF", "value": slurmd_conf_arg(spec)}],
    )
    # slurmd 22.05 always starts its cgroup plugin, which on cgroup v2 nodes
    # creates a cgroup directory and so needs a writable /sys/fs/cgroup;
    # unprivileged pods get it read-only.
    container["securityContext"] = {"privileged": True}
    template = _k8s.pod_template(names, "worker", container, _node_volumes(users, ssh_key_names))
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": names.meta(WORKER_STATEFULSET, "worker"),
        "spec": {
            "serviceName": WORKER_STATEFULSET,
            "replicas": spec.workers.count,
            # Workers are independent: start and stop them all at once.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": names.selector("worker")},
            "template": template,
        },
    }


def mariadb(names: Names, image: str) -> Manifest:
    """MariaDB for slurmdbd, its data on the ``mariadb-data`` claim."""
    password = {"secretKeyRef": {"name": "mariadb-credentials", "key": "password"}}
    container = _container(
        names,
        "mariadb",
        image,
        "mariadb",
        ports=[("mysql", DB_PORT)],
        ready_port=DB_PORT,
        resources={"requests": {"cpu": "100m", "memory": "256Mi"}},
        # A sub-directory keeps the volume's lost+found out of the data directory.
        mounts=[{**_k8s.mount("data", "/var/lib/mysql"), "subPath": "mysql"}],
        env=[
            {"name": "MARIADB_DATABASE", "value": DB_NAME},
            {"name": "MARIADB_USER", "value": DB_USER},
            {"name": "MARIADB_PASSWORD", "valueFrom": password},
        ],
    )
    volumes = [
        _k8s.setup_volume(),
        {"name": "data", "persistentVolumeClaim": {"claimName": "mariadb-data"}},
    ]
    template = _k8s.pod_template(names, "mariadb", container, volumes)
    return _k8s.deployment(names, DB_HOST, "mariadb", template)


def slurmdbd(names: Names, image: str) -> Manifest:
    """slurmdbd: one replica, hostname ``slurmdbd`` (it checks DbdHost)."""
    container = _container(
        names,
        "slurmdbd",
        image,
        "slurmdbd",
        ports=[("slurmdbd", SLURMDBD_PORT)],
        ready_port=SLURMDBD_PORT,
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}},
        mounts=[_k8s.mount("secrets", SECRETS_DIR, read_only=True)],
    )
    volumes = [
        _k8s.setup_volume(),
        _secrets_volume([{"secret": {"name": "munge-key"}}, {"secret": {"name": "slurmdbd-conf"}}]),
    ]
    template = _k8s.pod_template(names, "slurmdbd", container, volumes, hostname=DBD_HOST)
    return _k8s.deployment(names, DBD_HOST, "slurmdbd", template)
