"""Small builders for Kubernetes objects as plain dicts.

Internal to :mod:`hpcbox.clusters.render.kubernetes`. Every builder returns a fresh
dict whose keys are in the conventional order (apiVersion, kind, metadata,
then the rest), so the YAML reads the way people write it by hand.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from hpcbox.clusters.render.node import MOUNTS_DIR, MOUNTS_ENV, SETUP_DIR, node_script

Manifest = dict[str, Any]
_EXECUTABLE = 0o555


class Names:
    """Labels and namespace shared by every object of one cluster."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.namespace = f"hpcbox-{cluster}"

    def selector(self, component: str) -> dict[str, str]:
        """Labels that pick out one component's pods (stable across versions)."""
        return {
            "app.kubernetes.io/instance": self.cluster,
            "app.kubernetes.io/component": component,
        }

    def labels(self, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": "hpcbox",
            **self.selector(component),
            "app.kubernetes.io/managed-by": "hpcbox",
        }

    def meta(self, name: str, component: str, *, namespaced: bool = True) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if namespaced:
            meta["namespace"] = self.namespace
        meta["labels"] = self.labels(component)
        return meta


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def secret(names: Names, name: str, component: str, data: Mapping[str, bytes | str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": names.meta(name, component),
        "type": "Opaque",
        "data": {key: b64(value) for key, value in data.items()},
    }


def config_map(names: Names, name: str, component: str, data: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": names.meta(name, component),
        "data": dict(data),
    }


def service(
    names: Names,
    name: str,
    component: str,
    ports: Sequence[tuple[str, int]],
    *,
    service_type: str = "ClusterIP",
    headless: bool = False,
) -> Manifest:
    spec: dict[str, Any] = {"type": service_type}
    if headless:
        # Per-pod DNS records (worker-0.worker) exist before pods are ready,
        # so nodes can find each other while they start.
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    spec["selector"] = names.selector(component)
    spec["ports"] = [
        {"name": port_name, "port": port, "targetPort": port, "protocol": "TCP"}
        for port_name, port in ports
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.meta(name, component),
        "spec": spec,
    }


def pvc(
    names: Names,
    name: str,
    component: str,
    *,
    access_mode: str,
    size: str,
    storage_class: str | None = None,
    volume_name: str | None = None,
) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume_name is not None:
        spec["volumeName"] = volume_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": names.meta(name, component),
        "spec": spec,
    }


def container_ports(ports: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in ports]


def mount(name: str, path: str, *, read_only: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "mountPath": path}
    if read_only:
        entry["readOnly"] = True
    return entry


def tcp_probe(port: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": port}, "periodSeconds": 10, "failureThreshold": 3}


def pod_template(
    names: Names,
    component: str,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    *,
    hostname: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if hostname is not None:
        # SLURM daemons check their own hostname (slurmctld against
        # SlurmctldHost, slurmdbd against DbdHost).
        spec["hostname"] = hostname
    # Service links would inject variables such as MARIADB_PORT=tcp://...
    # that entrypoints read as configuration.
    spec["enableServiceLinks"] = False
    spec["containers"] = [container]
    spec["volumes"] = volumes
    return {"metadata": {"labels": names.labels(component)}, "spec": spec}


def deployment(names: Names, name: str, component: str, template: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": names.meta(name, component),
        "spec": {
            "replicas": 1,
            # One instance at a time: two slurmctlds (or two MariaDBs) on one
            # state volume would corrupt it.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": names.selector(component)},
            "template": template,
        },
    }


# -- what every node pod has: the one start-up script, and where its inputs are ------


def node_setup(names: Names) -> Manifest:
    """The ``node-setup`` ConfigMap: the start-up script every node pod runs (the
    file containers on Podman and Docker get, byte for byte)."""
    return config_map(names, "node-setup", "cluster", {"hpcbox-node": node_script()})


def setup_volume() -> dict[str, Any]:
    """The ``node-setup`` ConfigMap as a volume, the script executable."""
    return {"name": "setup", "configMap": {"name": "node-setup", "defaultMode": _EXECUTABLE}}


def setup_mount() -> dict[str, Any]:
    return mount("setup", SETUP_DIR, read_only=True)


def node_command(role: str) -> list[str]:
    """The start-up script run for ``role``. tini (in the base image) as PID 1
    forwards SIGTERM to the daemon and reaps the background helpers (munged, sshd,
    ipcontroller, ipengines) the script leaves behind."""
    return ["/usr/bin/tini", "--", "/bin/bash", f"{SETUP_DIR}/hpcbox-node", role]


def node_env(names: Names, role: str) -> list[dict[str, Any]]:
    """What every node pod's start-up script is told: its cluster, its role, and
    that its inputs are mounted (and where)."""
    return [
        {"name": "HPCBOX_CLUSTER", "value": names.cluster},
        {"name": "HPCBOX_ROLE", "value": role},
        {"name": MOUNTS_ENV, "value": MOUNTS_DIR},
    ]
